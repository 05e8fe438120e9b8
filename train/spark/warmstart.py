"""The warm-start job on Spark: the local job's run, with the data work done by Spark.

Same stages, same MLflow run (params, stepped and final metrics, plots, dataset, model
files, version tags, alias rules) through the local job's own logging and registration
functions, plus the engine and the Spark settings as params. What differs is where the data
lives: events and items are parquet files or directories of them (any path the executors can
read), and only per-batch sums, per-partition reward sums (:mod:`train.spark.progress`),
metrics and a few head rows come back to the driver.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pandas as pd

from adapters import runs
from adapters.data import datasets, spark
from adapters.data.ingest_output import read_calibration
from skbandit import schema
from skbandit.cleaning import validate_items
from skbandit.exceptions import SkbanditError
from skbandit.version_items import trained_item_parameters
from train.spark import contexts as contexts
from train.spark import engine as engine
from train.spark import metrics as metrics
from train.spark import progress as spark_progress
from train.warmstart import data as training_data
from train.warmstart import job as job
from train.warmstart import report as warmstart_report
from train.warmstart.history import History

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_MASTER = "local[*]"
HEAD_ROWS = 1_000
"""Learned events brought to the driver for the dataset schema and the model's input example."""


class SparkHistory(History):
    """A :class:`History` whose events stay on Spark: ``events`` and ``contexts`` hold the
    first :data:`HEAD_ROWS` learned events, the counts and the last time are stored."""

    def __init__(self, events, contexts, *, n_events, trained_until, **counts):
        super().__init__(events=events, contexts=contexts, **counts)
        self._n_events, self._trained_until = n_events, trained_until

    @property
    def n_events(self) -> int:
        return self._n_events

    @property
    def trained_until(self) -> pd.Timestamp:
        return self._trained_until


@dataclass
class Prepared:
    """Everything the Spark stages hand to each other."""

    history: SparkHistory
    order: engine.TimeOrder
    stats: engine.Statistics
    starts: object


def run_spark_warmstart(options, console: Console) -> job.WarmstartResult:
    """:func:`train.warmstart.job.run_warmstart` with the data work on Spark.

    Without pyspark or Java this fails before any run is started, saying what to install.
    """
    spark.check_spark_installed()
    return job.run_warmstart(options, console, train_step=train_and_register)


def train_and_register(options, console: Console, timer):
    """The local job's training step (``_train_and_register`` in
    :mod:`train.warmstart.job`) on Spark: same stages and return value."""
    with timer("load"):
        if getattr(options, "calibrate", None) is not None:
            raise SkbanditError(
                "--calibrate is not available with --engine spark; calibrate "
                "with `python -m train.ingest` (its items file carries the "
                "calibration) or use --engine local"
            )
        continued, model = job.start(options)
        engine.check_estimator(model)
        session = spark.start_session(getattr(options, "spark_master", None) or DEFAULT_MASTER)
        events_path, items_path, source = resolve_paths(options.events, options.items, options.seed)
        raw = spark.read_parquet(session, events_path, "events")
        items, item_report = read_items(session, items_path)
    learned_until = continued.learned_until if continued else None
    with timer("contexts"):
        cached = (
            f", cached in {datasets.default_school_dir(options.seed)}"
            if source.startswith("default-school")
            else ""
        )
        console.print(f"data: {source}{cached}", soft_wrap=True)
        calibration = None if source.startswith("default-school") else read_calibration(items_path)
        order, history, event_report = prepare(
            raw,
            items,
            source,
            options.max_events,
            learned_until,
            pd.Timestamp(calibration["window_end"]) if calibration else None,
        )
        data = _training_data(history, items, source, event_report, item_report, calibration)
        _say_what_was_skipped(console, history, continued)
        training_data.print_data_report(console, data, order.unscored)
    try:
        with timer("features"):
            prepared = _statistics(model, order, history, options.batch_size)
        with timer("params"):
            warmstart_report.log_params(options, model, history, source)
            runs.log_params(training_data.run_params(data, order.unscored))
            runs.log_params(spark.session_settings(session))
        with timer("replay"):
            result = _replay(model, order, prepared)
        model.calibration = result.calibration  # learned from progressive forecasts
        model.item_parameters = trained_item_parameters(data.items)
        with timer("progress"):
            job.keep_progress_bands(
                model, spark_progress.progress_bands(order, model.progress_bands)
            )
    finally:
        order.frame.unpersist()
    version = job.log_and_register(
        options,
        model,
        history,
        data,
        result,
        timer,
        console,
        log_dataset=lambda: spark.log_training_events_head(
            history.events,
            history.n_events,
            source,
            digest=history.data_hash[:16],
            target=schema.CORRECT,
        ),
    )
    return version, history, result


