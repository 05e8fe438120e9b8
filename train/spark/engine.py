"""Time order, sufficient statistics and prefix models on Spark (the Spark engine's second half).

LinUCB's state is a sum over events (``A = l2·I + Σ x xᵀ``, ``b = Σ y x``), so training is
a map over partitions and a sum. Progressive validation keeps the local replay's batches
(:func:`skbandit.progressive.batch_slices`: 100 events, doubling up to ``batch_size``):

1. the contexts are range-partitioned and sorted by (time, row order) and persisted; each
   partition's first global position comes from the partition sizes;
2. every partition applies the model's features (:meth:`skbandit.model.TrainedModel.
   features`) and sums ``xxᵀ`` and ``yx`` per batch (one small row per batch and
   partition), with the row hashes of :func:`train.warmstart.history.events_hash`;
3. the driver adds the partial sums per batch and takes prefix sums (one d×d matrix per
   batch): the model before batch ``k`` scores batch ``k``;
4. every partition scores its rows with its batches' models and the metrics are aggregated
   (:mod:`train.spark.metrics`).

``forgetting < 1`` makes the state depend on row order, so it is refused here.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adapters.data.spark import ROW_ORDER
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.progressive import FIRST_BATCH, _split_at, batch_slices
from train.spark.contexts import BUCKET, TS, partitions_for

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

HASH_COLUMNS = (schema.USER_ID, schema.ITEM_ID, schema.TIMESTAMP, schema.CORRECT)
MODEL_COLUMNS = (*schema.MODEL_INPUT, schema.N_PRIOR, schema.CORRECT)
"""What the model reads of the contexts: its input (the model was fitted on these
columns), and the reward."""
_STATS_SCHEMA = (
    "pid int, batch int, n long, sum_y double, max_ts long, xtx array<double>, "
    "xty array<double>, hashes binary"
)


@dataclass
class TimeOrder:
    """Contexts sorted by (time, row order) and persisted, with each partition's offset."""

    frame: DataFrame
    offsets: np.ndarray
    first: int
    """Global position of the first learned event (context-only events come before it)."""
    stop: int
    """One past the last position used (``max_events`` cuts here)."""
    unscored: int = 0
    """Learned events inside the item-calibration window: learned, not scored."""
    cache: object = None
    """Storage level of the engine's persisted tables (:func:`train.spark.contexts.cache_for`)."""

    @property
    def n_learned(self) -> int:
        return self.stop - self.first


@dataclass
class Statistics:
    """Per-batch sums of the learned events, and what the run logs about them."""

    n: np.ndarray
    sum_y: np.ndarray
    xtx: np.ndarray
    xty: np.ndarray
    data_hash: str
    trained_until_ns: int


def check_estimator(model) -> None:
    """Refuse what the Spark engine cannot reproduce exactly."""
    forgetting = float(model.estimator.forgetting)
    if forgetting != 1.0:
        raise SkbanditError(
            f"the Spark engine needs forgetting=1 (the model's state is then a plain sum over "
            f"events), but this model has forgetting={forgetting}; use --engine local"
        )


