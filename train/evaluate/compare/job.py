"""``python -m train.evaluate compare``: the off-policy champion/challenger gate's work.

Both registered versions are scored as target policies on the logged decisions: events
rebuilt into decisions, or with ``--decisions`` the served decision log with the outcomes
joined back (:mod:`train.evaluate.compare.data`); their values are estimated with one
off-policy estimator (doubly robust by default, each model serving as its own reward
model), logged as a run of
the ``skbandit-evaluation`` experiment with a plot of the intervals. Without ``--promote``
no alias moves and the registry is not touched. ``--promote`` is the only way to move
``champion`` (after a model's first version, see :mod:`train.warmstart`): the baseline must
be the candidate model's current champion (a model without one is refused: there is
nothing to compare against), the decision is recorded as ``gate.*`` tags on the candidate
version (:data:`GATE_TAGS`) whether it promotes or refuses, and ``champion`` moves to the
candidate only when :func:`skbandit.ope.gate.promotion_gate` passes:

1. the student-bootstrap interval of the paired difference candidate - champion on the
   same logged decisions lies above 0, and
2. the effective sample size is at least ``--min-ess`` (chosen from the coverage table of
   ``bench/bench_gate_coverage.py``; see :mod:`skbandit.ope.gate`).

The estimates are of ``--reward``: ``correct`` (default; the served item's first attempt
was correct) or ``progress``, the delayed learning reward of each decision computed from the
logged attempts after it (:func:`skbandit.ope.gate.with_rewards`; decisions with fewer than
five later attempts on the topic are left out); it is recorded as ``gate.reward``.

Both policies rank by ``--objective``, by default the one the product serves
(:data:`skbandit.ranking_settings.SERVING_OBJECTIVE`). The table, JSON and plot are built by
:mod:`train.evaluate.compare.report`. The command's options are in
:mod:`train.evaluate.compare.cli`, which imports this module only when it runs, so the
imports here stay at the top and ``--help`` stays instant.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import typer
from rich.console import Console

from adapters import registry, runs, tracking
from adapters.model.log import TRAINED_UNTIL_TAG
from adapters.registry import CHAMPION_ALIAS
from adapters.registry import promote as promotion
from adapters.registry.register import alias_holder
from skbandit.exceptions import SkbanditError
from skbandit.ope import targets as ope_targets
from skbandit.ope.gate import paired_difference, promotion_gate, with_rewards
from skbandit.ranking_settings import SERVING_SETTINGS, RankingSettings
from train._cli import one_line_errors
from train.evaluate.compare import report as compare_report
from train.evaluate.compare.data import load_logged
from train.evaluate.compare.options import CompareOptions, Comparison, default_min_ess
from train.warmstart.plots import plt

PLOT_PATH = "plots/policy_values.png"
GATE_TAGS = (
    "gate.decision",
    "gate.estimate",
    "gate.ci_low",
    "gate.ci_high",
    "gate.ess",
    "gate.estimator",
    "gate.reward",
    "gate.baseline",
    "gate.reason",
    "gate.run_id",
)
"""Tags every ``--promote`` writes on the candidate version (decision: promoted/refused)."""


def main(
    *,
    candidate,
    baseline,
    events,
    decisions,
    items,
    promote,
    estimator,
    reward,
    exploration,
    temperature,
    objective,
    target,
    alpha,
    since,
    min_ess,
    n_bootstrap,
    seed,
    unverified_log,
    as_json,
) -> None:
    """What ``compare`` does with its options (:mod:`train.evaluate.compare.cli`)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    console = Console(stderr=as_json)  # with --json, stdout holds only the JSON
    with one_line_errors():
        given = {
            "exploration": exploration,
            "temperature": temperature,
            "target": target,
            "alpha": alpha,
        }
        if objective is not None:
            given["objective"] = objective
        options = CompareOptions(
            candidate=candidate,
            baseline=baseline,
            events=events,
            items=items,
            decisions=decisions,
            verify_log=not unverified_log,
            promote=promote,
            estimator=estimator.value,
            reward=reward.value,
            ranking=RankingSettings.from_values(given, label="--{}", base=SERVING_SETTINGS),
            since=since,
            min_ess=default_min_ess() if min_ess is None else min_ess,
            n_bootstrap=n_bootstrap,
            seed=seed,
        )
        result = run_compare(options, console)
    if as_json:
        typer.echo(compare_report.comparison_json(result))
    else:
        compare_report.print_comparison(console, result, options)


