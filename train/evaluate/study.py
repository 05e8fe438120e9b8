"""``python -m train.evaluate simulate``: the simulation study, logged to MLflow.

Runs every policy of :mod:`skbandit.study.runner` online in simulated schools (one per seed),
prints a table of success rate, cumulative regret against the oracle and learning gain with
95 % intervals over seeds, and logs the parameters, every figure as a metric
(``<policy>/<metric>``, ``..._ci_low``, ``..._ci_high``), the regret and learning curves (PNG)
and the result tables (CSV) to the experiment ``skbandit-evaluation``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.figure import Figure
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from adapters import runs, tracking
from adapters.data.report_files import write_report_files
from skbandit.exceptions import SkbanditError
from skbandit.study.config import StudyConfig, quick_study_config
from skbandit.study.runner import confidence_interval, run_study
from train._cli import one_line_errors

if TYPE_CHECKING:
    from skbandit.study.runner import StudyResult

LABELS = {
    "oracle": "oracle (max true success)",
    "oracle_learning": "oracle (max true learning)",
    "linucb_default": "LinUCB, default features",
    "linucb_seed": "LinUCB, seed features",
    "linucb_target_band": "LinUCB, target band",
    "linucb_progress": "LinUCB, learning progress",
    "irt_target": "IRT rule aimed at the target",
    "rule": "rule-based (baseline)",
    "thompson": "Thompson per item (non-contextual)",
    "random": "uniform random",
}
ZOOMED = ("oracle", "linucb_default", "linucb_seed", "thompson")
"""Policies of the regret plot's second panel (the others' regret grows ten times faster)."""
TABLE_METRICS = {
    "success_rate": ("success rate", "{:.3f}"),
    "cumulative_regret": ("cumulative regret", "{:,.0f}"),
    "learning_gain": ("learning gain / student", "{:.2f}"),
    "posttest_end": ("post-test gain (points)", "{:.2f}"),
}
PAIRED_TABLE_METRICS = {
    "success_rate_vs_rule": ("Δ success vs rule", "{:+.3f}"),
    "learning_gain_vs_rule": ("Δ gain vs rule", "{:+.2f}"),
    "posttest_end_vs_rule": ("Δ post-test vs rule", "{:+.2f}"),
    "success_rate_vs_thompson": ("Δ success vs Thompson", "{:+.3f}"),
    "cumulative_regret_vs_thompson": ("Δ regret vs Thompson", "{:+,.0f}"),
    "learning_gain_vs_thompson": ("Δ gain vs Thompson", "{:+.2f}"),
}


def main(
    *,
    seeds,
    students,
    days,
    alpha,
    target,
    jobs,
    quick,
    out_dir,
    json_output,
) -> None:
    """What ``simulate`` does with its options (:mod:`train.evaluate.cli`)."""
    console = Console()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with one_line_errors():
        config = study_config(seeds, students, days, alpha, target, jobs, quick)
        result, seconds = _run_with_progress(config, console, quiet=json_output)
        run_id = log_study(result, seconds, out_dir)
    if json_output:
        print(
            json.dumps(
                {
                    "run_id": run_id,
                    "seconds": round(seconds, 1),
                    "summary": result.summary.to_dict(orient="records"),
                }
            )
        )
        return
    for table in results_tables(result):
        console.print(table)
    console.print(
        f"{len(result.runs)} runs in {seconds:.0f} s; logged to MLflow run {run_id} "
        f"(experiment skbandit-evaluation)",
        highlight=False,
        soft_wrap=True,
    )


def study_config(seeds, students, days, alpha, target, jobs, quick) -> StudyConfig:
    """The study asked for: the default (or ``--quick``) study with the options given."""
    for flag, value in (("--seeds", seeds), ("--students", students), ("--days", days)):
        if value is not None and value < 1:
            raise SkbanditError(f"{flag} must be at least 1; found {value}")
    base = quick_study_config() if quick else StudyConfig()
    changes = {"alpha": alpha, "target": target, "n_jobs": jobs}
    if seeds is not None:
        changes["seeds"] = tuple(range(seeds))
    if students is not None:
        changes["n_students"] = students
    if days is not None:
        changes["days"] = days
    return replace(base, **changes)


def _run_with_progress(config: StudyConfig, console: Console, quiet: bool):

    started = time.perf_counter()
    total = len(config.policies) * len(config.seeds)
    with Progress(console=console, transient=True, disable=quiet) as progress:
        task = progress.add_task("simulating policies in the school...", total=total)
        result = run_study(config, on_done=lambda *_: progress.advance(task))
    return result, time.perf_counter() - started


def log_study(result: StudyResult, seconds: float, out_dir: Path | None) -> str:
    """Log one MLflow run with params, metrics, plots and tables; return its id."""
    tracking.configure_tracking()
    tracking.use_experiment(tracking.EVALUATION_EXPERIMENT)
    figures = {
        "regret.png": regret_figure(result.curves),
        "learning_curves.png": learning_figure(result.curves),
    }
    tables = {"summary.csv": result.summary, "runs.csv": result.runs, "curves.csv": result.curves}
    texts = {name: table.to_csv(index=False) for name, table in tables.items()}
    params = {
        key: (",".join(map(str, value)) if isinstance(value, tuple) else value)
        for key, value in asdict(result.config).items()
    }
    with runs.tracked_run(run_name="simulation-study") as run_id:
        runs.set_tag("study", "simulation")
        runs.log_params(params)
        runs.log_metrics(summary_metrics(result.summary) | {"wall_seconds": seconds})
        for name, figure in figures.items():
            runs.log_figure(figure, f"plots/{name}")
        for name, text in texts.items():
            runs.log_text(text, f"tables/{name}")
    if out_dir is not None:
        write_report_files(out_dir, figures, texts)
    return run_id


def summary_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """``<policy>/<metric>`` (mean), ``..._ci_low`` and ``..._ci_high`` (finite values only).

    >>> import pandas as pd
    >>> summary = pd.DataFrame({"policy": ["rule", "rule"], "metric": ["success", "regret"],
    ...                         "mean": [0.645, 62745.0], "ci_low": [0.64, float("nan")],
    ...                         "ci_high": [0.651, float("nan")]})
    >>> for key, value in summary_metrics(summary).items():
    ...     print(key, value)
    rule/success 0.645
    rule/success_ci_low 0.64
    rule/success_ci_high 0.651
    rule/regret 62745.0
    """
    metrics = {}
    for row in summary.itertuples(index=False):
        key = f"{row.policy}/{row.metric}"
        for suffix, value in (("", row.mean), ("_ci_low", row.ci_low), ("_ci_high", row.ci_high)):
            if value == value:  # NaN bounds (one seed) are not logged
                metrics[key + suffix] = float(value)
    return metrics


def results_tables(result: StudyResult) -> list:
    """Two rich tables, one row per policy, cells ``mean [low, high]``: the metrics, and the
    paired differences to the rule and to the non-contextual bandit on the same seeds."""
    n_seeds = len(result.config.seeds)
    days = "the whole year" if result.config.days is None else f"{result.config.days} days"
    return [
        _table(
            result,
            TABLE_METRICS,
            f"Simulation study: {result.config.n_students} students, "
            f"{days}, {n_seeds} seeds; mean [95% CI over seeds]",
        ),
        _table(
            result,
            PAIRED_TABLE_METRICS,
            "Paired differences on the same seeds (same school and noise); mean [95% CI]",
        ),
    ]


def _table(result: StudyResult, metrics: dict, title: str):
    table = Table(title=title)
    table.add_column("policy")
    for header, _ in metrics.values():
        table.add_column(header, justify="right")
    summary = result.summary.set_index(["policy", "metric"])
    for policy in result.config.policies:
        cells = [
            format_interval(summary, policy, metric, fmt) for metric, (_, fmt) in metrics.items()
        ]
        table.add_row(LABELS.get(policy, policy), *cells)
    return table


def format_interval(summary: pd.DataFrame, policy: str, metric: str, fmt: str) -> str:
    """``mean [low, high]`` of one summary row (``-`` when it is missing)."""
    if (policy, metric) not in summary.index:
        return "-"
    row = summary.loc[(policy, metric)]
    if row["ci_low"] != row["ci_low"]:
        return fmt.format(row["mean"])
    return f"{fmt.format(row['mean'])} [{fmt.format(row['ci_low'])}, {fmt.format(row['ci_high'])}]"


def curve_band(curves: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean over seeds of a curve column per (policy, bin), with a 95 % t-band.

    Policies in the order of :data:`LABELS` (the study's order).
    """

    order = {name: i for i, name in enumerate(LABELS)}
    curves = curves.sort_values(
        ["policy", "bin"],
        key=lambda col: col.map(order) if col.name == "policy" else col,
        kind="stable",
    )
    rows = []
    for (policy, bin_), group in curves.groupby(["policy", "bin"], sort=False):
        mean, low, high, _ = confidence_interval(group[column])
        rows.append((policy, bin_, group["decisions"].mean(), mean, low, high))
    return pd.DataFrame(rows, columns=["policy", "bin", "decisions", "mean", "low", "high"])


