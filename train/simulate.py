"""``python -m train.simulate``: generate a simulated school year and write it as parquet.

Writes ``events.parquet`` (canonical events with the logging policy's ``propensity``) and
``items.parquet`` (the published items table) into ``--out``; the files are written
atomically, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from skbandit.exceptions import SkbanditError
from train._cli import one_line_errors

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def simulate_to(out: Path, students: int | None, seed: int | None) -> str:
    """Simulate, write ``events.parquet`` and ``items.parquet`` and return a summary line."""
    from adapters.data.datasets import write_school
    from skbandit import schema
    from skbandit.sim.generate import default_school_config, simulate_school

    if students is not None and students < 1:
        raise SkbanditError(f"--students must be at least 1; found {students}")
    config = default_school_config()
    config = replace(
        config,
        n_students=config.n_students if students is None else students,
        seed=config.seed if seed is None else seed,
    )
    started = time.perf_counter()
    school = simulate_school(config)
    write_school(school.events, school.items, out, config)
    elapsed = time.perf_counter() - started
    ev = school.events
    return (
        f"{len(ev):,} events, {ev[schema.USER_ID].nunique():,} students, "
        f"{len(school.items):,} items, {school.items[schema.TOPIC].nunique()} topics; "
        f"accuracy {ev[schema.CORRECT].mean():.3f}, help rate "
        f"{ev[schema.HELP_REQUESTED].mean():.3f}, median latency "
        f"{ev[schema.LATENCY_MS].median() / 1000:.0f} s; {elapsed:.1f} s -> {out}"
    )


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="Folder for events.parquet and items.parquet.")],
    students: Annotated[
        int | None, typer.Option(help="Number of students (default school: 2,000).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default school: 0).")] = None,
) -> None:
    """Generate a simulated school year (rule+epsilon logging policy) as parquet files."""
    from rich.console import Console

    console = Console()
    with one_line_errors(), console.status("simulating the school year..."):
        line = simulate_to(out, students, seed)
    console.print(line, soft_wrap=True, highlight=False)


if __name__ == "__main__":
    app()
