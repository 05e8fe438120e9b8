"""What a simulated deployment shows: a line per day, two tables, and one MLflow run.

Per day (step = day in the ``skbandit-deploy`` experiment): ``decisions``, ``success_rate``,
``learning_gain`` (true ability growth per student who practised, logits),
``exploration_cost`` (true success of the served model's greedy choice minus that of the
item served, averaged), ``served_version``, ``outcomes_joined`` and ``outcomes``; on nights
that judged a challenger also ``challenger_version``, ``challenger_{ips,snips,dr}`` with
their ``_ci_low``/``_ci_high``, ``challenger_truth`` and ``champion_truth`` (the
simulator's success values on the day's decisions), ``challenger_teaching`` and
``champion_teaching`` (its expected ability gain per attempt), ``gate_estimate``,
``gate_ci_low``, ``gate_ci_high``, ``gate_ess`` and ``promoted`` (1/0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from train.evaluate.deploy.night import OPE_ESTIMATORS

if TYPE_CHECKING:
    from rich.console import Console

    from train.evaluate.deploy.options import DayResult, DeployOptions, DeployResult

EXPERIMENT = "skbandit-deploy"
TABLE_ARTIFACT = "days.csv"


def day_metrics(result: DayResult) -> dict:
    """The day's figures as MLflow metrics (see the module docstring)."""
    served, night = result.served, result.night
    row = {
        "day": result.day,
        "decisions": len(served.decisions),
        "success_rate": served.success_rate,
        "learning_gain": served.learning_gain,
        "exploration_cost": served.exploration_cost,
        "served_version": float(served.version),
        "outcomes": night.join.events,
        "outcomes_joined": night.join.matched,
        "next_challenger": float(night.next_challenger),
        "seconds": result.seconds,
    }
    check = night.check
    if check is not None:
        row["challenger_version"] = float(check.version)
        for name in OPE_ESTIMATORS:
            estimate = check.estimates[name]
            row[f"challenger_{name}"] = estimate.value
            row[f"challenger_{name}_ci_low"] = estimate.ci_low
            row[f"challenger_{name}_ci_high"] = estimate.ci_high
        difference = check.gate.difference
        row.update(
            challenger_truth=check.truth,
            champion_truth=check.champion_truth,
            challenger_teaching=check.teaching,
            champion_teaching=check.champion_teaching,
            gate_estimate=difference.value,
            gate_ci_low=difference.ci_low,
            gate_ci_high=difference.ci_high,
            gate_ess=difference.effective_sample_size,
            promoted=float(check.gate.promoted),
        )
    return row


def print_day(console: Console, result: DayResult) -> None:
    """One line for the day and one for its night, as they finish."""
    served, night = result.served, result.night
    console.print(
        f"day {result.day} ({served.date:%a %Y-%m-%d}): v{served.version} served "
        f"{len(served.decisions):,} decisions; success {served.success_rate:.3f}, gain "
        f"{served.learning_gain:+.4f}, exploration cost {served.exploration_cost:+.4f}; "
        f"{night.join.matched:,} of {night.join.events:,} outcomes joined",
        highlight=False,
    )
    check = night.check
    verdict = "no challenger waiting (the champion is the only version)"
    if check is not None:
        gate = check.gate
        verdict = (
            f"v{check.version}: DR {check.estimates['dr'].value:.3f}, truth "
            f"{check.truth:.3f} (champion v{served.version}: {check.champion_truth:.3f}; "
            "teaching "
            f"{1000 * (check.teaching - check.champion_teaching):+.2f} mlogit/attempt); "
            f"gate {'PROMOTED' if gate.promoted else 'refused'} ({gate.reason})"
        )
    console.print(
        f"  night {result.day}: {verdict}; next challenger v{night.next_challenger} "
        f"[{result.seconds:.0f} s]",
        highlight=False,
    )