def _replay(model, order: engine.TimeOrder, prepared: Prepared) -> metrics.ReplayResult:
    """Prefix sums on the driver, every scored batch scored on Spark, the progressive
    probability calibrations fitted on the driver from per-score sums, then every forecast
    calibrated and measured on Spark."""
    fresh = not hasattr(model.estimator, "n_features_in_")
    states = engine.prefix_models(model.estimator, prepared.stats)
    rates = engine.global_rates(prepared.stats)
    raw = metrics.raw_scores(
        order, model, prepared.starts, states, rates, score_from=order.unscored
    )
    scored = None
    try:
        schedule = metrics.refit_schedule(prepared.starts, order.unscored)
        maps, calibration = metrics.progressive_calibrations(raw, schedule)
        scored = metrics.predictions(raw, schedule, maps, order.cache)
        first = int(prepared.stats.n[0]) if fresh and order.unscored == 0 else 0
        return metrics.replay_result(
            scored,
            order.n_learned - order.unscored,
            first_batch=first,
            n_unscored=order.unscored,
            calibration=calibration,
        )
    finally:
        if scored is not None:
            scored.unpersist()
        raw.unpersist()


def _training_data(history, items, source, event_report, item_report, calibration):
    """What the local job's :class:`train.warmstart.data.TrainingData` says about the data."""
    reports = SimpleNamespace(event_report=event_report, item_report=item_report)
    if source.startswith("default-school"):  # the local job keeps no reports for it
        reports = SimpleNamespace(event_report=None, item_report=None)
    return training_data.TrainingData(
        history.events, items, source, training_data.cleaning_counts(reports), calibration
    )


def resolve_paths(events, items, seed):
    """``(events, items, source)`` like :func:`adapters.data.datasets.load_school`, as paths.

    With neither path given: ``SKBANDIT_EVENTS``/``SKBANDIT_ITEMS``, else the default school's
    cached parquet files (generated on first use).
    """
    if events is None and items is None:
        events, items = os.environ.get(datasets.ENV_EVENTS), os.environ.get(datasets.ENV_ITEMS)
        where = f"${datasets.ENV_EVENTS} and ${datasets.ENV_ITEMS}"
    else:
        where = "--events and --items"
    if (events is None) != (items is None):
        raise SkbanditError(
            f"give {where} together (or neither, for the default school); "
            f"found only {'events' if events is not None else 'items'}"
        )
    if events is None:
        datasets.load_default_school(seed)  # writes the cache on first use
        folder = datasets.default_school_dir(seed)
        used = datasets.default_school_config().seed if seed is None else seed
        return (
            str(folder / datasets.EVENTS_FILE),
            str(folder / datasets.ITEMS_FILE),
            f"default-school(seed={used})",
        )
    return str(events), str(items), f"{events} + {items}"


def read_items(session, path):
    """The items table on the driver (it is small) and its cleaning report, by the local
    engine's rules."""
    frame = spark.read_parquet(session, path, "items").toPandas()
    frame = frame.sort_values(spark.ROW_ORDER).drop(columns=spark.ROW_ORDER)
    return validate_items(frame.reset_index(drop=True), source=str(path))


