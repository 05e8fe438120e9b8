"""``python -m train.evaluate deploy``: the options of a simulated deployment.

The work (and its imports) is in :mod:`train.evaluate.deploy.job`, imported when the command
runs, so that ``--help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from train.evaluate.compare.options import Reward
from train.evaluate.deploy.options import (
    DEFAULT_MODEL_NAME,
    MIN_STUDENTS,
    PRODUCTION_MODEL_NAME,
    Via,
)


def deploy(
    days: Annotated[int, typer.Option(help="School days to serve (at least 1).")] = 5,
    students: Annotated[
        int, typer.Option(help=f"Students in the simulated school (at least {MIN_STUDENTS}).")
    ] = 2000,
    seed: Annotated[
        int | None,
        typer.Option(
            help="School seed; also seeds every served draw, so the run is "
            "reproducible (default: school 0, draws from OS entropy as REST)."
        ),
    ] = None,
    history_days: Annotated[
        int,
        typer.Option(
            help="School days logged by the rule+epsilon policy before the first model is trained."
        ),
    ] = 5,
    via: Annotated[
        Via,
        typer.Option(
            help="Serve in this process through the REST code path, or through "
            "a real skbandit serve on 127.0.0.1."
        ),
    ] = Via.in_process,
    model_name: Annotated[
        str | None,
        typer.Option(
            help="Registered model of the deployment (never the served "
            f"{PRODUCTION_MODEL_NAME}); must not exist yet. Default: "
            f"{DEFAULT_MODEL_NAME}, or {DEFAULT_MODEL_NAME}-2, -3, ... once taken."
        ),
    ] = None,
    decision_log: Annotated[
        str | None,
        typer.Option(
            help="Decision log URL or SQLite file (default: MODEL_NAME-decisions.db "
            "beside the MLflow store)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Keep each night's events, outcomes and truth (parquet) and the "
            "server logs here (default: a temporary folder)."
        ),
    ] = None,
    gate_reward: Annotated[
        Reward,
        typer.Option(
            help="Reward the gate estimates (compare --reward): the served "
            "item's first attempt, or the delayed learning progress."
        ),
    ] = Reward.correct,
) -> None:
    """Simulate days of serving, outcomes, nightly warm-start and the promotion gate."""
    from train.evaluate.deploy.job import main

    main(
        days=days,
        students=students,
        seed=seed,
        history_days=history_days,
        via=via,
        model_name=model_name,
        decision_log=decision_log,
        out=out,
        gate_reward=gate_reward,
    )
