"""``python -m train.warmstart``: replay a history of attempts into a registered model version.

With no arguments it trains on the embedded default school (generated on first use) and
registers a new version of ``skbandit-linucb`` with alias ``challenger`` (the first version
also gets ``champion``; afterwards only ``train.evaluate compare --promote`` moves it) in the
embedded MLflow store (``mlruns/``; ``MLFLOW_TRACKING_URI`` overrides it).

``--from NAME@ALIAS`` continues a registered version: pass the full history (old and new
events); events up to the version's ``trained_until`` tag are context only, so the result is
the model trained on everything. A file with only the new events also works, but its
contexts then start from nothing (see :mod:`train.warmstart.job`).

Exit codes: 0 registered; 1 bad options, bad data or an unreachable store (one line, the run
marked FAILED, nothing registered); 130 interrupted (the run marked KILLED).
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Annotated

import typer

from adapters import registry
from train._cli import one_line_errors

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


class Engine(StrEnum):
    """Where the job's data work runs."""

    local = "local"
    spark = "spark"


@app.command()
def main(
    events: Annotated[  # str, not Path: Path("s3a://b/x") would lose a slash (Spark engine)
        str | None,
        typer.Option(
            help="Events file (parquet or CSV; with --engine spark a parquet file or "
            "directory, any URI Spark reads); default: the simulated school."
        ),
    ] = None,
    items: Annotated[
        str | None, typer.Option(help="Items file (parquet or CSV); required with --events.")
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option(
            help="Registered model name; default: skbandit-linucb for the default "
            "school and data it was trained on, skbandit-<folder> for --events "
            "<folder>/events.parquet when its champion learned other items (one "
            "model per data set).",
            show_default=False,
        ),
    ] = None,
    alias: Annotated[
        str,
        typer.Option(
            help="Alias to point at the new version (not champion: the first "
            "version gets champion too; later, only compare --promote moves it)."
        ),
    ] = registry.CHALLENGER_ALIAS,
    from_model: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Continue training a registered version (models:/NAME@ALIAS or NAME/VERSION) "
            "on the events after its training ended; give the full history, the events it "
            "already learned are used as context only.",
        ),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(min=0.0, help="Exploration width (default 1.0, or the continued model's)."),
    ] = None,
    l2: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Ridge strength (default 1000 for the default feature set, "
            "which starts from IRT; 1.0 for seed; or the continued model's).",
        ),
    ] = None,
    feature_set: Annotated[
        str | None,
        typer.Option(
            help="Feature set: default or seed (default: default, or the continued model's)."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Events per predict-then-learn step.")
    ] = 10_000,
    max_events: Annotated[
        int | None, typer.Option(min=1, help="Use only the earliest N events.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the default school (default: its own).")
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            help="local: pandas on this machine; spark: Apache Spark on "
            "parquet files or directories (needs the spark extra and Java 17, "
            "see the README)."
        ),
    ] = Engine.local,
    spark_master: Annotated[
        str,
        typer.Option(
            help="Spark master URL with --engine spark: local[*], local[2], "
            "spark://HOST:7077, yarn, k8s://..."
        ),
    ] = "local[*]",
    calibrate: Annotated[
        str | None,
        typer.Option(
            help="Re-estimate item difficulties from the events: rasch or 2pl "
            "(default: the items file's). The calibration window's events are "
            "learned but not scored."
        ),
    ] = None,
    calibration_fraction: Annotated[
        float,
        typer.Option(
            help="With --calibrate: share of the events, earliest first, used to calibrate."
        ),
    ] = 0.5,
) -> None:
    """Replay a history of attempts into LinUCB, log it to MLflow and register a version."""
    from rich.console import Console

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no INFO lines in the terminal
    from train.warmstart.job import WarmstartOptions, run_warmstart

    console = Console()
    options = WarmstartOptions(
        events=events,
        items=items,
        model_name=model_name,
        alias=alias,
        from_model=from_model,
        alpha=alpha,
        l2=l2,
        feature_set=feature_set,
        batch_size=batch_size,
        max_events=max_events,
        seed=seed,
        engine=engine.value,
        spark_master=spark_master,
        calibrate=calibrate,
        calibration_fraction=calibration_fraction,
    )
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with one_line_errors("nothing was registered and no alias moved", _interrupted):
        if engine is Engine.spark:
            from train.spark.warmstart import run_spark_warmstart as run_warmstart
        run_warmstart(options, console)


def _interrupted(interrupt: KeyboardInterrupt) -> str:
    from adapters.registry.register import UNDO_FAILED

    if UNDO_FAILED in getattr(interrupt, "__notes__", ()):
        return UNDO_FAILED
    return "nothing was registered and no alias moved; the run is marked KILLED"


if __name__ == "__main__":
    app()