def prepare(
    raw,
    items: pd.DataFrame,
    source: str,
    max_events: int | None,
    learned_until: pd.Timestamp | None,
    calibrated_until: pd.Timestamp | None = None,
):
    """Clean, check, build contexts and sort them by time; the head rows come to the driver.

    Returns the :class:`~train.spark.engine.TimeOrder`, the :class:`SparkHistory` and the
    events' :class:`~skbandit.cleaning.CleaningReport`.
    """
    from pyspark.sql import functions as F

    n_raw = raw.count()
    cache = contexts.cache_for(raw.sparkSession, n_raw)
    events = contexts.clean_events(raw, source, contexts.partitions_for(raw.sparkSession, n_raw))
    events = events.persist(cache)
    try:
        report, unknown = contexts.check_events(raw, events, items, source)
        order = _time_order(
            events,
            items,
            report.n_rows_out,
            unknown,
            max_events,
            learned_until,
            calibrated_until,
            cache,
        )
    finally:
        events.unpersist()
    learned = (
        order.frame
        if learned_until is None
        else order.frame.where(F.col(contexts.TS) > pd.Timestamp(learned_until).value)
    )
    take = min(HEAD_ROWS, order.n_learned)
    head = learned.orderBy(contexts.TS, spark.ROW_ORDER).limit(take).toPandas()
    wanted = [int(v) for v in head[spark.ROW_ORDER]]
    rows = (
        contexts.cleaned_rows(raw, source)
        .where(F.col(spark.ROW_ORDER).isin(wanted))
        .toPandas()
        .drop_duplicates(spark.ROW_ORDER)
    )
    history = SparkHistory(
        events=contexts.local_dtypes(rows, raw.columns),
        contexts=head[[*schema.MODEL_INPUT, schema.N_PRIOR]].reset_index(drop=True),
        n_unknown_items=unknown,
        n_context_only=order.first,
        data_hash="",
        n_events=order.n_learned,
        trained_until=None,
    )
    return order, history, report


def _time_order(
    events, items, rows: int, unknown: int, max_events, learned_until, calibrated_until, cache
) -> engine.TimeOrder:
    if rows == unknown:
        detail = f" ({unknown} events name items missing from the items table)" if unknown else ""
        raise SkbanditError(
            f"no events to train on{detail}; pass an events file with at least "
            "one attempt on a known item"
        )
    until_ns = None if learned_until is None else pd.Timestamp(learned_until).value
    calibrated_ns = None if calibrated_until is None else pd.Timestamp(calibrated_until).value
    buckets = engine.time_buckets(events, rows - unknown)
    n_buckets = len(buckets[1])
    order = engine.time_order(
        contexts.historical_contexts(events, items, buckets, n_buckets),
        n_buckets,
        max_events=max_events,
        learned_until_ns=until_ns,
        calibrated_until_ns=calibrated_ns,
        cache=cache,
    )
    if order.n_learned <= 0:
        order.frame.unpersist()
        raise SkbanditError(
            f"no events after {learned_until.isoformat()}, where the continued "
            "model's training ended; pass an events file with newer attempts"
        )
    if order.unscored >= order.n_learned:
        order.frame.unpersist()
        raise SkbanditError(
            f"every learned event is inside the calibration window (up to "
            f"{pd.Timestamp(calibrated_until).isoformat()}), so progressive validation could "
            "score none; pass events that go on after the window"
        )
    return order


def _statistics(model, order, history: SparkHistory, batch_size: int) -> Prepared:
    starts = engine.batch_starts(order.n_learned, batch_size, order.unscored)
    stats = engine.statistics(order, model, starts)
    history.data_hash = stats.data_hash
    history._trained_until = pd.Timestamp(stats.trained_until_ns, unit="ns", tz="UTC")
    return Prepared(history, order, stats, starts)


def _say_what_was_skipped(console, history: History, continued) -> None:
    if history.n_unknown_items:
        console.print(
            f"[yellow]skipped {history.n_unknown_items:,} events whose item is not in "
            "the items table (they cannot be featurised)[/yellow]"
        )
    if continued is not None and continued.learned_until is not None:
        version = f"{continued.version.name} v{continued.version.version}"
        until = continued.learned_until.isoformat()
        if history.n_context_only:
            console.print(
                f"continuing {version}: {history.n_context_only:,} events up to "
                f"{until} used as context only"
            )
        else:
            console.print(
                f"[yellow]continuing {version}: the events start after {until}, so "
                "contexts are computed from these events only (students and items "
                "look new); pass the full history to get the same model as training "
                "on all of it[/yellow]"
            )
