"""Sufficient statistics and progressive validation on Spark (the Spark engine's second half).

LinUCB's state is a sum over events (``A = l2·I + Σ x xᵀ``, ``b = Σ y x``), so training is
a map over partitions and a sum. Progressive validation keeps the local replay's batches
(:func:`skbandit.progressive.batch_slices`: 100 events, doubling up to ``batch_size``):

1. the contexts are range-partitioned and sorted by (time, row order) and persisted; each
   partition's first global position comes from the partition sizes;
2. every partition applies the pipeline's feature function (:func:`skbandit.features.
   transform_features`) and sums ``xxᵀ`` and ``yx`` per batch (one small row per batch and
   partition), with the row hashes of :func:`train.history.events_hash`;
3. the driver adds the partial sums per batch and takes prefix sums (one d×d matrix per
   batch): the model before batch ``k`` scores batch ``k``;
4. every partition scores its rows with its batches' models (:class:`skbandit.linucb.LinUCB`
   from each state) and the per-batch metrics are :func:`skbandit.progressive.prediction_metrics`
   per batch; the final log-loss, Brier score and mean uncertainty are their event-weighted
   means and the final AUCs come from Spark ML's exact (unbinned) ROC area.

``forgetting < 1`` makes the state depend on row order, so it is refused here.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adapters.spark import ROW_ORDER
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.features import transform_features
from skbandit.linucb import STATE_VERSION, LinUCB, _cholesky_inverse_and_solve
from skbandit.progressive import (
    FIRST_BATCH,
    PREDICTORS,
    PROBABILITY_FLOOR,
    ReplayResult,
    _split_at,
    batch_slices,
    irt_prediction,
    prediction_metrics,
)
from train.spark_contexts import BUCKET, TS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ROWS_PER_PARTITION = 500_000
"""Target partition size of the time-ordered contexts."""
PLOT_ROWS = 1_000_000
"""Predictions brought to the driver for the calibration plot (a seeded sample beyond)."""
HASH_COLUMNS = (schema.USER_ID, schema.ITEM_ID, schema.TIMESTAMP, schema.CORRECT)
_STATS_SCHEMA = ("pid int, batch int, n long, sum_y double, max_ts long, xtx array<double>, "
                 "xty array<double>, hashes binary")
_PREDICTION_SCHEMA = ("batch int, reward double, bandit double, global_rate double, irt double, "
                      "uncertainty double")


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


class SparkReplayResult(ReplayResult):
    """A :class:`ReplayResult` whose metrics were aggregated on Spark.

    ``predictions`` holds every scored event up to :data:`PLOT_ROWS`, else a seeded sample
    (the calibration plot only needs that many); the final metrics and those after the first
    batch come from all of them.
    """

    def __init__(self, history, predictions, final, after_first, first_batch, n_unscored):
        super().__init__(history=history, predictions=predictions, first_batch=first_batch,
                         n_unscored=n_unscored)
        self._final, self._after_first = dict(final), after_first

    def metrics_after_first_batch(self) -> dict[str, float] | None:
        return None if self._after_first is None else dict(self._after_first)


def check_estimator(pipeline) -> None:
    """Refuse what the Spark engine cannot reproduce exactly."""
    forgetting = float(pipeline[-1].forgetting)
    if forgetting != 1.0:
        raise SkbanditError(
            f"the Spark engine needs forgetting=1 (the model's state is then a plain sum over "
            f"events), but this model has forgetting={forgetting}; use --engine local")


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
    n = max(spark.sparkContext.defaultParallelism, math.ceil(n_rows / ROWS_PER_PARTITION))
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


def time_order(contexts: DataFrame, n_buckets: int, *, max_events: int | None,
               learned_until_ns: int | None, calibrated_until_ns: int | None = None
               ) -> TimeOrder:
    """Partition by time bucket, sort, persist and count the contexts (one job).

    ``contexts`` carry :func:`time_buckets` labels (``_bucket``); positions follow from the
    partition sizes. Events at or before ``learned_until_ns`` are context only; learned
    events at or before ``calibrated_until_ns`` are learned but not scored.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    frame = (contexts.repartition(n_buckets, BUCKET).drop(BUCKET)
             .sortWithinPartitions(TS, ROW_ORDER).persist(StorageLevel.MEMORY_AND_DISK))

    def until(ns):
        return (F.lit(False) if ns is None else F.col(TS) <= F.lit(ns)).cast("long")

    sizes = (frame.groupBy(F.spark_partition_id().alias("pid"))
             .agg(F.count(F.lit(1)).alias("n"), F.sum(until(learned_until_ns)).alias("ctx"),
                  F.sum(until(calibrated_until_ns)).alias("cal"))
             .collect())
    counts = np.zeros(frame.rdd.getNumPartitions(), dtype=np.int64)
    for row in sizes:
        counts[row["pid"]] = row["n"]
    stop = int(counts.sum()) if max_events is None else min(int(counts.sum()), max_events)
    first = min(sum(int(row["ctx"] or 0) for row in sizes), stop)
    calibrated = min(sum(int(row["cal"] or 0) for row in sizes), stop)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return TimeOrder(frame, offsets, first, stop, max(0, calibrated - first))


