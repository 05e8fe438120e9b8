"""Coverage of the served success interval per learning model, against the simulator's truth.

Run from the repository root::

    python -m bench.bench_interval                          # 4 learning models, 1 school each
    python -m bench.bench_interval --seeds 1,2,3 --students 400 --learning gaussian_peak

For each learning model and school, :func:`skbandit.study.interval_coverage.served_coverage`
logs 60 school days with the rule+epsilon policy, warm-starts a version on them, serves the
next 20 days with it (frozen) and counts how often the served item's true success lies in
its 80 % interval. Two servings: ``rest`` (the REST defaults: softmax with a 10 % floor; a
REST row carries no ability sd, so the ``no sd`` column is what REST shows) and ``greedy``
(``trace``'s ranking; ``own sd`` is what ``trace`` and batch scoring show). It asserts
nothing; the tests in ``tests/test_uncertainty.py`` do.
"""

import argparse
import os
import time

LEARNING = ("gaussian_peak", "performance_factors", "knowledge_tracing", "additive_factors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning", default=",".join(LEARNING))
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--students", type=int, default=400)
    args = parser.parse_args()

    from skbandit.ranking_settings import REST_SETTINGS, SERVING_SETTINGS
    from skbandit.sim.world import SchoolConfig
    from skbandit.study.interval_coverage import served_coverage

    print(f"load {os.getloadavg()[0]:.1f}; {args.students} students per school, seeds {args.seeds}")
    print("| learning model | serving | seed | served items | own sd | no sd (REST) | mean width |")
    print("|---|---|---|---|---|---|---|")
    for learning in args.learning.split(","):
        for name, settings in (("rest", REST_SETTINGS), ("greedy", SERVING_SETTINGS)):
            for seed in (int(s) for s in args.seeds.split(",")):
                start = time.perf_counter()
                config = SchoolConfig(n_students=args.students, seed=seed, learning_model=learning)
                c = served_coverage(config, settings=settings)
                print(
                    f"| {learning} | {name} | {seed} | {c.n_served:,} | {c.own_sd:.1%} | "
                    f"{c.typical_sd:.1%} | {c.mean_width:.2f} |",
                    f"({time.perf_counter() - start:.0f} s)" if os.environ.get("VERBOSE") else "",
                    flush=True,
                )


if __name__ == "__main__":
    main()
