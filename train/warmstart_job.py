"""The warm-start job: load, replay with progressive validation, log to MLflow, register.

Everything after the tracking store is configured happens inside one MLflow run. The run
ends ``FINISHED`` only after the new version is registered and the alias points at it; any
error ends it ``FAILED`` (an interruption ``KILLED``) with a ``failure_reason`` tag, and
nothing is registered and no alias moves (see :func:`adapters.model_logging.register_version`).

Continuing a version (``--from``): the continued model's version carries the timestamp of
the last event it learned (``trained_until``). The events file is replayed in time order;
events at or before that time are *context only* (they shape later students' and items'
contexts but are not learned again), later events are learned. So training on A and then
continuing on an events file holding A and B gives the same model as training on A∪B.
When the file holds only B (no event at or before ``trained_until``), the contexts are
computed from B alone: students and items look new at B's start, the model still adds B's
evidence to A's, but it is not the A∪B model; the job says so and records
``context_only_events = 0``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from mlflow.data.pandas_dataset import PandasDataset

from adapters import datasets, registry, tracking
from adapters.model_logging import TRAINED_UNTIL_TAG, log_pipeline, register_version, version_tags
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.features import FEATURE_SETS, feature_set_of, make_pipeline
from skbandit.progressive import ReplayResult, model_features, replay_history
from train import plots
from train.history import History, prepare_history

if TYPE_CHECKING:
    from rich.console import Console

SUMMARY_METRICS = (
    "bandit_log_loss",
    "irt_log_loss",
    "global_rate_log_loss",
    "bandit_brier",
    "irt_brier",
    "bandit_auc",
    "irt_auc",
)
DATASET_SCHEMA_ROWS = 1_000
"""Rows the logged dataset's schema is inferred from (mlflow scans every value otherwise:
about 40 s per million events)."""
FAILURE_REASON_TAG = "failure_reason"
_ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class WarmstartOptions:
    """Everything the job was asked to do (logged as run parameters)."""

    events: Path | None = None
    items: Path | None = None
    model_name: str = "skbandit-linucb"
    alias: str = "champion"
    from_model: str | None = None
    alpha: float | None = None
    l2: float | None = None
    feature_set: str | None = None
    batch_size: int = 10_000
    max_events: int | None = None
    seed: int | None = None


@dataclass
class Continued:
    """A registered version that training continues from."""

    pipeline: object
    version: object  # mlflow ModelVersion
    learned_until: pd.Timestamp | None


@dataclass
class StageTimer:
    """Wall-clock seconds per named stage of the job (for the summary and the benchmark)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed


@dataclass
class WarmstartResult:
    """What a finished job produced."""

    version: object  # mlflow ModelVersion
    run_id: str
    tracking_uri: str
    history: History
    replay: ReplayResult
    seconds: dict[str, float]


def run_warmstart(options: WarmstartOptions, console: Console) -> WarmstartResult:
    """Run the whole job and return what it registered.

    Raises
    ------
    SkbanditError
        On bad options or bad data (one line: what, expected, found, what to do). The run is
        then marked FAILED and nothing is registered.
    """
    import mlflow

    check_options(options)
    timer = StageTimer()
    with timer("tracking"):
        tracking_uri = tracking.configure_tracking()
        tracking.use_experiment(tracking.WARMSTART_EXPERIMENT)
        run = mlflow.start_run()
    try:
        version, history, result = _train_and_register(options, console, timer)
    except KeyboardInterrupt:
        _end_failed_run("interrupted before the model was registered", "KILLED")
        raise
    except BaseException as error:
        _end_failed_run(_first_line(error), "FAILED")
        raise
    mlflow.end_run()
    outcome = WarmstartResult(version, run.info.run_id, tracking_uri, history, result,
                              timer.seconds)
    _print_summary(console, options.alias, outcome)
    return outcome