def print_result(console: Console, result: DeployResult) -> None:
    """The two tables (80 columns) and where the run is."""
    from rich.table import Table

    days = Table(title="Served days", box=None, pad_edge=False)
    for name in ("day", "date", "served", "decisions", "success", "gain", "expl. cost"):
        days.add_column(name, justify="left" if name == "date" else "right", no_wrap=True)
    nights = Table(
        title="Nights: the waiting challenger on the day's log", box=None, pad_edge=False
    )
    for name in (
        "day",
        "chall.",
        "IPS",
        "SNIPS",
        "DR",
        "truth",
        "gate Δ pts [95% CI]",
        "ESS",
        "promoted",
    ):
        nights.add_column(name, justify="right", no_wrap=True)
    for day in result.days:
        row = day_metrics(day)
        days.add_row(
            str(day.day),
            f"{day.served.date:%Y-%m-%d}",
            f"v{day.served.version}",
            f"{row['decisions']:,}",
            f"{row['success_rate']:.3f}",
            f"{row['learning_gain']:+.4f}",
            f"{row['exploration_cost']:+.4f}",
        )
        if "challenger_version" in row:
            nights.add_row(
                str(day.day),
                f"v{day.night.check.version}",
                *(f"{row[f'challenger_{name}']:.3f}" for name in OPE_ESTIMATORS),
                f"{row['challenger_truth']:.3f}",
                _points(row["gate_estimate"], row["gate_ci_low"], row["gate_ci_high"]),
                f"{row['gate_ess']:.0f}",
                "yes" if row["promoted"] else "no",
            )
    console.print(days)
    if nights.row_count:
        console.print(nights)
    promoted = sum(1 for day in result.days if day.night.check and day.night.check.gate.promoted)
    last = result.days[-1].night if result.days else None
    console.print(
        f"{promoted} promotion(s) in {len(result.days)} day(s); champion v"
        f"{last.champion if last else result.first_version}, waiting challenger "
        f"v{last.next_challenger if last else result.first_version}; "
        f"{result.seconds:.0f} s. MLflow run {result.run_id} (experiment {EXPERIMENT}).",
        highlight=False,
    )


def _points(value: float, low: float, high: float) -> str:
    """A difference of success rates in percentage points with its interval.

    >>> _points(0.0252, 0.0052, 0.0456)
    '+2.5 [+0.5,+4.6]'
    """
    return f"{100 * value:+.1f} [{100 * low:+.1f},{100 * high:+.1f}]"


def log_run(
    options: DeployOptions, days: list[DayResult], failed: BaseException | None = None
) -> str:
    """One run of :data:`EXPERIMENT`: the options, every day's metrics (step = day) and the
    table; ended ``FAILED`` (``KILLED`` for an interrupt) with the reason when ``failed``."""
    import pandas as pd

    from adapters import runs, tracking

    tracking.use_experiment(EXPERIMENT)
    run_id = runs.start_run()
    try:
        runs.set_tag(
            "mlflow.runName",
            f"deploy {options.model_name} · {options.days} days · "
            f"{options.students} students · seed {options.seed}",
        )
        runs.log_params(
            {
                "days": options.days,
                "students": options.students,
                "seed": options.seed,
                "history_days": options.history_days,
                "via": options.via,
                "model_name": options.model_name,
                "decision_log": options.decision_log or "default",
                "gate_reward": options.gate_reward,
                "n_bootstrap": options.n_bootstrap,
            }
        )
        rows = [day_metrics(day) for day in days]
        if rows:
            runs.log_metric_history(rows, step="day")
            runs.log_text(pd.DataFrame(rows).to_csv(index=False), TABLE_ARTIFACT)
            runs.log_metrics({"promotions": sum(row.get("promoted", 0.0) for row in rows)})
    except BaseException as error:
        runs.end_failed_run(str(error).splitlines()[0] if str(error) else "error", "FAILED")
        raise
    if failed is None:
        runs.end_run()
    else:
        status = "FAILED" if isinstance(failed, Exception) else "KILLED"
        runs.end_failed_run(
            (str(failed).strip().splitlines() or [type(failed).__name__])[0], status
        )
    return run_id
