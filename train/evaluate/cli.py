"""``python -m train.evaluate``: evidence that the bandit helps students.

Each command here and in ``compare/cli.py``, ``deploy/cli.py`` holds its options and one call
to the module that does the work, imported when the command runs (so ``--help`` stays fast).

- ``simulate``: run policies online in the simulated school and compare them (train.evaluate.study).
- ``sweep``: every learning model x policy x seed, scored by a held-out post-test
  (train.evaluate.sweep).
- ``compare``: off-policy champion/challenger comparison on logged events or the served
  decision log (``--decisions``), with promotion only through the gate (train.evaluate.compare).
- ``deploy``: a simulated deployment of the closed loop: served days, outcomes, nightly
  warm-start and the gate (train.evaluate.deploy).
"""

from pathlib import Path
from typing import Annotated

import typer

from train.evaluate.compare.cli import compare
from train.evaluate.deploy.cli import deploy


def simulate(
    seeds: Annotated[
        int | None, typer.Option(help="Number of seeds, schools 0..N-1 (default 5; --quick: 2).")
    ] = None,
    students: Annotated[
        int | None, typer.Option(help="Students per school (default 2000; --quick: 60).")
    ] = None,
    days: Annotated[
        int | None,
        typer.Option(help="Stop after N school days (default: the whole year, 180; --quick: 15)."),
    ] = None,
    alpha: Annotated[float, typer.Option(min=0.0, help="LinUCB exploration width.")] = 1.0,
    target: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Target success of the target-band LinUCB.")
    ] = 0.7,
    jobs: Annotated[int, typer.Option(min=1, help="Runs in parallel (processes).")] = 2,
    quick: Annotated[
        bool, typer.Option(help="Small study for CI (60 students, 15 days, 2 seeds).")
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option(help="Also write the tables (CSV) and plots (PNG) here.")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")
    ] = False,
) -> None:
    """Run the policies online in the simulated school and compare them against the truth."""
    from train.evaluate.study import main

    main(
        seeds=seeds,
        students=students,
        days=days,
        alpha=alpha,
        target=target,
        jobs=jobs,
        quick=quick,
        out_dir=out_dir,
        json_output=json_output,
    )


def sweep(
    seeds: Annotated[
        int | None, typer.Option(help="Number of seeds, schools 0..N-1 (default 20; --quick: 2).")
    ] = None,
    students: Annotated[
        int | None, typer.Option(help="Students per school (default 300; --quick: 40).")
    ] = None,
    days: Annotated[
        int | None, typer.Option(help="School days per run (default 30; --quick: 10).")
    ] = None,
    learning: Annotated[
        str | None,
        typer.Option(help="Comma-separated learning scenarios (default: all of them)."),
    ] = None,
    policies: Annotated[
        str | None,
        typer.Option(help="Comma-separated policies (default: every policy of the sweep)."),
    ] = None,
    history_students: Annotated[
        int | None,
        typer.Option(
            help="Students of each school's target-experiment history (default 1200; --quick: 150)."
        ),
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Runs in parallel (processes).")] = 2,
    quick: Annotated[
        bool, typer.Option(help="CI-sized sweep: 3 learning models, 2 seeds, 40 students.")
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option(help="Also write the table (CSV, Markdown) and plot here.")
    ] = None,
) -> None:
    """Run every policy under every learning model and report the held-out post-test gain."""
    from train.evaluate.sweep import main

    main(
        seeds=seeds,
        students=students,
        days=days,
        learning=learning,
        policies=policies,
        history_students=history_students,
        jobs=jobs,
        quick=quick,
        out_dir=out_dir,
    )


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
app.command("simulate")(simulate)
app.command("sweep")(sweep)
app.command("compare")(compare)
app.command("deploy")(deploy)

if __name__ == "__main__":
    app()