def check_options(options: WarmstartOptions) -> None:
    """Refuse options that would only fail after training (before any run is started)."""
    if options.feature_set is not None and options.feature_set not in FEATURE_SETS:
        raise SkbanditError(
            f"unknown --feature-set {options.feature_set!r} (expected one of "
            f"{', '.join(FEATURE_SETS)}); pass --feature-set default or --feature-set seed"
        )
    if not _ALIAS.match(options.alias) or options.alias == "latest" or re.fullmatch(
        r"[vV]\d+", options.alias
    ):
        raise SkbanditError(
            f"--alias {options.alias!r} is not a usable alias (expected letters, digits, '_' "
            "or '-', not 'latest' or v<number>); pass for example --alias challenger"
        )
    if not options.model_name.strip() or any(c in options.model_name for c in "@/:"):
        raise SkbanditError(
            f"--model-name {options.model_name!r} is not a usable model name (expected a "
            "non-empty name without '@', '/' or ':'); pass for example --model-name "
            f"{registry.DEFAULT_MODEL_NAME}"
        )


def _train_and_register(options: WarmstartOptions, console: Console, timer: StageTimer):
    import mlflow

    with timer("load"):
        continued = _load_continued(options.from_model, options.feature_set)
        pipeline = _starting_pipeline(options, continued)
        events, items, source = datasets.load_school(
            options.events, options.items, seed=options.seed
        )
    with timer("contexts"):
        history = _prepare(events, items, options, continued, source, console)
    with timer("params"):
        _log_params(options, pipeline, history, source)
    with timer("features"):
        features = model_features(pipeline, history.contexts)
    with timer("replay"):
        result = _replay_with_progress(pipeline, history, features, options.batch_size, console)
    with timer("metrics"):
        metrics = result.final_metrics()
        _log_metrics(result)
    with timer("plots"):
        _log_plots(result, pipeline)
    with timer("dataset"):
        _log_dataset(history, source)
    with timer("model"):
        info = log_pipeline(pipeline, history)
    with timer("register"):
        tags = version_tags(pipeline, history, mlflow.active_run().info.run_id, metrics)
        version = register_version(info.model_uri, options.model_name, options.alias, tags)
    return version, history, result


def _end_failed_run(reason: str, status: str) -> None:
    """Tag the active run with why it failed and end it; never masks the original error."""
    import mlflow

    for step in (lambda: mlflow.set_tag(FAILURE_REASON_TAG, reason[:5000]),
                 lambda: mlflow.end_run(status)):
        try:
            step()
        except Exception:  # the store may be the problem: keep the first error
            pass


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _load_continued(from_model: str | None, feature_set: str | None) -> Continued | None:
    if from_model is None:
        return None
    pipeline, version = registry.load_pipeline(registry.parse_model_ref(from_model))
    source_set = feature_set_of(pipeline)
    if feature_set is not None and feature_set != source_set:
        raise SkbanditError(
            f"--from {from_model} uses feature set {source_set!r} but --feature-set "
            f"{feature_set!r} was requested; drop --feature-set to continue it, or drop "
            "--from to train a fresh model"
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


def _prepare(events, items, options, continued, source: str, console: Console) -> History:
    if options.events is None and source.startswith("default-school"):
        folder = datasets.default_school_dir(options.seed)
        console.print(f"data: {source}, cached in {folder}", soft_wrap=True)
    else:
        console.print(f"data: {source}", soft_wrap=True)
    history = prepare_history(
        events,
        items,
        max_events=options.max_events,
        learned_until=continued.learned_until if continued else None,
    )
    if history.n_unknown_items:
        console.print(
            f"[yellow]skipped {history.n_unknown_items:,} events whose item is not in the "
            "items table (they cannot be featurised)[/yellow]"
        )
    if continued is not None and continued.learned_until is not None:
        if history.n_context_only:
            console.print(
                f"continuing {continued.version.name} v{continued.version.version}: "
                f"{history.n_context_only:,} events up to {continued.learned_until.isoformat()} "
                "used as context only"
            )
        else:
            console.print(
                f"[yellow]continuing {continued.version.name} v{continued.version.version}: "
                f"the events start after {continued.learned_until.isoformat()}, so contexts "
                "are computed from these events only (students and items look new); pass the "
                "full history to get the same model as training on all of it[/yellow]"
            )
    return history


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
            "reward": schema.CORRECT,
        }
    )


