"""The warm-start job: load, replay with progressive validation, log to MLflow, register."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from serve import registry
from serve.datasets import load_school
from skbandit.exceptions import SkbanditError
from skbandit.features import feature_set_of, make_pipeline
from skbandit.progressive import ReplayResult, replay_history
from train import plots
from train.history import History, prepare_history
from train.model_logging import TRAINED_UNTIL_TAG, log_and_register

if TYPE_CHECKING:
    from rich.console import Console

    from train.warmstart import WarmstartOptions

SUMMARY_METRICS = (
    "bandit_log_loss",
    "irt_log_loss",
    "global_rate_log_loss",
    "bandit_auc",
    "irt_auc",
)


@dataclass
class Continued:
    """A registered version that training continues from."""

    pipeline: object
    version: object  # mlflow ModelVersion
    learned_until: pd.Timestamp | None


def run_warmstart(options: WarmstartOptions, console: Console):
    """Run the whole job; return the registered ModelVersion. Raises SkbanditError on bad input."""
    import mlflow

    tracking_uri = registry.configure_tracking()
    registry.use_experiment(registry.WARMSTART_EXPERIMENT)
    continued = _load_continued(options.from_model, options.feature_set)
    pipeline = _starting_pipeline(options, continued)
    with mlflow.start_run() as run:
        try:
            history, source = _load_history(options, continued, console)
            _log_params(options, pipeline, history, source)
            result = _replay_with_progress(pipeline, history, options.batch_size, console)
            _log_results(result, pipeline, history)
            version = log_and_register(
                pipeline, history, options.model_name, options.alias, result.final_metrics()
            )
        except BaseException as error:  # the run is marked FAILED by start_run; say why
            mlflow.set_tag("failure_reason", str(error) or type(error).__name__)
            raise
    _print_summary(console, version, options.alias, history, result, run.info.run_id, tracking_uri)
    return version


def _load_continued(from_model: str | None, feature_set: str | None) -> Continued | None:
    if from_model is None:
        return None
    pipeline, version = registry.load_pipeline(registry.parse_model_ref(from_model))
    source_set = feature_set_of(pipeline)
    if feature_set is not None and feature_set != source_set:
        raise SkbanditError(
            f"--from {from_model} uses feature set {source_set!r} but --feature-set "
            f"{feature_set!r} was requested; drop --feature-set or train a fresh model"
        )
    until = version.tags.get(TRAINED_UNTIL_TAG)
    return Continued(pipeline, version, pd.Timestamp(until) if until else None)


def _starting_pipeline(options: WarmstartOptions, continued: Continued | None):
    if continued is None:
        return make_pipeline(
            options.feature_set or "default",
            alpha=1.0 if options.alpha is None else options.alpha,
            l2=1.0 if options.l2 is None else options.l2,
        )
    estimator = continued.pipeline[-1]
    if options.alpha is not None:
        estimator.set_params(alpha=options.alpha)
    if options.l2 is not None and options.l2 != estimator.l2:
        raise SkbanditError(
            f"--l2 {options.l2} differs from the continued model's ridge strength "
            f"{estimator.l2}; the ridge is part of the learned state, so train a fresh model"
        )
    return continued.pipeline


def _load_history(options: WarmstartOptions, continued: Continued | None, console: Console):
    events, items, source = load_school(options.events, options.items, seed=options.seed)
    history = prepare_history(
        events,
        items,
        max_events=options.max_events,
        learned_until=continued.learned_until if continued else None,
    )
    if history.n_unknown_items:
        console.print(
            f"[yellow]skipped {history.n_unknown_items} events whose item is not in the items "
            "table[/yellow]"
        )
    return history, source


def _log_params(options: WarmstartOptions, pipeline, history: History, source: str) -> None:
    import mlflow

    estimator = pipeline[-1]
    mlflow.log_params(
        {
            "alpha": estimator.alpha,
            "l2": estimator.l2,
            "feature_set": feature_set_of(pipeline),
            "batch_size": options.batch_size,
            "data_source": source,
            "event_count": len(history.events),
            "data_hash": history.data_hash,
            "from_model": options.from_model or "",
            "max_events": options.max_events or "",
            "skipped_unknown_items": history.n_unknown_items,
            "context_only_events": history.n_context_only,
        }
    )
    from mlflow.data.sources import LocalArtifactDatasetSource

    dataset = mlflow.data.from_pandas(
        history.events,
        source=LocalArtifactDatasetSource(source),
        name="events",
        digest=history.data_hash[:16],
    )
    mlflow.log_input(dataset, context="training")


def _replay_with_progress(pipeline, history: History, batch_size: int, console: Console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("replaying events", total=len(history.events))
        return replay_history(
            pipeline,
            history.contexts,
            history.events["correct"].to_numpy(),
            batch_size=batch_size,
            on_batch=lambda n: progress.advance(task, n),
        )


def _log_results(result: ReplayResult, pipeline, history: History) -> None:
    import mlflow
    from mlflow.entities import Metric

    client, run_id = mlflow.MlflowClient(), mlflow.active_run().info.run_id
    stepped = [
        Metric(key, float(value), 0, int(row["events_seen"]))
        for row in result.history.to_dict("records")
        for key, value in row.items()
        if key != "events_seen" and pd.notna(value)
    ]
    for start in range(0, len(stepped), 1000):  # the tracking API takes 1,000 per call
        client.log_batch(run_id, metrics=stepped[start : start + 1000])
    mlflow.log_metrics({f"final_{k}": v for k, v in result.final_metrics().items() if pd.notna(v)})
    estimator = pipeline[-1]
    names = pipeline[:-1].get_feature_names_out()
    for filename, figure in (
        ("progressive_validation.png", plots.progressive_validation(result.history)),
        ("calibration.png", plots.calibration(result.predictions)),
        ("uncertainty_decay.png", plots.uncertainty_decay(result.history)),
        ("coefficients.png", plots.coefficients(names, estimator.coef_)),
    ):
        mlflow.log_figure(figure, f"plots/{filename}")
        plots.plt.close(figure)


def _print_summary(console: Console, version, alias, history, result, run_id, tracking_uri):
    from rich.table import Table

    metrics = result.final_metrics()
    table = Table(title="Warm-start finished", show_header=False)
    table.add_row("model", f"{version.name} v{version.version} (alias {alias})")
    table.add_row("events learned", f"{len(history.events):,}")
    table.add_row("updates (total)", f"{int(version.tags['n_updates']):,}")
    for key in SUMMARY_METRICS:
        table.add_row(key, f"{metrics[key]:.4f}")
    table.add_row("run id", run_id)
    table.add_row("tracking store", tracking_uri)
    table.add_row("open the UI", f"mlflow ui --backend-store-uri {tracking_uri}")
    console.print(table)