def batch_starts(n: int, batch_size: int, score_from: int = 0) -> np.ndarray:
    """First learned position of every batch: the local replay's doubling schedule, the
    batch holding ``score_from`` split there (events before it are learned, not scored)."""
    slices = _split_at(batch_slices(n, batch_size, first=FIRST_BATCH), score_from)
    return np.array([s.start for s in slices], dtype=np.int64)


def statistics(order: TimeOrder, pipeline, starts: np.ndarray) -> Statistics:
    """Per-batch ``Σ xxᵀ``, ``Σ yx``, counts, the data hash and the last learned time."""
    d = int(pipeline[-1].n_features_in_) if hasattr(pipeline[-1], "n_features_in_") else None
    offsets, first, stop = order.offsets, order.first, order.stop

    def partials(batches):
        from pyspark import TaskContext

        pid = TaskContext.get().partitionId()
        sums, hashes, pos = {}, [], int(offsets[pid])
        for frame, learned in _learned_rows(batches, pos, first, stop):
            if frame is None:
                continue
            x = transform_features(pipeline, frame)
            y = frame[schema.CORRECT].to_numpy(dtype=np.float64)
            batch = np.searchsorted(starts, learned, side="right") - 1
            for k, lo, hi in _segments(batch):
                entry = sums.setdefault(k, [0, 0.0, 0, 0.0, 0.0])
                entry[0] += hi - lo
                entry[1] += float(y[lo:hi].sum())
                entry[2] = max(entry[2], int(frame[TS].iloc[hi - 1]))
                entry[3] = entry[3] + x[lo:hi].T @ x[lo:hi]
                entry[4] = entry[4] + x[lo:hi].T @ y[lo:hi]
            hashes.append(_row_hashes(frame))
        rows = [{"pid": pid, "batch": k, "n": e[0], "sum_y": e[1], "max_ts": e[2],
                 "xtx": np.ravel(e[3]).tolist(), "xty": np.ravel(e[4]).tolist(), "hashes": None}
                for k, e in sorted(sums.items())]
        rows.append({"pid": pid, "batch": -1, "n": 0, "sum_y": 0.0, "max_ts": 0, "xtx": None,
                     "xty": None, "hashes": b"".join(hashes)})
        yield pd.DataFrame(rows)

    k = len(starts)
    n, sum_y, max_ts = np.zeros(k, np.int64), np.zeros(k), 0
    xtx = xty = None
    digest = hashlib.sha256()
    stream = order.frame.mapInPandas(partials, _STATS_SCHEMA).toLocalIterator(
        prefetchPartitions=True)
    for row in stream:  # partitions in time order, so the hash is in event order
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
        for part, _ in _learned_rows(batches, pos, first, stop):
            if part is not None:
                yield part

    return frame.mapInPandas(keep, frame.schema)


