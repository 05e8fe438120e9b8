"""``python -m train.evaluate compare``: the options of the champion/challenger gate.

The work (and its imports) is in :mod:`train.evaluate.compare.job`, imported when the
command runs, so that ``--help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skbandit.ranking_settings import SERVING_OBJECTIVE, Exploration, Objective
from train.evaluate.compare.options import DEFAULT_BASELINE, Estimator, Reward


def compare(
    candidate: Annotated[str, typer.Option(help="Version to evaluate: models:/NAME/VERSION.")],
    baseline: Annotated[
        str, typer.Option(help="Version to beat: models:/NAME@ALIAS or NAME/VERSION.")
    ] = DEFAULT_BASELINE,
    events: Annotated[
        Path | None,
        typer.Option(
            help="Logged events with a propensity column (with --decisions: the "
            "outcomes to join); default: the simulated school."
        ),
    ] = None,
    decisions: Annotated[
        str | None,
        typer.Option(
            help="Evaluate on the served decision log (URL, SQLite file or parquet "
            "export folder) joined to --events, using its candidate sets and "
            "propensities as served."
        ),
    ] = None,
    items: Annotated[
        Path | None, typer.Option(help="Items file (parquet or CSV); required with --events.")
    ] = None,
    promote: Annotated[
        bool, typer.Option("--promote", help="Move 'champion' to the candidate if it passes.")
    ] = False,
    estimator: Annotated[Estimator, typer.Option(help="Off-policy estimator.")] = Estimator.dr,
    reward: Annotated[
        Reward,
        typer.Option(
            help="What the policies are judged on: correct (success of the served "
            "item) or progress (the ability gain the student's next five attempts "
            "on the topic show; decisions without five are left out)."
        ),
    ] = Reward.correct,
    exploration: Annotated[
        Exploration, typer.Option(help="Policy to evaluate: greedy top-1 or softmax(score/T).")
    ] = Exploration.greedy,
    temperature: Annotated[
        float, typer.Option(min=0.0, help="Softmax temperature T (with --exploration softmax).")
    ] = 0.05,
    objective: Annotated[
        Objective | None,
        typer.Option(
            help=f"Ranking objective (default: {SERVING_OBJECTIVE}, the objective serving uses)."
        ),
    ] = None,
    target: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Target success of target_band.")
    ] = 0.7,
    alpha: Annotated[
        float | None, typer.Option(min=0.0, help="Exploration width (default: each model's).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Evaluate only decisions at or after this ISO time.")
    ] = None,
    min_ess: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Smallest effective sample size that may promote (default: 100).",
        ),
    ] = None,
    n_bootstrap: Annotated[int, typer.Option(min=1, help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the bootstrap.")] = 0,
    unverified_log: Annotated[
        bool,
        typer.Option(
            "--unverified-log", help="Use a --decisions log that fails hash-chain verification."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Estimate candidate and baseline off-policy, log the comparison, gate promotion."""
    from train.evaluate.compare.job import main

    main(
        candidate=candidate,
        baseline=baseline,
        events=events,
        decisions=decisions,
        items=items,
        promote=promote,
        estimator=estimator,
        reward=reward,
        exploration=exploration,
        temperature=temperature,
        objective=objective,
        target=target,
        alpha=alpha,
        since=since,
        min_ess=min_ess,
        n_bootstrap=n_bootstrap,
        seed=seed,
        unverified_log=unverified_log,
        as_json=as_json,
    )
