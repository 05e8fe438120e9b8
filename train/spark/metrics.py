"""Progressive validation on Spark: score every batch, then the metrics the local replay logs.

1. :func:`predictions` scores every partition's rows with its batches' models (one pass,
   persisted) and appends, per run of one batch's rows, a summary row holding that run's
   :func:`skbandit.progressive.prediction_metrics` (:func:`with_batch_metrics`): the per-batch
   metrics without a shuffle by batch. The few batches a partition boundary cuts (at most one
   per boundary) get a summary in each partition and are measured again from their rows.
2. Up to :data:`PLOT_ROWS` scored events the predictions come to the driver and the metrics
   are the local engine's own arithmetic. Beyond, log-loss, Brier score and mean uncertainty
   over all events are the batches' event-weighted means, and each predictor's AUC is the
   exact (tie-aware) Mann-Whitney area: the events' distinct scores are counted by label and
   range-partitioned, each partition counts its own (positive, negative) pairs, and the driver
   adds the pairs across partitions (:func:`rank_counts`, :func:`exact_auc`). The AUC without
   the first batch comes from the same counts: the pairs that involve the first batch's few
   events are subtracted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.linucb import LinUCB
from skbandit.probability_calibration import ProbabilityCalibration, fit_calibration_counts
from skbandit.progressive import (
    PREDICTORS,
    PROBABILITY_FLOOR,
    REFIT_GROWTH,
    ReplayResult,
    irt_prediction,
    prediction_metrics,
)
from train.spark.contexts import partitions_for
from train.spark.engine import MODEL_COLUMNS, TimeOrder, batch_runs, learned_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

PLOT_ROWS = 1_000_000
"""Predictions brought to the driver for the calibration plot (a seeded sample beyond)."""
METRIC_KEYS = tuple(
    prediction_metrics(
        pd.DataFrame({"reward": [0.0, 1.0], "uncertainty": 0.0, **dict.fromkeys(PREDICTORS, 0.5)})
    )
)
SCORED_SCHEMA = (
    "batch int, reward double, bandit double, global_rate double, irt double, "
    "uncertainty double, n long, metrics array<double>"
)
"""A prediction row has null ``n`` and ``metrics``; a summary row has only ``batch``, ``n``
(the run's events) and ``metrics`` (:data:`METRIC_KEYS` in order)."""
RAW_SCHEMA = (
    "batch int, reward double, score double, global_rate double, irt double, uncertainty double"
)
"""A scored event before calibration: ``score`` is the model's linear mean."""
_PREDICTION_COLUMNS = ("reward", *PREDICTORS, "uncertainty")
_BATCH_SCHEMA = "batch int, n long, " + ", ".join(f"{k} double" for k in METRIC_KEYS)
_COUNTS_SCHEMA = "p int, lowest double, n_pos long, n_neg long, u2 long, u2_first long"


class SparkReplayResult(ReplayResult):
    """A :class:`ReplayResult` whose metrics were aggregated on Spark.

    ``predictions`` holds a seeded sample of the scored events (the calibration plot only
    needs :data:`PLOT_ROWS` of them); the final metrics and those after the first batch come
    from all of them.
    """

    def __init__(
        self, history, predictions, final, after_first, first_batch, n_unscored, calibration
    ):
        super().__init__(
            history=history,
            predictions=predictions,
            first_batch=first_batch,
            n_unscored=n_unscored,
            calibration=calibration,
        )
        self._final, self._after_first = dict(final), after_first

    def metrics_after_first_batch(self) -> dict[str, float] | None:
        return None if self._after_first is None else dict(self._after_first)


def raw_scores(order: TimeOrder, model, starts, states, rates, score_from: int = 0) -> DataFrame:
    """Every scored event's linear score by the model of all earlier batches
    (:data:`RAW_SCHEMA`, persisted): what the progressive calibrations are fitted on.

    Events before ``score_from`` (learned position) are learned but not scored.
    """

    spark = order.frame.sparkSession
    shipped = spark.sparkContext.broadcast((states, rates))
    offsets, first, stop = order.offsets, order.first, order.stop
    alpha = float(model.estimator.alpha)

    def score(batches):
        from pyspark import TaskContext

        models, rate = shipped.value
        pid = TaskContext.get().partitionId()
        for frame, learned in learned_rows(batches, int(offsets[pid]), first + score_from, stop):
            if frame is None:
                continue
            x = model.features(frame)
            batch = np.searchsorted(starts, learned + score_from, side="right") - 1
            mean, width = np.empty(len(frame)), np.empty(len(frame))
            for k, lo, hi in batch_runs(batch):
                if models[k] is None:  # a fresh model predicts 0 with width alpha * ||x||
                    mean[lo:hi] = 0.0
                    width[lo:hi] = alpha * np.linalg.norm(x[lo:hi], axis=1)
                else:
                    mean[lo:hi], std = LinUCB.from_state(models[k]).predict(
                        x[lo:hi], return_std=True
                    )
                    width[lo:hi] = alpha * std
            yield pd.DataFrame(
                {
                    "batch": batch.astype(np.int32),
                    "reward": frame[schema.CORRECT].to_numpy(dtype=np.float64),
                    "score": mean,
                    "global_rate": rate[batch],
                    "irt": irt_prediction(frame),
                    "uncertainty": width,
                }
            )

    frame = order.frame.select(*MODEL_COLUMNS).mapInPandas(score, RAW_SCHEMA)
    return frame.persist(order.cache)


def refit_schedule(starts, score_from: int = 0) -> np.ndarray:
    """The progressive calibration that forecasts each batch, as the local replay refits it
    (:func:`skbandit.progressive.replay_history`): map ``j`` is fitted on the scored events
    before the ``j``-th refit, ``-1`` for a batch that is learned but not scored.

    >>> refit_schedule([0, 100, 300, 700, 1500, 2500, 3000]).tolist()
    [0, 1, 2, 3, 4, 5, 5]
    """
    maps, fitted_on, refits = [], 0, -1
    for start in np.asarray(starts, dtype=np.int64):
        if start < score_from:
            maps.append(-1)
            continue
        if start - score_from >= REFIT_GROWTH * fitted_on:
            refits, fitted_on = refits + 1, int(start - score_from)
        maps.append(refits)
    return np.array(maps, dtype=np.int64)


def progressive_calibrations(
    raw: DataFrame, schedule: np.ndarray
) -> tuple[list[ProbabilityCalibration], ProbabilityCalibration]:
    """The maps that forecast the batches (map ``j`` fitted on the events of the batches of
    maps below ``j``) and the final one, fitted on every scored event.

    The calibration link needs only the outcome sum and count per distinct score: Spark
    aggregates them by (batch, score) and the driver fits with
    :func:`skbandit.probability_calibration.fit_calibration_counts`, the same maps as the
    local engine's fits on the rows.
    """
    from pyspark.sql import functions as F

    sums = (
        raw.groupBy("batch", "score")
        .agg(F.sum("reward").alias("positives"), F.count(F.lit(1)).alias("n"))
        .toPandas()
    )
    segment = schedule[sums["batch"].to_numpy(dtype=np.int64)]
    order = np.argsort(segment, kind="stable")
    segment = segment[order]
    scores = sums["score"].to_numpy(dtype=np.float64)[order]
    positives = sums["positives"].to_numpy(dtype=np.float64)[order]
    counts = sums["n"].to_numpy(dtype=np.int64)[order]
    n_maps = int(schedule.max()) + 1 if len(schedule) else 0
    maps = []
    for j in range(n_maps):
        cut = int(np.searchsorted(segment, j, side="left"))
        maps.append(fit_calibration_counts(scores[:cut], positives[:cut], counts[:cut]))
    return maps, fit_calibration_counts(scores, positives, counts)


def predictions(raw: DataFrame, schedule: np.ndarray, maps, cache=None) -> DataFrame:
    """Every scored event's calibrated forecast by its batch's progressive map, with a
    summary row per run of one batch (:data:`SCORED_SCHEMA`, persisted)."""
    shipped = raw.sparkSession.sparkContext.broadcast((schedule, maps))

    def calibrated(frames):
        which, calibrations = shipped.value
        for frame in frames:
            batch = frame["batch"].to_numpy()
            score = frame["score"].to_numpy(dtype=np.float64)
            bandit = np.empty(len(frame))
            for k, lo, hi in batch_runs(batch):
                bandit[lo:hi] = calibrations[which[k]](score[lo:hi])
            yield frame.drop(columns="score").assign(bandit=bandit)[["batch", *_PREDICTION_COLUMNS]]

    def scored(frames):
        return with_batch_metrics(calibrated(frames))

    frame = raw.mapInPandas(scored, SCORED_SCHEMA)
    return frame.persist(cache) if cache is not None else frame.persist()


def with_batch_metrics(frames):
    """Each predictions frame (rows in batch order), then a summary row per run of one batch.

    A batch cut by a partition boundary gets one summary per partition; :func:`batch_metrics`
    recognises and rescores it.
    """
    run, current = [], None
    for frame in frames:
        yield frame.assign(n=None, metrics=None)
        for k, lo, hi in batch_runs(frame["batch"].to_numpy()):
            if run and k != current:
                yield _summary(current, run)
                run = []
            current = k
            run.append(frame.iloc[lo:hi])
    if run:
        yield _summary(current, run)


def _summary(batch: int, run: list[pd.DataFrame]) -> pd.DataFrame:
    rows = pd.concat(run, ignore_index=True)
    metrics = prediction_metrics(rows)
    return pd.DataFrame(
        {
            "batch": np.array([batch], dtype=np.int32),
            **{name: np.nan for name in _PREDICTION_COLUMNS},
            "n": len(rows),
            "metrics": [[metrics[k] for k in METRIC_KEYS]],
        }
    )


def replay_result(
    scored: DataFrame,
    n_scored: int,
    first_batch: int = 0,
    n_unscored: int = 0,
    calibration: ProbabilityCalibration | None = None,
) -> ReplayResult:
    """Per-batch metrics, final metrics and the predictions for the calibration plot.

    ``scored`` is :func:`predictions`' frame. Up to :data:`PLOT_ROWS` scored events the
    predictions come to the driver and the result is a plain :class:`ReplayResult`, computed
    as the local engine computes it. Beyond, the per-batch metrics come from the summary rows,
    the final ones (over all rows, and without the first batch when ``first_batch``) are the
    batches' event-weighted means and the exact AUCs, and ``predictions`` is a seeded sample.
    ``calibration`` is the version's map (:func:`progressive_calibrations`).
    """
    from pyspark.sql import functions as F

    calibration = ProbabilityCalibration() if calibration is None else calibration

    predicted = scored.where(F.col("metrics").isNull()).drop("n", "metrics")
    if n_scored <= PLOT_ROWS:  # the driver holds them all: the local engine's own arithmetic
        return _replay_on_driver(predicted.toPandas(), first_batch, n_unscored, calibration)
    rows = batch_metrics(scored, predicted)
    first = None
    if first_batch and len(rows) > 1:
        first = predicted.where(F.col("batch") == int(rows["batch"].iloc[0])).toPandas()
    aucs = exact_aucs(predicted, n_scored, first)
    final = {**_event_weighted(rows), **{k: v[0] for k, v in aucs.items()}}
    after = (
        None
        if first is None
        else {**_event_weighted(rows.iloc[1:]), **{k: v[1] for k, v in aucs.items()}}
    )
    history = rows.drop(columns=["batch", "n"])
    history.insert(0, "events_seen", n_unscored + np.cumsum(rows["n"].to_numpy()))
    sample = predicted.sample(fraction=PLOT_ROWS / n_scored, seed=0).drop("batch").toPandas()
    return SparkReplayResult(
        history,
        sample,
        {k: final[k] for k in METRIC_KEYS},
        None if after is None else {k: after[k] for k in METRIC_KEYS},
        first_batch,
        n_unscored,
        calibration,
    )


def batch_metrics(scored: DataFrame, predicted: DataFrame) -> pd.DataFrame:
    """One row per batch (``batch``, ``n`` and :data:`METRIC_KEYS`), in batch order: from the
    summary rows, and for a batch summarised in two partitions from its rows."""
    from pyspark.sql import functions as F

    summaries = (
        scored.where(F.col("metrics").isNotNull()).select("batch", "n", "metrics").toPandas()
    )
    pieces = summaries.groupby("batch")["n"].transform("size").to_numpy()
    whole = summaries[pieces == 1]
    rows = pd.DataFrame(
        np.vstack(whole["metrics"].to_numpy()) if len(whole) else np.empty((0, len(METRIC_KEYS))),
        columns=list(METRIC_KEYS),
    )
    rows.insert(0, "n", whole["n"].to_numpy(dtype=np.int64))
    rows.insert(0, "batch", whole["batch"].to_numpy(dtype=np.int32))
    split = sorted({int(b) for b in summaries["batch"][pieces > 1]})
    if split:
        rescored = (
            predicted.where(F.col("batch").isin(split))
            .groupBy("batch")
            .applyInPandas(_one_batch, _BATCH_SCHEMA)
            .toPandas()
        )
        rows = pd.concat([rows, rescored], ignore_index=True)
    return rows.sort_values("batch").reset_index(drop=True)


def _one_batch(frame: pd.DataFrame) -> pd.DataFrame:
    metrics = prediction_metrics(frame)
    return pd.DataFrame([{"batch": int(frame["batch"].iloc[0]), "n": len(frame), **metrics}])


def _event_weighted(rows: pd.DataFrame) -> dict[str, float]:
    weights = rows["n"].to_numpy(dtype=np.float64)
    return {
        k: float(weights @ rows[k].to_numpy() / weights.sum())
        for k in METRIC_KEYS
        if not k.endswith("_auc")
    }


def _replay_on_driver(
    frame: pd.DataFrame, first_batch: int, n_unscored: int, calibration: ProbabilityCalibration
) -> ReplayResult:
    frame = frame.sort_values("batch", kind="stable").reset_index(drop=True)
    rows, seen = [], n_unscored
    for _, batch in frame.groupby("batch", sort=True):
        seen += len(batch)
        rows.append({"events_seen": seen, **prediction_metrics(batch)})
    return ReplayResult(
        history=pd.DataFrame(rows),
        predictions=frame.drop(columns="batch"),
        first_batch=first_batch,
        n_unscored=n_unscored,
        calibration=calibration,
    )


def exact_aucs(
    predicted: DataFrame, n_scored: int, first: pd.DataFrame | None = None
) -> dict[str, tuple[float, float]]:
    """``{f"{name}_auc": (over all rows, without the rows of first)}`` for each predictor.

    One job: every row's clipped scores are counted by (predictor, score) and label,
    range-partitioned by (predictor, score), and each partition's :func:`rank_counts` come to
    the driver.
    """
    from pyspark.sql import functions as F

    label = (F.col("reward") >= 0.5).cast("long").alias("y")
    clipped = F.array(
        *(
            F.struct(
                F.lit(p).alias("p"),
                F.least(
                    F.greatest(F.col(name), F.lit(PROBABILITY_FLOOR)), F.lit(1 - PROBABILITY_FLOOR)
                ).alias("score"),
            )
            for p, name in enumerate(PREDICTORS)
        )
    )
    counts = (
        predicted.select(F.explode(clipped).alias("s"), label)
        .groupBy(F.col("s.p").alias("p"), F.col("s.score").alias("score"))
        .agg(F.sum("y").alias("pos"), F.count(F.lit(1)).alias("n"))
    )
    queries = _first_scores(first)

    def partial(frames):
        frames = list(frames)
        if not frames:
            return
        for p, rows in pd.concat(frames, ignore_index=True).groupby("p"):
            pos = rows["pos"].to_numpy(dtype=np.int64)
            counts = rank_counts(
                rows["score"].to_numpy(),
                pos,
                rows["n"].to_numpy(dtype=np.int64) - pos,
                *queries[int(p)],
            )
            yield pd.DataFrame([{"p": int(p), **asdict(counts)}])

    n = partitions_for(predicted.sparkSession, n_scored)  # distinct scores: fewer rows
    parts = counts.repartitionByRange(n, "p", "score").mapInPandas(partial, _COUNTS_SCHEMA)
    chunks = {p: [] for p in range(len(PREDICTORS))}
    for row in parts.collect():
        fields = row.asDict()
        chunks[fields.pop("p")].append(RankCounts(**fields))
    return {f"{name}_auc": exact_auc(chunks[p], *queries[p]) for p, name in enumerate(PREDICTORS)}


def _first_scores(first: pd.DataFrame | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each predictor's clipped scores and outcomes of the first batch's rows (none: empty)."""
    if first is None:
        first = pd.DataFrame({"reward": [], **{name: [] for name in PREDICTORS}})
    outcome = first["reward"].to_numpy(dtype=np.float64) >= 0.5
    return [
        (
            np.clip(
                first[name].to_numpy(dtype=np.float64), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR
            ),
            outcome,
        )
        for name in PREDICTORS
    ]


@dataclass(frozen=True)
class RankCounts:
    """Pair counts of one range of scores (no score lies in two ranges).

    ``u2`` is twice the Mann-Whitney U of the range's own (positive, negative) pairs: each
    pair counts 2 if the positive scores higher, 1 if they tie. ``u2_first`` counts the same
    way the pairs between the range's events and the first batch's events.
    """

    lowest: float
    n_pos: int
    n_neg: int
    u2: int
    u2_first: int


def rank_counts(scores, pos, neg, first_scores=(), first_outcomes=()) -> RankCounts:
    """The :class:`RankCounts` of events grouped by score (a score may repeat).

    Parameters
    ----------
    scores : array-like of shape (n_groups,)
    pos, neg : array-like of int of shape (n_groups,)
        Positive and negative events with each score.
    first_scores, first_outcomes : array-like of shape (n_first,)
        The first batch's scores and outcomes (bool), among the events counted elsewhere.

    >>> rank_counts([0.2, 0.5, 0.5], [0, 1, 1], [1, 1, 0])
    RankCounts(lowest=0.2, n_pos=2, n_neg=2, u2=6, u2_first=0)
    """
    scores = np.asarray(scores, dtype=np.float64)
    distinct, group = np.unique(scores, return_inverse=True)
    pos = np.bincount(group, weights=np.asarray(pos), minlength=len(distinct)).astype(np.int64)
    neg = np.bincount(group, weights=np.asarray(neg), minlength=len(distinct)).astype(np.int64)
    neg_up_to = np.concatenate([[0], np.cumsum(neg)])  # negatives below distinct[i]: [i]
    pos_up_to = np.concatenate([[0], np.cumsum(pos)])
    u2 = int(pos @ (2 * neg_up_to[:-1] + neg))
    first_scores = np.asarray(first_scores, dtype=np.float64)
    positive = np.asarray(first_outcomes, dtype=bool)
    lo = np.searchsorted(distinct, first_scores, side="left")
    hi = np.searchsorted(distinct, first_scores, side="right")
    below, tied_neg = neg_up_to[lo], neg_up_to[hi] - neg_up_to[lo]
    above, tied_pos = pos_up_to[-1] - pos_up_to[hi], pos_up_to[hi] - pos_up_to[lo]
    u2_first = int(np.where(positive, 2 * below + tied_neg, 2 * above + tied_pos).sum())
    lowest = float(distinct[0]) if len(distinct) else math.inf
    return RankCounts(lowest, int(pos.sum()), int(neg.sum()), u2, u2_first)


def exact_auc(chunks: list[RankCounts], first_scores=(), first_outcomes=()) -> tuple[float, float]:
    """ROC AUC (ties count one half) of all events, and without the first batch's events.

    ``chunks`` cover disjoint ranges of scores, in any order; ``first_scores`` and
    ``first_outcomes`` are the first batch's, as given to :func:`rank_counts`. NaN where the
    events are all one class.
    """
    u2 = n_pos = n_neg = u2_first = 0
    for chunk in sorted(chunks, key=lambda c: c.lowest):
        u2 += chunk.u2 + 2 * chunk.n_pos * n_neg  # positives above every negative so far
        n_pos, n_neg, u2_first = n_pos + chunk.n_pos, n_neg + chunk.n_neg, u2_first + chunk.u2_first
    first = rank_counts(
        first_scores,
        np.asarray(first_outcomes, dtype=np.int64),
        1 - np.asarray(first_outcomes, dtype=np.int64),
    )
    # pairs between two first-batch events were subtracted twice in u2_first
    after = u2 - u2_first + first.u2
    return (_area(u2, n_pos, n_neg), _area(after, n_pos - first.n_pos, n_neg - first.n_neg))


def _area(u2: int, n_pos: int, n_neg: int) -> float:
    return u2 / (2 * n_pos * n_neg) if n_pos and n_neg else math.nan