def regret_figure(curves: pd.DataFrame) -> Figure:
    """Cumulative regret against the max-success oracle: all policies, and the learners."""
    fig = Figure(figsize=(13, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    band = curve_band(curves, "cumulative_regret")
    _plot_bands(left, band, _bands(curves))
    _plot_bands(right, band[band["policy"].isin(ZOOMED)], _bands(curves))
    left.set_ylabel("cumulative regret (sum of max p - p chosen)")
    right.set_title("max-success learners and the oracle", fontsize="medium")
    left.legend(fontsize="small")
    fig.suptitle("Regret against the max-success oracle (mean over seeds, 95% band)")
    return fig


def learning_figure(curves: pd.DataFrame) -> Figure:
    """Success rate per stretch of decisions, and cumulative true learning gain per student."""
    fig = Figure(figsize=(13, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    _plot_bands(left, curve_band(curves, "success_rate"), _bands(curves))
    left.set_ylabel("success rate (within each stretch of decisions)")
    _plot_bands(right, curve_band(curves, "learning_gain"), _bands(curves))
    right.set_ylabel("true ability gained per student (logits, cumulative)")
    left.legend(fontsize="small")
    fig.suptitle("Learning curves (mean over seeds, 95% band)")
    return fig


def _plot_bands(ax, band: pd.DataFrame, show_band: bool) -> None:
    for policy, rows in band.groupby("policy", sort=False):
        color = f"C{list(LABELS).index(policy) % 10}" if policy in LABELS else None
        ax.plot(rows["decisions"], rows["mean"], label=LABELS.get(policy, policy), color=color)
        if rows["low"].notna().all() and show_band:
            ax.fill_between(rows["decisions"], rows["low"], rows["high"], alpha=0.2, color=color)
    ax.set_xlabel("decisions")


def _bands(curves: pd.DataFrame) -> bool:
    """Draw the t-bands only from 3 seeds on (with 2 they are too wide to read the plot)."""
    return curves["seed"].nunique() >= 3
