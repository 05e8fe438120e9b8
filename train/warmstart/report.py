"""What a warm-start run reports: params, metrics and plots logged to its MLflow run, its name
in the UI, and the summary printed at the end (shared by the local and the Spark engine)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from adapters import registry, runs, tracking
from adapters.registry import CHAMPION_ALIAS
from adapters.registry.register import alias_holder
from skbandit import schema
from train.warmstart import plots

if TYPE_CHECKING:
    from rich.console import Console

    from skbandit.progressive import ReplayResult
    from train.warmstart.history import History

SUMMARY_METRICS = (
    "bandit_log_loss",
    "irt_log_loss",
    "global_rate_log_loss",
    "bandit_brier",
    "irt_brier",
    "bandit_auc",
    "irt_auc",
)


def log_params(options, model, history: History, source: str) -> None:
    """The run's params (``options``: a :class:`train.warmstart.job.WarmstartOptions`) and
    its name in the UI (:func:`run_name`)."""
    estimator = model.estimator
    runs.log_params(
        {
            "alpha": estimator.alpha,
            "l2": estimator.l2,
            "feature_set": model.feature_set,
            "batch_size": options.batch_size,
            "data_source": source,
            "event_count": history.n_events,
            "engine": options.engine,
            "data_hash": history.data_hash,
            "from_model": options.from_model or "",
            "max_events": options.max_events or "",
            "skipped_unknown_items": history.n_unknown_items,
            "context_only_events": history.n_context_only,
            "reward": schema.CORRECT,
        }
    )
    runs.set_tag("mlflow.runName", run_name(source, model.feature_set))


def log_metrics(result: ReplayResult) -> None:
    """Per-batch metrics ``batch_*`` (step = events seen) from the second batch on, the
    untrained first batch as ``first_batch_*``, then the whole-replay ``final_*``.

    The two are named apart because they differ: ``batch_bandit_log_loss`` at the last step
    is the last batch alone, ``final_bandit_log_loss`` covers every replayed event (what
    the terminal summary and the registered version show).
    """
    first, rows = first_batch_metrics(result.history), batch_metric_rows(result.history)
    runs.log_metric_history(rows[1:], step="events_seen")
    final = {f"final_{k}": v for k, v in result.final_metrics().items() if pd.notna(v)}
    runs.log_metrics({**first, **final})


def first_batch_metrics(history: pd.DataFrame) -> dict[str, float]:
    """The untrained first batch as ``first_batch_*`` metrics, apart from the ``batch_*``
    charts (its log loss, from a model that has seen nothing, would flatten them).

    >>> first_batch_metrics(pd.DataFrame({"events_seen": [100, 200], "x": [3.9, 0.6]}))
    {'first_batch_x': 3.9, 'first_batch_events_seen': 100.0}
    """
    if history.empty:
        return {}
    row = history.iloc[0]
    out = {
        f"first_batch_{c}": float(row[c])
        for c in history.columns
        if c != "events_seen" and pd.notna(row[c])
    }
    return {**out, "first_batch_events_seen": float(row["events_seen"])}


def batch_metric_rows(history: pd.DataFrame) -> list[dict]:
    """The per-batch history as metric rows: every column but ``events_seen`` as ``batch_*``
    (:func:`log_metrics` logs them from the second batch on)."""
    return history.rename(columns=lambda c: c if c == "events_seen" else f"batch_{c}").to_dict(
        "records"
    )


def run_name(source: str, feature_set: str, when: pd.Timestamp | None = None) -> str:
    """``<data> · <feature set> features · <UTC date and minute>``, the run's name in the UI.

    >>> run_name("default-school(seed=1)", "default", pd.Timestamp("2026-01-02 03:04"))
    'default-school(seed=1) · default features · 2026-01-02 03:04'
    >>> run_name("/d/events.parquet + /d/items.parquet", "seed", pd.Timestamp("2026-01-02"))
    'events.parquet · seed features · 2026-01-02 00:00'
    """
    when = pd.Timestamp.now(tz="UTC") if when is None else when
    data = source.split(" + ")[0].rsplit("/", 1)[-1]
    return f"{data} · {feature_set} features · {when:%Y-%m-%d %H:%M}"


def log_plots(result: ReplayResult, model) -> None:
    names = model.feature_names()
    for filename, draw in (
        ("progressive_validation.png", lambda: plots.progressive_validation(result.history)),
        ("calibration.png", lambda: plots.calibration(result.predictions)),
        ("uncertainty_decay.png", lambda: plots.uncertainty_decay(result.history)),
        ("coefficients.png", lambda: plots.coefficients(names, model.estimator.coef_)),
    ):
        figure = draw()
        try:
            runs.log_figure(figure, filename)  # top level: MLflow compares only those
        finally:
            plots.plt.close(figure)


def print_summary(console: Console, alias: str, outcome) -> None:
    """The terminal summary of a finished run (``outcome``: a
    :class:`train.warmstart.job.WarmstartResult`)."""
    from rich.table import Table

    version, metrics = outcome.version, outcome.replay.final_metrics()
    table = Table(title="Warm-start finished", show_header=False)
    table.add_column(no_wrap=True)  # metric names exactly as in the MLflow UI
    table.add_column()
    if outcome.alias_holder in (None, str(version.version)):
        table.add_row("model", f"{version.name} v{version.version} (alias {alias})")
    else:
        table.add_row(
            "model",
            f"{version.name} v{version.version} (alias {alias} was set, "
            f"but a concurrent run has since moved it to v{outcome.alias_holder})",
        )
    table.add_row("events learned", f"{outcome.history.n_events:,}")
    if outcome.history.n_context_only:
        table.add_row("context-only events", f"{outcome.history.n_context_only:,}")
    if outcome.history.n_unknown_items:
        table.add_row("skipped (unknown item)", f"{outcome.history.n_unknown_items:,}")
    table.add_row("updates (total)", f"{registry.version_details(version)['n_updates']:,}")
    if outcome.replay.n_unscored:
        table.add_row("learned, not scored", f"{outcome.replay.n_unscored:,} (calibration window)")
    for key in SUMMARY_METRICS:
        table.add_row(f"final_{key}", f"{metrics[key]:.4f}")
    after = outcome.replay.metrics_after_first_batch()
    if after is not None:
        table.add_row("final_after_first_batch_bandit_log_loss", f"{after['bandit_log_loss']:.4f}")
    table.add_row("run id", outcome.run_id)
    console.print(table)
    if alias_holder(version.name, CHAMPION_ALIAS) == str(version.version):
        console.print(
            f"{version.name} had no champion, so v{version.version} is also "
            f"'{CHAMPION_ALIAS}' (first run). Later versions get '{alias}' only; "
            "champion moves only with python -m train.evaluate compare --promote.",
            soft_wrap=True,
            highlight=False,
        )
    # outside the table so that a narrow terminal never cuts the commands
    uri = tracking.redact_uri(outcome.tracking_uri)
    console.print(
        f"Metric names are the ones the MLflow UI shows (batch_* are per batch).\n"
        f"Open the UI: mlflow ui --backend-store-uri {uri}\n"
        f"then browse {tracking.runs_page_hint(outcome.experiment_id)}",
        soft_wrap=True,
        highlight=False,
    )
