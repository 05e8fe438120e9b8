"""Generation time of the simulated school (``python -m bench.bench_simulation``).

Prints one row per size: students, events, seconds and events per second. The 1M-event row
is the issue's budget (under 60 s on a 2-core machine).
"""

import time
from dataclasses import replace

from skbandit.sim.generate import default_school_config, simulate_school

SIZES = (("100k", 1_000), ("1M", 10_000))
"""(label, students): the default school has ~100 attempts per student."""


def main() -> None:
    """Time :func:`simulate_school` at each size and print a table."""
    print(f"{'target':>7} {'students':>9} {'events':>10} {'seconds':>8} {'events/s':>10}")
    for label, students in SIZES:
        config = replace(default_school_config(), n_students=students)
        started = time.perf_counter()
        school = simulate_school(config)
        seconds = time.perf_counter() - started
        n = len(school.events)
        print(f"{label:>7} {students:>9,} {n:>10,} {seconds:>8.1f} {n / seconds:>10,.0f}")


if __name__ == "__main__":
    main()