def prefix_models(estimator, stats: Statistics) -> list[dict | None]:
    """The LinUCB state before each batch (``None`` before the first batch of a fresh model).

    Also leaves ``estimator`` in the state after the last batch (through ``set_state``).
    """
    d = stats.xtx.shape[1]
    fresh = not hasattr(estimator, "n_features_in_")
    if fresh:
        A, b, n_updates = float(estimator.l2) * np.eye(d), np.zeros(d), 0
    else:
        A, b, n_updates = estimator.A_.copy(), estimator.b_.copy(), int(estimator.n_updates_)
    states, state = [], None if fresh else estimator.get_state()
    params = {"alpha": float(estimator.alpha), "l2": float(estimator.l2), "forgetting": 1.0,
              "n_features_in": d, "state_version": STATE_VERSION}
    for k in range(len(stats.n)):
        states.append(state)
        A = A + stats.xtx[k]
        A = (A + A.T) * 0.5  # as LinUCB._accumulate does after every batch
        b = b + stats.xty[k]
        A_inv, coef = _cholesky_inverse_and_solve(A, b)
        n_updates += int(stats.n[k])
        state = {"A": A, "b": b, "A_inv": A_inv, "coef": coef, "n_updates": n_updates, **params}
    estimator.set_state(state)
    return states


def global_rates(stats: Statistics, prior: float = 0.5) -> np.ndarray:
    """The running success rate before each batch, as the local replay's baseline."""
    successes = prior + np.concatenate([[0.0], np.cumsum(stats.sum_y)[:-1]])
    seen = 1.0 + np.concatenate([[0], np.cumsum(stats.n)[:-1]])
    return successes / seen


def predictions(order: TimeOrder, pipeline, starts, states, rates,
                score_from: int = 0) -> DataFrame:
    """Every scored event predicted by the model of all earlier batches (persisted).

    Events before ``score_from`` (learned position) are learned but not scored.
    """
    from pyspark import StorageLevel

    spark = order.frame.sparkSession
    shipped = spark.sparkContext.broadcast((states, rates))
    offsets, first, stop = order.offsets, order.first, order.stop
    alpha = float(pipeline[-1].alpha)

    def score(batches):
        from pyspark import TaskContext

        models, rate = shipped.value
        pid = TaskContext.get().partitionId()
        for frame, learned in _learned_rows(batches, int(offsets[pid]), first + score_from,
                                            stop):
            if frame is None:
                continue
            x = transform_features(pipeline, frame)
            batch = np.searchsorted(starts, learned + score_from, side="right") - 1
            bandit, width = np.empty(len(frame)), np.empty(len(frame))
            for k, lo, hi in _segments(batch):
                if models[k] is None:  # a fresh model predicts 0 with width alpha * ||x||
                    bandit[lo:hi] = 0.0
                    width[lo:hi] = alpha * np.linalg.norm(x[lo:hi], axis=1)
                else:
                    bandit[lo:hi], std = LinUCB.from_state(models[k]).predict(
                        x[lo:hi], return_std=True)
                    width[lo:hi] = alpha * std
            yield pd.DataFrame({"batch": batch.astype(np.int32),
                                "reward": frame[schema.CORRECT].to_numpy(dtype=np.float64),
                                "bandit": bandit, "global_rate": rate[batch],
                                "irt": irt_prediction(frame), "uncertainty": width})

    frame = order.frame.mapInPandas(score, _PREDICTION_SCHEMA)
    return frame.persist(StorageLevel.MEMORY_AND_DISK)


def replay_result(predicted: DataFrame, n_scored: int, first_batch: int = 0,
                  n_unscored: int = 0) -> ReplayResult:
    """Per-batch metrics, final metrics and the predictions for the calibration plot.

    Each batch's metrics are :func:`skbandit.progressive.prediction_metrics` of its rows.
    Up to :data:`PLOT_ROWS` scored events the predictions come to the driver and the result
    is a plain :class:`ReplayResult`, computed as the local engine computes it. Beyond, over
    all rows (and without the first batch, when ``first_batch``), log-loss, Brier score and
    mean uncertainty are the batches' event-weighted means and AUC is Spark ML's exact
    (unbinned) area, and ``predictions`` is a seeded sample.
    """
    if n_scored <= PLOT_ROWS:  # the driver holds them all: the local engine's own arithmetic
        return _replay_on_driver(predicted.toPandas(), first_batch, n_unscored)
    keys = list(prediction_metrics(pd.DataFrame(
        {"reward": [0.0, 1.0], "uncertainty": 0.0, **dict.fromkeys(PREDICTORS, 0.5)})))

    def per_batch(frame):
        metrics = prediction_metrics(frame)
        return pd.DataFrame([{"batch": int(frame["batch"].iloc[0]), "n": len(frame), **metrics}])

    out_schema = "batch int, n long, " + ", ".join(f"{k} double" for k in keys)
    rows = (predicted.groupBy("batch").applyInPandas(per_batch, out_schema).toPandas()
            .sort_values("batch").reset_index(drop=True))
    final = _pooled(predicted, rows, keys)
    after = None
    if first_batch and len(rows) > 1:
        first = int(rows["batch"].iloc[0])
        after = _pooled(predicted.where(f"batch > {first}"), rows.iloc[1:], keys)
    history = rows.drop(columns=["batch", "n"])
    history.insert(0, "events_seen", n_unscored + np.cumsum(rows["n"].to_numpy()))
    sample = predicted if n_scored <= PLOT_ROWS else predicted.sample(
        fraction=PLOT_ROWS / n_scored, seed=0)
    plotted = sample.drop("batch").toPandas()
    return SparkReplayResult(history, plotted, final, after, first_batch, n_unscored)


