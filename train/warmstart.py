"""``python -m train.warmstart``: replay a history of attempts into a registered model version.

With no arguments it trains on the embedded default school (generated on first use) and
registers a new version of ``skbandit-linucb`` with alias ``champion`` in the embedded MLflow
store (``mlruns/``; ``MLFLOW_TRACKING_URI`` overrides it).

``--from NAME@ALIAS`` continues a registered version: pass the full history (old and new
events); events up to the version's ``trained_until`` tag are context only, so the result is
the model trained on everything. A file with only the new events also works, but its
contexts then start from nothing (see :mod:`train.warmstart_job`).

Exit codes: 0 registered; 1 bad options, bad data or an unreachable store (one line, the run
marked FAILED, nothing registered); 130 interrupted (the run marked KILLED).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from skbandit.exceptions import SkbanditError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    events: Annotated[
        Path | None,
        typer.Option(help="Events file (parquet or CSV); default: the simulated school."),
    ] = None,
    items: Annotated[
        Path | None, typer.Option(help="Items file (parquet or CSV); required with --events.")
    ] = None,
    model_name: Annotated[str, typer.Option(help="Registered model name.")] = "skbandit-linucb",
    alias: Annotated[str, typer.Option(help="Alias to point at the new version.")] = "champion",
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
        typer.Option(min=0.0, help="Ridge strength (default 1.0, or the continued model's)."),
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
) -> None:
    """Replay a history of attempts into LinUCB, log it to MLflow and register a version."""
    from rich.console import Console

    from train.warmstart_job import WarmstartOptions, run_warmstart

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
    )
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        run_warmstart(options, console)
    except SkbanditError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print(
            "[red]interrupted:[/red] nothing was registered and no alias moved; "
            "the run is marked KILLED"
        )
        raise typer.Exit(130) from None
    except Exception as error:  # e.g. an unreachable tracking server: one line, no traceback
        console.print(
            f"[red]error:[/red] {type(error).__name__}: {_first_line(error)}; nothing was "
            "registered and no alias moved (check MLFLOW_TRACKING_URI and the data files)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"


if __name__ == "__main__":
    app()