def run_compare(options: CompareOptions, console: Console) -> Comparison:
    """Load, estimate, log and move aliases; raise SkbanditError before anything moves."""
    tracking.configure_tracking()
    cand_ref = registry.parse_model_ref(options.candidate)
    base_ref = registry.parse_model_ref(options.baseline)
    if options.promote:
        _require_champion(cand_ref.name)
    logged = load_logged(options, console, cand_ref.name)
    cand_pipe, cand_version = registry.load_model(cand_ref)
    base_pipe, base_version = registry.load_model(base_ref)
    if options.promote:
        _require_baseline_is_champion(cand_version.name, base_version)
    with console.status("scoring both policies on the logged decisions"):
        (cand, cand_inputs), (base, base_inputs) = _estimates(
            {"candidate": cand_pipe, "baseline": base_pipe}, logged, options
        )
        students = (
            logged.students
            if logged.progress is None
            else logged.students[np.isfinite(logged.progress)]
        )
        difference = paired_difference(
            cand_inputs.terms(options.estimator),
            base_inputs.terms(options.estimator),
            students,
            estimator=options.estimator,
            n_bootstrap=options.n_bootstrap,
            confidence=options.confidence,
            rng=options.seed,
        )
    passes, reason = promotion_gate(difference, options.min_ess)
    notes = tuple(
        note
        for note in (
            _in_sample_note(version, logged.first) for version in (cand_version, base_version)
        )
        if note
    )
    found = Comparison(
        candidate=cand,
        baseline=base,
        difference=difference,
        candidate_version=str(cand_version.version),
        baseline_version=str(base_version.version),
        model_name=cand_version.name,
        baseline_model_name=base_version.name,
        passes=passes,
        reason=reason,
        promoted=options.promote and passes,
        run_id="",  # set once the run is logged
        n_decisions=logged.n if logged.progress is None else difference.n_decisions,
        notes=notes,
    )
    return _log_and_move(options, found, logged.source)


def _require_champion(name: str) -> None:
    """Refuse ``--promote`` when ``name`` has no champion: the gate compares against it."""
    if alias_holder(name, CHAMPION_ALIAS) is None:
        raise SkbanditError(
            f"cannot --promote: {name} has no {CHAMPION_ALIAS!r} alias to compare against "
            "(a model's first warm-start sets it); run python -m train.warmstart "
            f"--model-name {name} once, or compare without --promote"
        )


def _require_baseline_is_champion(name: str, baseline) -> None:
    champion = alias_holder(name, CHAMPION_ALIAS)
    if baseline.name != name or str(baseline.version) != champion:
        raise SkbanditError(
            f"--promote decides against the current champion ({name} v{champion}) but "
            f"--baseline is {baseline.name} v{baseline.version}; drop --baseline (it defaults "
            "to the champion) or compare without --promote"
        )


def _in_sample_note(version, first_decision) -> str:
    """A warning when the evaluated decisions overlap what ``version`` was trained on."""
    until = version.tags.get(TRAINED_UNTIL_TAG)
    if not until or pd.Timestamp(until) < first_decision:
        return ""
    return (
        f"v{version.version} was trained on events up to {until}, which overlap the "
        "evaluated decisions, so its estimate is optimistic; evaluate later events with "
        "--since"
    )


# --- steps -------------------------------------------------------------------------------


def _estimates(pipelines: dict, logged, options: CompareOptions) -> list[tuple]:
    """``(estimate, inputs)`` of each role's pipeline, scored in one pass over the decisions
    (versions with the same feature set share each chunk's features)."""
    shared = ope_targets.SharedFeatures()
    policies = [
        (
            ope_targets.linucb_policy(pipeline, options.ranking, shared),
            ope_targets.linucb_reward_model(pipeline, shared),
        )
        for pipeline in pipelines.values()
    ]
    results = []
    for role, inputs in zip(pipelines, logged.inputs(policies), strict=True):
        students = logged.students
        if logged.progress is not None:
            inputs, keep = with_rewards(inputs, logged.progress)
            students = students[keep]
        if not inputs.target_propensity.any():
            raise SkbanditError(
                f"no overlap: the {role} policy never chooses an item the logging policy "
                f"showed in the {logged.n} logged decisions, so its value cannot be estimated; "
                "use --exploration softmax or events logged with more exploration"
            )
        estimate = inputs.estimate(
            options.estimator,
            n_bootstrap=options.n_bootstrap,
            confidence=options.confidence,
            rng=options.seed,
            clusters=students,
        )
        results.append((estimate, inputs))
    return results