def time_buckets(events: DataFrame, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Time ranges of about equal size, and a label per range that Spark hashes to its index.

    ``repartition(n, label)`` then puts range ``p`` in partition ``p``: the contexts arrive
    in time order, partition by partition, without a range partitioner (which would run the
    whole context computation once more just to sample it). Returns ``(bounds, labels)``:
    ``n - 1`` bounds in int64 nanoseconds (a start ``t`` falls in range
    ``searchsorted(bounds, t, "right")``) and ``n`` int64 labels.
    """
    from pyspark.sql import functions as F

    spark = events.sparkSession
    n = partitions_for(spark, n_rows)
    quantiles = events.approxQuantile(TS, [k / n for k in range(1, n)], 1.0 / (10 * n))
    bounds = np.unique(np.array([int(q) for q in quantiles], dtype=np.int64))
    n = len(bounds) + 1
    ids = spark.range(0, 64 * n).select("id", F.expr(f"pmod(hash(id), {n})").alias("p"))
    first = {}
    for row in ids.collect():
        first.setdefault(row["p"], row["id"])
    if len(first) < n:  # practically impossible with 64 candidates per partition
        raise SkbanditError(f"could not label {n} time partitions; pass fewer events per run")
    return bounds, np.array([first[p] for p in range(n)], dtype=np.int64)


def time_order(
    contexts: DataFrame,
    n_buckets: int,
    *,
    max_events: int | None,
    learned_until_ns: int | None,
    cache,
    calibrated_until_ns: int | None = None,
) -> TimeOrder:
    """Partition by time bucket, sort, persist and count the contexts (one job).

    ``contexts`` carry :func:`time_buckets` labels (``_bucket``); positions follow from the
    partition sizes. Events at or before ``learned_until_ns`` are context only; learned
    events at or before ``calibrated_until_ns`` are learned but not scored. ``cache`` is
    the storage level (:func:`train.spark.contexts.cache_for`), kept for the later tables.
    """
    from pyspark.sql import functions as F

    frame = (
        contexts.repartition(n_buckets, BUCKET)
        .drop(BUCKET)
        .sortWithinPartitions(TS, ROW_ORDER)
        .persist(cache)
    )

    def until(ns):
        return (F.lit(False) if ns is None else F.col(TS) <= F.lit(ns)).cast("long")

    sizes = (
        frame.groupBy(F.spark_partition_id().alias("pid"))
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(until(learned_until_ns)).alias("ctx"),
            F.sum(until(calibrated_until_ns)).alias("cal"),
        )
        .collect()
    )
    counts = np.zeros(frame.rdd.getNumPartitions(), dtype=np.int64)
    for row in sizes:
        counts[row["pid"]] = row["n"]
    stop = int(counts.sum()) if max_events is None else min(int(counts.sum()), max_events)
    first = min(sum(int(row["ctx"] or 0) for row in sizes), stop)
    calibrated = min(sum(int(row["cal"] or 0) for row in sizes), stop)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return TimeOrder(frame, offsets, first, stop, max(0, calibrated - first), cache)


def batch_starts(n: int, batch_size: int, score_from: int = 0) -> np.ndarray:
    """First learned position of every batch: the local replay's doubling schedule, the
    batch holding ``score_from`` split there (events before it are learned, not scored)."""
    slices = _split_at(batch_slices(n, batch_size, first=FIRST_BATCH), score_from)
    return np.array([s.start for s in slices], dtype=np.int64)


def statistics(order: TimeOrder, model, starts: np.ndarray) -> Statistics:
    """Per-batch ``Σ xxᵀ``, ``Σ yx``, counts, the data hash and the last learned time.

    All partitions are summed at once (persisted); the driver then reads them one by one, in
    time order, so it never holds every row hash.
    """

    estimator = model.estimator
    d = int(estimator.n_features_in_) if hasattr(estimator, "n_features_in_") else None
    offsets, first, stop = order.offsets, order.first, order.stop

    def partials(batches):
        from pyspark import TaskContext

        pid = TaskContext.get().partitionId()
        sums, hashes, pos = {}, [], int(offsets[pid])
        for frame, learned in learned_rows(batches, pos, first, stop):
            if frame is None:
                continue
            x = model.features(frame)
            y = frame[schema.CORRECT].to_numpy(dtype=np.float64)
            batch = np.searchsorted(starts, learned, side="right") - 1
            for k, lo, hi in batch_runs(batch):
                entry = sums.setdefault(k, [0, 0.0, 0, 0.0, 0.0])
                entry[0] += hi - lo
                entry[1] += float(y[lo:hi].sum())
                entry[2] = max(entry[2], int(frame[TS].iloc[hi - 1]))
                entry[3] = entry[3] + x[lo:hi].T @ x[lo:hi]
                entry[4] = entry[4] + x[lo:hi].T @ y[lo:hi]
            hashes.append(_row_hashes(frame))
        rows = [
            {
                "pid": pid,
                "batch": k,
                "n": e[0],
                "sum_y": e[1],
                "max_ts": e[2],
                "xtx": np.ravel(e[3]).tolist(),
                "xty": np.ravel(e[4]).tolist(),
                "hashes": None,
            }
            for k, e in sorted(sums.items())
        ]
        rows.append(
            {
                "pid": pid,
                "batch": -1,
                "n": 0,
                "sum_y": 0.0,
                "max_ts": 0,
                "xtx": None,
                "xty": None,
                "hashes": b"".join(hashes),
            }
        )
        yield pd.DataFrame(rows)

    columns = (schema.USER_ID, schema.ITEM_ID, TS, *MODEL_COLUMNS)
    summed = order.frame.select(*columns).mapInPandas(partials, _STATS_SCHEMA).persist(order.cache)
    summed.count()  # toLocalIterator alone computes at most two partitions at a time
    try:
        return _add_partials(summed.toLocalIterator(), len(starts), d)
    finally:
        summed.unpersist()


def _add_partials(rows, k: int, d: int | None) -> Statistics:
    """The per-batch sums of the partitions' rows (in time order: the hash is in event order)."""
    n, sum_y, max_ts = np.zeros(k, np.int64), np.zeros(k), 0
    xtx = xty = None
    digest = hashlib.sha256()
    for row in rows:
        if row["batch"] < 0:
            digest.update(row["hashes"])
            continue
        b = row["batch"]
        vec = np.asarray(row["xty"])
        if xtx is None:
            d = d or len(vec)
            xtx, xty = np.zeros((k, d, d)), np.zeros((k, d))
        n[b] += row["n"]
        sum_y[b] += row["sum_y"]
        max_ts = max(max_ts, row["max_ts"])
        xtx[b] += np.asarray(row["xtx"]).reshape(d, d)
        xty[b] += vec
    return Statistics(n, sum_y, xtx, xty, digest.hexdigest(), max_ts)


def learned_events(order: TimeOrder, columns) -> DataFrame:
    """The learned events (positions ``[first, stop)``) with ``columns`` only (lazily)."""
    offsets, first, stop = order.offsets, order.first, order.stop
    frame = order.frame.select(*columns)

    def keep(batches):
        from pyspark import TaskContext

        pos = int(offsets[TaskContext.get().partitionId()])
        for part, _ in learned_rows(batches, pos, first, stop):
            if part is not None:
                yield part

    return frame.mapInPandas(keep, frame.schema)


def prefix_models(estimator, stats: Statistics) -> list[dict | None]:
    """The LinUCB state before each batch (``None`` before the first batch of a fresh model
    without a prior mean; one with a prior starts from it, as the local replay does).

    Also leaves ``estimator`` in the state after the last batch (through
    ``LinUCB.partial_fit_sums``, which starts a fresh model from its prior).
    """
    states = []
    if not hasattr(estimator, "n_features_in_") and estimator.prior_mean is not None:
        estimator.initialize(stats.xtx.shape[-1])  # predicts the prior's X @ prior_mean
    for k in range(len(stats.n)):
        fitted = hasattr(estimator, "n_features_in_")
        states.append(estimator.get_state() if fitted else None)
        estimator.partial_fit_sums(stats.xtx[k], stats.xty[k], int(stats.n[k]))
    return states


def global_rates(stats: Statistics, prior: float = 0.5) -> np.ndarray:
    """The running success rate before each batch, as the local replay's baseline."""
    successes = prior + np.concatenate([[0.0], np.cumsum(stats.sum_y)[:-1]])
    seen = 1.0 + np.concatenate([[0], np.cumsum(stats.n)[:-1]])
    return successes / seen


def learned_rows(batches, pos: int, first: int, stop: int):
    """Each batch's rows (pandas frames) in ``[first, stop)``, with their learned positions."""
    for frame in batches:
        positions = pos + np.arange(len(frame))
        pos += len(frame)
        keep = (positions >= first) & (positions < stop)
        if not keep.any():
            yield None, None
            continue
        part = frame if keep.all() else frame.loc[keep].reset_index(drop=True)
        yield part, positions[keep] - first


def batch_runs(batch: np.ndarray):
    """``(k, lo, hi)`` for each run of equal batch ids (rows are in time order)."""
    cuts = np.flatnonzero(np.diff(batch)) + 1
    bounds = np.concatenate([[0], cuts, [len(batch)]])
    return [(int(batch[lo]), int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)]


def _row_hashes(frame: pd.DataFrame) -> bytes:
    """The rows' hashes as :func:`train.warmstart.history.events_hash` computes them (same
    dtypes)."""
    events = pd.DataFrame(
        {
            schema.USER_ID: frame[schema.USER_ID].astype(object),
            schema.ITEM_ID: frame[schema.ITEM_ID].astype(object),
            schema.TIMESTAMP: pd.to_datetime(frame[TS].to_numpy(np.int64), unit="ns", utc=True),
            schema.CORRECT: frame[schema.CORRECT].to_numpy(dtype=np.int64),
        }
    )
    return pd.util.hash_pandas_object(events[list(HASH_COLUMNS)], index=False).to_numpy().tobytes()
