"""``python -m train.evaluate compare``: off-policy champion/challenger gate.

Both registered versions are scored as target policies on the logged decisions (see
:mod:`skbandit.ope.targets`); their values are estimated with one off-policy estimator
(doubly robust by default, each model serving as its own reward model), logged as a run of
the ``skbandit-evaluation`` experiment with a plot of the intervals, and the candidate gets
the ``challenger`` alias. With ``--promote`` the ``champion`` alias moves to the candidate
only when :func:`skbandit.ope.gate.promotion_gate` passes:

1. the candidate's lower confidence bound beats the baseline's point estimate, and
2. the candidate's effective sample size is at least ``--min-ess`` (the validation in
   ``tests/test_ope_validation.py`` shows that percentile-bootstrap intervals of SNIPS and
   DR under-cover when only a few dozen logged decisions carry the weight).

Both policies rank by ``--objective``, by default the one the product serves
(:data:`skbandit.policy.SERVING_OBJECTIVE`). The table, JSON and plot are built by
:mod:`train.compare_report`. Heavy imports happen inside functions (the defaults that live in
``skbandit`` are read lazily), so ``--help`` is instant.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from skbandit.ranking_settings import Exploration, Objective
from train import compare_report
from train.comparison import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    DEFAULT_BASELINE,
    CompareOptions,
    Comparison,
    default_min_ess,
    serving_objective,
)

if TYPE_CHECKING:
    from rich.console import Console

PLOT_PATH = "plots/policy_values.png"


class Estimator(StrEnum):
    """Off-policy estimator behind the gate."""

    dr = "dr"
    snips = "snips"
    ips = "ips"


def compare(
    candidate: Annotated[str, typer.Option(help="Version to evaluate: models:/NAME/VERSION.")],
    baseline: Annotated[
        str, typer.Option(help="Version to beat: models:/NAME@ALIAS or NAME/VERSION.")
    ] = DEFAULT_BASELINE,
    events: Annotated[
        Path | None,
        typer.Option(help="Logged events with a propensity column; default: the simulated school."),
    ] = None,
    items: Annotated[
        Path | None, typer.Option(help="Items file (parquet or CSV); required with --events.")
    ] = None,
    promote: Annotated[
        bool, typer.Option("--promote", help="Move 'champion' to the candidate if it passes.")
    ] = False,
    estimator: Annotated[Estimator, typer.Option(help="Off-policy estimator.")] = Estimator.dr,
    exploration: Annotated[
        Exploration, typer.Option(help="Policy to evaluate: greedy top-1 or softmax(score/T).")
    ] = Exploration.greedy,
    temperature: Annotated[
        float, typer.Option(min=0.0, help="Softmax temperature T (with --exploration softmax).")
    ] = 0.05,
    objective: Annotated[
        Objective | None,
        typer.Option(
            help="Ranking objective (default: target_band, the objective serving uses)."
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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Estimate candidate and baseline off-policy, log the comparison, gate promotion."""
    import os

    from rich.console import Console

    from skbandit.exceptions import SkbanditError

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    console = Console()
    options = CompareOptions(
        candidate=candidate,
        baseline=baseline,
        events=events,
        items=items,
        promote=promote,
        estimator=estimator.value,
        exploration=exploration.value,
        temperature=temperature,
        objective=(objective or serving_objective()).value,
        target=target,
        alpha=alpha,
        since=since,
        min_ess=default_min_ess() if min_ess is None else min_ess,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    try:
        result = run_compare(options, console)
    except SkbanditError as error:
        typer.echo(f"error: {' '.join(str(error).split())}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(compare_report.comparison_json(result))
    else:
        compare_report.print_comparison(console, result, options)


def run_compare(options: CompareOptions, console: Console) -> Comparison:
    """Load, estimate, log and move aliases; raise SkbanditError before anything moves."""
    from adapters import registry, tracking
    from skbandit import schema
    from skbandit.ope.gate import promotion_gate

    tracking_uri = tracking.configure_tracking()
    events, items, rows, source = _load_decisions(options, console)
    cand_ref = registry.parse_model_ref(options.candidate)
    base_ref = registry.parse_model_ref(options.baseline)
    cand_pipe, cand_version = registry.load_pipeline(cand_ref)
    base_pipe, base_version = registry.load_pipeline(base_ref)
    with console.status("scoring both policies on the logged decisions"):
        cand = _estimate(cand_pipe, events, items, rows, options, "candidate")
        base = _estimate(base_pipe, events, items, rows, options, "baseline")
    passes, reason = promotion_gate(cand, base, options.min_ess)
    run_id, promoted = _log_and_move(
        options,
        cand,
        base,
        cand_version,
        base_version,
        passes,
        reason,
        source,
        len(rows),
        tracking_uri,
    )
    first = events[schema.TIMESTAMP].iloc[rows[0]]
    notes = tuple(
        note
        for note in (_in_sample_note(version, first) for version in (cand_version, base_version))
        if note
    )
    return Comparison(
        cand,
        base,
        str(cand_version.version),
        str(base_version.version),
        cand_version.name,
        passes,
        reason,
        promoted,
        run_id,
        len(rows),
        notes,
    )


def _in_sample_note(version, first_decision) -> str:
    """A warning when the evaluated decisions overlap what ``version`` was trained on."""
    import pandas as pd

    from adapters.model_logging import TRAINED_UNTIL_TAG

    until = version.tags.get(TRAINED_UNTIL_TAG)
    if not until or pd.Timestamp(until) < first_decision:
        return ""
    return (
        f"v{version.version} was trained on events up to {until}, which overlap the "
        "evaluated decisions, so its estimate is optimistic; evaluate later events with "
        "--since"
    )


# --- steps -------------------------------------------------------------------------------


def _load_decisions(options: CompareOptions, console: Console):
    """Events (known items only), items, the decisions to evaluate and the data source."""
    import numpy as np
    import pandas as pd

    from adapters.datasets import load_school
    from skbandit import schema
    from skbandit.exceptions import SkbanditError

    events, items, source = load_school(options.events, options.items)
    if schema.PROPENSITY not in events.columns:
        raise SkbanditError(
            f"{source} has no {schema.PROPENSITY!r} column (the logging policy's probability "
            "of each shown item), so off-policy estimates are impossible; log propensities "
            "when serving or evaluate on the simulated school"
        )
    known = events[schema.ITEM_ID].isin(items[schema.ITEM_ID])
    if not known.all():
        console.print(
            f"[yellow]skipped {int((~known).sum())} events whose item is not in the "
            "items table[/yellow]"
        )
    events = events[known].sort_values(schema.TIMESTAMP, kind="stable").reset_index(drop=True)
    selected = events[schema.PROPENSITY].notna().to_numpy()
    if options.since is not None:
        try:
            since = pd.Timestamp(options.since)
        except ValueError as error:
            raise SkbanditError(
                f"--since {options.since!r} is not an ISO time ({error}); use e.g. 2024-03-01"
            ) from None
        since = since.tz_localize("UTC") if since.tzinfo is None else since
        selected = selected & (events[schema.TIMESTAMP] >= since).to_numpy()
    if not selected.any():
        raise SkbanditError(
            f"no logged decisions with a propensity to evaluate in {source}"
            f"{' since ' + options.since if options.since else ''}; check "
            "--events/--since"
        )
    return events, items, np.flatnonzero(selected), source


def _estimate(pipeline, events, items, rows, options: CompareOptions, role: str):
    from skbandit.exceptions import SkbanditError
    from skbandit.ope import targets as ope_targets

    policy = ope_targets.linucb_policy(
        pipeline,
        alpha=options.alpha,
        objective=options.objective,
        target=options.target,
        exploration=options.exploration,
        temperature=options.temperature,
    )
    inputs = ope_targets.off_policy_inputs(
        events, items, policy, reward_model=ope_targets.linucb_reward_model(pipeline), rows=rows
    )
    if not inputs.target_propensity.any():
        raise SkbanditError(
            f"no overlap: the {role} policy never chooses an item the logging policy showed "
            f"in the {len(rows)} logged decisions, so its value cannot be estimated; use "
            "--exploration softmax or events logged with more exploration"
        )
    return inputs.estimate(
        options.estimator,
        n_bootstrap=options.n_bootstrap,
        confidence=options.confidence,
        rng=options.seed,
    )


def _log_and_move(
    options,
    cand,
    base,
    cand_version,
    base_version,
    passes,
    reason,
    source,
    n_decisions,
    tracking_uri,
):
    """One MLflow run with params, metrics and the plot; then the aliases. Returns run id."""
    import mlflow
    from mlflow import MlflowClient

    from adapters import tracking
    from train.plots import plt

    tracking.use_experiment(tracking.EVALUATION_EXPERIMENT)
    client = MlflowClient()
    name = cand_version.name
    previous = client.get_registered_model(name).aliases.get(CHAMPION_ALIAS)
    promoted = options.promote and passes
    with mlflow.start_run(
        run_name=f"compare v{cand_version.version} vs {base_version.name} v{base_version.version}"
    ) as run:
        mlflow.log_params(
            {
                "candidate": f"{name}/{cand_version.version}",
                "baseline": f"{base_version.name}/{base_version.version}",
                "candidate_ref": options.candidate,
                "baseline_ref": options.baseline,
                "estimator": options.estimator,
                "exploration": options.exploration,
                "temperature": options.temperature,
                "objective": options.objective,
                "target": options.target,
                "alpha": "model" if options.alpha is None else options.alpha,
                "since": options.since or "",
                "min_ess": options.min_ess,
                "n_bootstrap": options.n_bootstrap,
                "confidence": options.confidence,
                "seed": options.seed,
                "data_source": source,
                "n_decisions": n_decisions,
                "promote_requested": options.promote,
            }
        )
        for role, estimate in (("candidate", cand), ("baseline", base)):
            mlflow.log_metrics(
                {
                    f"{role}_{key}": value
                    for key, value in _numbers(estimate).items()
                    if value == value
                }
            )  # NaN bounds are not logged
        figure = compare_report.interval_plot(cand, base, cand_version, base_version, options)
        mlflow.log_figure(figure, PLOT_PATH)
        plt.close(figure)
        client.set_registered_model_alias(name, CHALLENGER_ALIAS, cand_version.version)
        if promoted:
            client.set_registered_model_alias(name, CHAMPION_ALIAS, cand_version.version)
        mlflow.log_metric("promoted", float(promoted))
        mlflow.set_tags(
            {
                "gate_passed": str(passes),
                "gate_reason": reason,
                "previous_champion": previous or "",
                "promoted": str(promoted),
            }
        )
    return run.info.run_id, promoted


def _numbers(estimate) -> dict[str, float]:
    return {
        "value": estimate.value,
        "ci_low": estimate.ci_low,
        "ci_high": estimate.ci_high,
        "ess": estimate.effective_sample_size,
        "max_weight": estimate.max_weight,
    }