def _log_and_move(options: CompareOptions, result: Comparison, source: str) -> Comparison:
    """One MLflow run with params, metrics and the plot; then the gate's decision.

    With ``--promote`` the decision goes through :mod:`adapters.registry.promote`: the
    champion moves only if it is still the baseline the gate judged, all or nothing.
    Returns ``result`` with the run's id.
    """
    runs.fail_stale_runs(tracking.use_experiment(tracking.EVALUATION_EXPERIMENT))
    name, version = result.model_name, result.candidate_version
    previous = alias_holder(name, CHAMPION_ALIAS)
    baseline = f"{result.baseline_model_name} v{result.baseline_version}"
    with runs.tracked_run(run_name=f"compare v{version} vs {baseline}") as run_id:
        runs.log_params(_run_params(options, result, source))
        for role, estimate in (("candidate", result.candidate), ("baseline", result.baseline)):
            runs.log_metrics(
                {
                    f"{role}_{key}": value
                    for key, value in _numbers(estimate).items()
                    if value == value
                }
            )  # NaN bounds are not logged
        difference = result.difference
        runs.log_metrics(
            {
                f"difference_{key}": value
                for key, value in (
                    ("value", difference.value),
                    ("ci_low", difference.ci_low),
                    ("ci_high", difference.ci_high),
                    ("ess", difference.effective_sample_size),
                    ("students", float(difference.n_students)),
                )
                if value == value
            }
        )
        figure = compare_report.interval_plot(result, options)
        runs.log_figure(figure, PLOT_PATH)
        plt.close(figure)
        if options.promote:
            tags = _decision_tags(result, options, run_id)
            if result.promoted:
                promotion.promote(name, version, result.baseline_version, tags)
            else:
                promotion.record_decision(name, version, tags)
        runs.log_metrics({"promoted": float(result.promoted)})
        for key, value in {
            "gate_passed": str(result.passes),
            "gate_reason": result.reason,
            "previous_champion": previous or "",
            "promoted": str(result.promoted),
        }.items():
            runs.set_tag(key, value)
    return dataclasses.replace(result, run_id=run_id)


def _decision_tags(result: Comparison, options: CompareOptions, run_id: str) -> dict[str, str]:
    """The gate's verdict as :data:`GATE_TAGS` for the candidate version."""
    estimate = result.difference
    values = {
        "gate.decision": "promoted" if result.promoted else "refused",
        "gate.estimate": f"{estimate.value:.6f}",
        "gate.ci_low": f"{estimate.ci_low:.6f}",
        "gate.ci_high": f"{estimate.ci_high:.6f}",
        "gate.ess": f"{estimate.effective_sample_size:.1f}",
        "gate.estimator": options.estimator,
        "gate.reward": options.reward,
        "gate.baseline": f"{result.baseline_model_name}/{result.baseline_version}",
        "gate.reason": result.reason,
        "gate.run_id": run_id,
    }
    return {key: values[key] for key in GATE_TAGS}


def _run_params(options: CompareOptions, result: Comparison, source: str) -> dict:
    """What the comparison was asked to do and what it saw, as MLflow run parameters."""
    ranking = options.ranking
    return {
        "candidate": f"{result.model_name}/{result.candidate_version}",
        "baseline": f"{result.baseline_model_name}/{result.baseline_version}",
        "candidate_ref": options.candidate,
        "baseline_ref": options.baseline,
        "estimator": options.estimator,
        "reward": options.reward,
        "exploration": ranking.exploration.value,
        "temperature": ranking.temperature,
        "objective": ranking.objective.value,
        "target": ranking.target,
        "alpha": "model" if ranking.alpha is None else ranking.alpha,
        "since": options.since or "",
        "min_ess": options.min_ess,
        "n_bootstrap": options.n_bootstrap,
        "confidence": options.confidence,
        "seed": options.seed,
        "data_source": source,
        "decision_log": options.decisions or "",
        "n_decisions": result.n_decisions,
        "promote_requested": options.promote,
    }


def _numbers(estimate) -> dict[str, float]:
    return {
        "value": estimate.value,
        "ci_low": estimate.ci_low,
        "ci_high": estimate.ci_high,
        "ess": estimate.effective_sample_size,
        "max_weight": estimate.max_weight,
    }