def _replay_on_driver(frame: pd.DataFrame, first_batch: int, n_unscored: int) -> ReplayResult:
    frame = frame.sort_values("batch", kind="stable").reset_index(drop=True)
    rows, seen = [], n_unscored
    for _, batch in frame.groupby("batch", sort=True):
        seen += len(batch)
        rows.append({"events_seen": seen, **prediction_metrics(batch)})
    return ReplayResult(history=pd.DataFrame(rows), predictions=frame.drop(columns="batch"),
                        first_batch=first_batch, n_unscored=n_unscored)


def _pooled(predicted: DataFrame, rows: pd.DataFrame, keys: list[str]) -> dict[str, float]:
    """The metrics over all rows of the given batches (``rows``: their per-batch metrics)."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.sql import functions as F

    weights = rows["n"].to_numpy(dtype=np.float64)
    out = {k: float(weights @ rows[k].to_numpy() / weights.sum())
           for k in keys if not k.endswith("_auc")}
    label = (F.col("reward") >= 0.5).cast("double").alias("label")
    for name in PREDICTORS:
        score = F.least(F.greatest(F.col(name), F.lit(PROBABILITY_FLOOR)),
                        F.lit(1 - PROBABILITY_FLOOR)).alias("score")
        out[f"{name}_auc"] = _auc(predicted.select(score, label), BinaryClassificationEvaluator)
    return {k: out[k] for k in keys}


def _auc(frame: DataFrame, evaluator_class) -> float:
    counts = frame.groupBy("label").count().collect()
    if len(counts) < 2:
        return float("nan")  # one class: as the local metric
    evaluator = evaluator_class(rawPredictionCol="score", labelCol="label",
                                metricName="areaUnderROC", numBins=0)
    return float(evaluator.evaluate(frame))


def _learned_rows(batches, pos: int, first: int, stop: int):
    """Each Arrow batch's rows in ``[first, stop)`` with their learned positions."""
    for frame in batches:
        positions = pos + np.arange(len(frame))
        pos += len(frame)
        keep = (positions >= first) & (positions < stop)
        if not keep.any():
            yield None, None
            continue
        part = frame if keep.all() else frame.loc[keep].reset_index(drop=True)
        yield part, positions[keep] - first


def _segments(batch: np.ndarray):
    """``(k, lo, hi)`` for each run of equal batch ids (rows are in time order)."""
    cuts = np.flatnonzero(np.diff(batch)) + 1
    bounds = np.concatenate([[0], cuts, [len(batch)]])
    return [(int(batch[lo]), int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)]


def _row_hashes(frame: pd.DataFrame) -> bytes:
    """The rows' hashes as :func:`train.history.events_hash` computes them (same dtypes)."""
    events = pd.DataFrame({
        schema.USER_ID: frame[schema.USER_ID].astype(object),
        schema.ITEM_ID: frame[schema.ITEM_ID].astype(object),
        schema.TIMESTAMP: pd.to_datetime(frame[TS].to_numpy(np.int64), unit="ns", utc=True),
        schema.CORRECT: frame[schema.CORRECT].to_numpy(dtype=np.int64),
    })
    return pd.util.hash_pandas_object(events[list(HASH_COLUMNS)], index=False).to_numpy().tobytes()