class EventsDataset(PandasDataset):
    """An event table whose schema is inferred from its first ``DATASET_SCHEMA_ROWS`` rows."""

    @property
    def schema(self):
        import warnings

        import mlflow

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            return mlflow.data.from_pandas(self.df.head(DATASET_SCHEMA_ROWS)).schema


def _log_dataset(history: History, source: str) -> None:
    """Log the learned events as the run's training input."""
    import mlflow
    from mlflow.data.sources import LocalArtifactDatasetSource

    dataset = EventsDataset(
        history.events,
        source=LocalArtifactDatasetSource(source),
        name="events",
        digest=history.data_hash[:16],
        targets=schema.CORRECT,
    )
    mlflow.log_input(dataset, context="training")


def _replay_with_progress(pipeline, history: History, features, batch_size: int, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("replaying events", total=len(history.events))
        return replay_history(
            pipeline,
            history.contexts,
            history.events[schema.CORRECT].to_numpy(),
            batch_size=batch_size,
            on_batch=lambda n: progress.advance(task, n),
            features=features,
        )


def _log_metrics(result: ReplayResult) -> None:
    """Per-batch metrics with ``step`` = events seen, then the final ones (``final_*``)."""
    import mlflow
    from mlflow.entities import Metric

    client, run_id = mlflow.MlflowClient(), mlflow.active_run().info.run_id
    stamp = int(time.time() * 1000)
    stepped = [
        Metric(key, float(value), stamp, int(row["events_seen"]))
        for row in result.history.to_dict("records")
        for key, value in row.items()
        if key != "events_seen" and pd.notna(value)
    ]
    for start in range(0, len(stepped), 1000):  # the tracking API takes 1,000 per call
        client.log_batch(run_id, metrics=stepped[start : start + 1000])
    final = {f"final_{k}": v for k, v in result.final_metrics().items() if pd.notna(v)}
    mlflow.log_metrics(final)


def _log_plots(result: ReplayResult, pipeline) -> None:
    import mlflow

    names = pipeline[:-1].get_feature_names_out()
    for filename, draw in (
        ("progressive_validation.png", lambda: plots.progressive_validation(result.history)),
        ("calibration.png", lambda: plots.calibration(result.predictions)),
        ("uncertainty_decay.png", lambda: plots.uncertainty_decay(result.history)),
        ("coefficients.png", lambda: plots.coefficients(names, pipeline[-1].coef_)),
    ):
        figure = draw()
        try:
            mlflow.log_figure(figure, f"plots/{filename}")
        finally:
            plots.plt.close(figure)


def _print_summary(console: Console, alias: str, outcome: WarmstartResult) -> None:
    from rich.table import Table

    version, metrics = outcome.version, outcome.replay.final_metrics()
    table = Table(title="Warm-start finished", show_header=False)
    table.add_row("model", f"{version.name} v{version.version} (alias {alias})")
    table.add_row("events learned", f"{len(outcome.history.events):,}")
    if outcome.history.n_context_only:
        table.add_row("context-only events", f"{outcome.history.n_context_only:,}")
    if outcome.history.n_unknown_items:
        table.add_row("skipped (unknown item)", f"{outcome.history.n_unknown_items:,}")
    table.add_row("updates (total)", f"{int(version.tags['n_updates']):,}")
    for key in SUMMARY_METRICS:
        table.add_row(key, f"{metrics[key]:.4f}")
    table.add_row("run id", outcome.run_id)
    table.add_row("tracking store", outcome.tracking_uri)
    table.add_row("open the UI", f"mlflow ui --backend-store-uri {outcome.tracking_uri}")
    console.print(table)
