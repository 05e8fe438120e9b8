"""``python -m train.evaluate sweep``: every learning model x policy x seed, logged to MLflow.

Runs :func:`skbandit.study.sweep.run_sweep`, prints the table (policy x learning model:
held-out post-test gain with its 95 % interval over schools, paired gain vs the rule, share
of the rule-to-learning-oracle gap closed, success rate), writes it as CSV and Markdown with
one plot, and logs the parameters, the figures as metrics and the artifacts to the
experiment ``skbandit-evaluation``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from rich.console import Console
from rich.progress import Progress

from adapters import runs, tracking
from adapters.data.report_files import write_report_files
from skbandit.exceptions import SkbanditError
from skbandit.study.sweep import SweepConfig, quick_sweep_config, run_sweep
from train._cli import one_line_errors

if TYPE_CHECKING:
    import pandas as pd

    from skbandit.study.sweep import SweepResult


def main(
    *,
    seeds,
    students,
    days,
    learning,
    policies,
    history_students,
    jobs,
    quick,
    out_dir,
) -> None:
    """What ``sweep`` does with its options (:mod:`train.evaluate.cli`)."""
    console = Console()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with one_line_errors():
        config = sweep_config(
            seeds, students, days, learning, jobs, quick, policies, history_students
        )
        started = time.perf_counter()
        result = _run(config, console)
        seconds = time.perf_counter() - started
        run_id = log_sweep(result, seconds, out_dir)
    console.print(markdown_table(result.table), highlight=False, soft_wrap=True)
    for text in teaching_texts(result).values():
        console.print(text, highlight=False, soft_wrap=True)
    console.print(
        f"{len(result.runs)} runs in {seconds:.0f} s "
        f"({seconds * config.n_jobs / len(result.runs):.1f} s per run per process); "
        f"logged to MLflow run {run_id} (experiment skbandit-evaluation)",
        highlight=False,
        soft_wrap=True,
    )


def sweep_config(
    seeds, students, days, learning, jobs, quick, policies=None, history_students=None
) -> SweepConfig:
    """The default (or ``--quick``) sweep with the options given."""

    sizes = (
        ("--seeds", seeds),
        ("--students", students),
        ("--days", days),
        ("--history-students", history_students),
    )
    for flag, value in sizes:
        if value is not None and value < 1:
            raise SkbanditError(f"{flag} must be at least 1; found {value}")
    changes = {"n_jobs": jobs}
    if seeds is not None:
        changes["seeds"] = tuple(range(seeds))
    if students is not None:
        changes["n_students"] = students
    if days is not None:
        changes["days"] = days
    if learning:
        changes["learning"] = tuple(name.strip() for name in learning.split(",") if name.strip())
    if policies:
        changes["policies"] = tuple(name.strip() for name in policies.split(",") if name.strip())
    if history_students is not None:
        changes["history_students"] = history_students
    return replace(quick_sweep_config() if quick else SweepConfig(), **changes)


def _run(config: SweepConfig, console) -> SweepResult:

    total = len(config.learning) * len(config.policies) * len(config.seeds)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("sweeping learning models x policies x seeds...", total=total)
        return run_sweep(config, on_done=lambda *_: progress.advance(task))


def log_sweep(result: SweepResult, seconds: float, out_dir: Path | None) -> str:
    """Log one MLflow run with params, metrics, the table and the plot; return its id."""

    tracking.configure_tracking()
    tracking.use_experiment(tracking.EVALUATION_EXPERIMENT)
    figure = sweep_figure(result.table)
    texts = {
        "sweep.csv": result.table.to_csv(index=False),
        "sweep_runs.csv": result.runs.to_csv(index=False),
        "sweep.md": markdown_table(result.table),
        **teaching_texts(result),
    }
    params = {
        key: (",".join(map(str, value)) if isinstance(value, tuple) else value)
        for key, value in asdict(result.config).items()
    }
    with runs.tracked_run(run_name="learning-model-sweep") as run_id:
        runs.set_tag("study", "sweep")
        runs.log_params(params)
        runs.log_metrics(sweep_metrics(result.table) | {"wall_seconds": seconds})
        runs.log_figure(figure, "plots/sweep.png")
        for name, text in texts.items():
            runs.log_text(text, f"tables/{name}")
    if out_dir is not None:
        write_report_files(out_dir, {"sweep.png": figure}, texts)
    return run_id


def teaching_texts(result: SweepResult) -> dict[str, str]:
    """The teaching tables (gap shares; the experiment's targets) when the sweep has them."""
    from skbandit.study.teaching import experiment_markdown, gap_markdown, gap_shares

    if "oracle_achievable" not in result.config.policies:
        return {}
    texts = {"teaching.md": gap_markdown(gap_shares(result.runs))}
    if result.experiment is not None:
        texts["experiment.md"] = experiment_markdown(result.experiment)
        texts["experiment_targets.csv"] = result.experiment.targets.to_csv(index=False)
    return texts


def sweep_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``<learning>/<policy>/<column>`` for the gain, paired gain and gap (finite only).

    >>> import pandas as pd
    >>> table = pd.DataFrame({"learning": ["additive"], "policy": ["rule"], "posttest": [3.0],
    ...                       "vs_rule": [float("nan")], "gap_closed": [float("nan")],
    ...                       "success_rate": [0.6]})
    >>> sweep_metrics(table)
    {'additive/rule/posttest': 3.0, 'additive/rule/success_rate': 0.6}
    """
    out = {}
    for row in table.itertuples(index=False):
        for column in ("posttest", "vs_rule", "gap_closed", "success_rate"):
            value = getattr(row, column)
            if value == value:
                out[f"{row.learning}/{row.policy}/{column}"] = float(value)
    return out


def markdown_table(table: pd.DataFrame) -> str:
    """The sweep table as Markdown: one row per (learning model, policy).

    >>> import pandas as pd
    >>> table = pd.DataFrame({"learning": ["additive"], "policy": ["rule"], "posttest": [3.0],
    ...     "posttest_low": [2.5], "posttest_high": [3.5], "vs_rule": [float("nan")],
    ...     "vs_rule_low": [float("nan")], "vs_rule_high": [float("nan")],
    ...     "gap_closed": [float("nan")], "success_rate": [0.61], "n_seeds": [2]})
    >>> print(markdown_table(table).splitlines()[2])
    | additive | rule | 3.00 [2.50, 3.50] | - | - | 0.610 |
    """
    lines = [
        "| learning model | policy | post-test gain (points) | vs rule | gap closed | success |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        gain = _interval(row.posttest, row.posttest_low, row.posttest_high, "{:.2f}")
        paired = _interval(row.vs_rule, row.vs_rule_low, row.vs_rule_high, "{:+.2f}")
        gap = "-" if row.gap_closed != row.gap_closed else f"{row.gap_closed:.0%}"
        lines.append(
            f"| {row.learning} | {row.policy} | {gain} | {paired} | {gap} "
            f"| {row.success_rate:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _interval(mean, low, high, fmt) -> str:
    if mean != mean:
        return "-"
    if low != low:
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"


def sweep_figure(table: pd.DataFrame) -> Figure:
    """Paired post-test gain vs the rule, per learning model (panel) and policy (bar)."""
    learnings = list(dict.fromkeys(table["learning"]))
    cols = min(len(learnings), 5)
    rows = -(-len(learnings) // cols)
    fig = Figure(figsize=(3.2 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, learning in zip(axes, learnings, strict=False):
        part = table[table["learning"] == learning]
        y = range(len(part))
        err = [
            (part["vs_rule"] - part["vs_rule_low"]).fillna(0),
            (part["vs_rule_high"] - part["vs_rule"]).fillna(0),
        ]
        ax.barh(list(y), part["vs_rule"].fillna(0), xerr=err, color="C0", alpha=0.7)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_yticks(list(y), part["policy"], fontsize="small")
        ax.invert_yaxis()
        ax.set_title(learning, fontsize="medium")
    for ax in axes[len(learnings) :]:
        ax.set_visible(False)
    fig.supxlabel("post-test gain minus the rule's (points of 100; 95% CI over schools)")
    return fig
