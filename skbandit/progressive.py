"""Replay a history of attempts into a trained model, with progressive validation.

Each batch is predicted before it is learned, so every prediction is an honest
out-of-sample forecast: the running metrics show how well the bandit would have predicted
the outcomes it had not yet seen, next to two baselines (the running global success rate
and an IRT-only prediction from mastery and published difficulty).

The metrics are scikit-learn's ``log_loss``, ``brier_score_loss`` and ``roc_auc_score``
(tests check equality with ``sklearn.metrics`` to 1e-12), computed here with NumPy for all
three predictors at once: sklearn's per-call input validation costs ~15 ms, and a replay of a
million events makes about 300 such calls per metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from skbandit import schema
from skbandit.irt import guessing_of, mastery_to_logit, p_correct_3pl
from skbandit.probability_calibration import ProbabilityCalibration, fit_calibration

PROBABILITY_FLOOR = 1e-3
"""Forecasts are clipped to ``[floor, 1 - floor]`` for log-loss (a linear model leaves [0, 1])."""

PREDICTORS = ("bandit", "global_rate", "irt")

REFIT_GROWTH = 1.25
"""The probability calibration is refitted when the scored pairs grew by this factor."""

FIRST_BATCH = 100
"""Batches start this small and double up to ``batch_size``: a fresh model's forecasts are
uninformative, so small early batches let it learn before it has to predict many events."""

MIN_SCORED_EVENTS = 1_000
"""Below this many scored events the metrics are reported with a warning (too noisy)."""


def batch_slices(n: int, batch_size: int, first: int = FIRST_BATCH) -> list[slice]:
    """Consecutive slices covering ``range(n)``, doubling from ``first`` up to ``batch_size``.

    >>> [(s.start, s.stop) for s in batch_slices(10, 4, first=1)]
    [(0, 1), (1, 3), (3, 7), (7, 10)]
    """
    slices, start, size = [], 0, max(1, min(first, batch_size))
    while start < n:
        slices.append(slice(start, min(start + size, n)))
        start, size = start + size, min(2 * size, batch_size)
    return slices


@dataclass
class ReplayResult:
    """What a replay produced.

    Attributes
    ----------
    history : DataFrame
        One row per batch: ``events_seen`` and, per predictor, the batch's ``log_loss``,
        ``brier`` and ``auc``, plus ``mean_uncertainty``.
    predictions : DataFrame
        One row per replayed event: the outcome and each predictor's forecast, and the
        bandit's uncertainty, all made before the event was learned.
    first_batch : int
        Scored events predicted by an untrained model (the first batch of a fresh model;
        0 when the model had learned before its first scored prediction).
    n_unscored : int
        Events learned but not scored (``score_from``: e.g. the item-calibration window).
    calibration : ProbabilityCalibration
        The score-to-probability map fitted on every scored progressive pair, what the
        version serves (:mod:`skbandit.probability_calibration`). ``predictions["bandit"]``
        is each event's calibrated forecast by the map fitted on earlier batches only, and
        ``predictions["score"]`` the linear score it calibrated.
    """

    history: pd.DataFrame
    predictions: pd.DataFrame
    first_batch: int = 0
    n_unscored: int = 0
    calibration: ProbabilityCalibration = field(default_factory=ProbabilityCalibration)
    _final: dict[str, float] | None = field(default=None, init=False, repr=False)

    def final_metrics(self) -> dict[str, float]:
        """Progressive-validation metrics over all replayed events (computed once)."""
        if self._final is None:
            self._final = prediction_metrics(self.predictions)
        return dict(self._final)

    def metrics_after_first_batch(self) -> dict[str, float] | None:
        """The metrics without the untrained first batch (None if there is none, or nothing
        after it)."""
        if not self.first_batch or len(self.predictions) <= self.first_batch:
            return None
        return prediction_metrics(self.predictions.iloc[self.first_batch :])

    def caveats(self) -> list[str]:
        """Warnings a reader of the metrics needs: too few events, an untrained first batch."""
        notes = []
        n = len(self.predictions)
        if n < MIN_SCORED_EVENTS:
            notes.append(
                f"only {n:,} events were scored (fewer than {MIN_SCORED_EVENTS:,}): "
                "the metrics are noisy; compare predictors with care"
            )
        after = self.metrics_after_first_batch()
        if after is not None:
            before = self.final_metrics()
            notes.append(
                f"the first {self.first_batch:,} events were predicted by an untrained model; "
                f"without them bandit log-loss {after['bandit_log_loss']:.3f} (with "
                f"{before['bandit_log_loss']:.3f}), IRT {after['irt_log_loss']:.3f}, global "
                f"rate {after['global_rate_log_loss']:.3f}"
            )
        return notes


def irt_prediction(contexts: pd.DataFrame) -> np.ndarray:
    """IRT-only success probability from the student's mastery and the item's parameters.

    The 3PL probability: the item's ``guessing`` is used where the contexts carry it
    (:func:`skbandit.irt.p_correct_3pl`), else 0 (the 2PL).
    """
    return p_correct_3pl(
        mastery_to_logit(contexts[schema.MASTERY].to_numpy()),
        contexts[schema.DIFFICULTY].to_numpy(dtype=np.float64),
        contexts[schema.DISCRIMINATION].to_numpy(dtype=np.float64),
        guessing_of(contexts),
    )


def replay_history(
    pipeline,
    contexts: pd.DataFrame,
    rewards,
    *,
    batch_size: int = 10_000,
    prior_success_rate: float = 0.5,
    on_batch: Callable[[int], None] | None = None,
    features: np.ndarray | None = None,
    score_from: int = 0,
) -> ReplayResult:
    """Predict-then-learn over ``contexts`` in row order (callers sort by time).

    Parameters
    ----------
    pipeline : TrainedModel
        A :class:`skbandit.model.TrainedModel`, fresh or already trained; updated in place.
    contexts : DataFrame of shape (n_events, ...)
        Raw model input (``schema.MODEL_INPUT``), each row the context before its event.
    rewards : array-like of shape (n_events,)
        The reward of each event (``correct``).
    batch_size : int
        Events per predict-then-learn step, once the doubling schedule reaches it.
    prior_success_rate : float
        The global-rate baseline's forecast before any event is seen.
    on_batch : callable, optional
        Called with the number of events in each finished batch (for progress bars).
    features : ndarray of shape (n_events, n_features), optional
        ``model_features(pipeline, contexts)`` when the caller already computed it.
    score_from : int, default=0
        Events before this row are learned but not scored: no prediction, no metric (the
        events whose outcomes calibrated the item difficulties, for example).

    Returns
    -------
    ReplayResult
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    estimator = pipeline.estimator
    score_from = min(max(int(score_from), 0), len(rewards))
    fresh = not hasattr(estimator, "n_features_in_") and score_from == 0
    if features is None:
        features = model_features(pipeline, contexts)
    irt = irt_prediction(contexts)

    bandit = np.empty(len(rewards))
    score = np.empty(len(rewards))
    width = np.empty(len(rewards))
    calibration, fitted_on = ProbabilityCalibration(), 0
    global_rate = np.empty(len(rewards))
    successes, seen = prior_success_rate, 1.0
    rows = []
    for batch in _split_at(batch_slices(len(rewards), batch_size, first=FIRST_BATCH), score_from):
        if batch.stop <= score_from:  # learn only
            estimator.partial_fit(features[batch], rewards[batch])
            successes += rewards[batch].sum()
            seen += batch.stop - batch.start
            if on_batch is not None:
                on_batch(batch.stop - batch.start)
            continue
        if (
            not hasattr(estimator, "n_features_in_")
            and getattr(estimator, "prior_mean", None) is not None
        ):
            estimator.initialize(features.shape[1])  # predicts the prior's X @ prior_mean
        if hasattr(estimator, "n_features_in_"):
            score[batch], std = estimator.predict(features[batch], return_std=True)
            width[batch] = estimator.alpha * std
        else:  # a fresh model without a prior predicts 0 with width alpha * ||x||
            score[batch] = 0.0
            width[batch] = estimator.alpha * np.linalg.norm(features[batch], axis=1)
        if batch.start - score_from >= REFIT_GROWTH * fitted_on:  # only earlier batches
            calibration = fit_calibration(
                score[score_from : batch.start], rewards[score_from : batch.start]
            )
            fitted_on = batch.start - score_from
        bandit[batch] = calibration(score[batch])
        global_rate[batch] = successes / seen
        estimator.partial_fit(features[batch], rewards[batch])
        successes += rewards[batch].sum()
        seen += batch.stop - batch.start
        forecasts = {"bandit": bandit[batch], "global_rate": global_rate[batch], "irt": irt[batch]}
        metrics = _metrics(rewards[batch], forecasts, width[batch])
        rows.append({"events_seen": batch.stop, **metrics})
        if on_batch is not None:
            on_batch(batch.stop - batch.start)
    predictions = _predictions_frame(
        rewards, bandit, global_rate, irt, width, slice(score_from, None)
    )
    predictions["score"] = score[score_from:]
    first = min(FIRST_BATCH, batch_size, len(rewards)) if fresh else 0
    return ReplayResult(
        history=pd.DataFrame(rows),
        predictions=predictions,
        first_batch=first,
        n_unscored=score_from,
        calibration=fit_calibration(score[score_from:], rewards[score_from:]),
    )


def _split_at(slices: list[slice], cut: int) -> list[slice]:
    """The batch holding row ``cut`` split in two, so no batch straddles ``cut``.

    >>> [(s.start, s.stop) for s in _split_at([slice(0, 4), slice(4, 8)], 2)]
    [(0, 2), (2, 4), (4, 8)]
    """
    out = []
    for s in slices:
        out += [slice(s.start, cut), slice(cut, s.stop)] if s.start < cut < s.stop else [s]
    return out


def model_features(model, contexts: pd.DataFrame) -> np.ndarray:
    """The model features of raw contexts (:meth:`skbandit.model.TrainedModel.features`)."""
    return np.ascontiguousarray(model.features(contexts), dtype=np.float64)


def _predictions_frame(rewards, bandit, global_rate, irt, width, rows: slice) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "reward": rewards[rows],
            "bandit": bandit[rows],
            "global_rate": global_rate[rows],
            "irt": irt[rows],
            "uncertainty": width[rows],
        }
    )


def prediction_metrics(predictions: pd.DataFrame) -> dict[str, float]:
    """Log-loss, Brier score and AUC of each predictor, and the mean uncertainty.

    Forecasts are clipped to ``[PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR]``; rewards are
    binarised at 0.5. The values equal ``sklearn.metrics.log_loss``, ``brier_score_loss``
    and ``roc_auc_score`` on the clipped forecasts. AUC is NaN when the outcomes are all one
    class.

    >>> frame = pd.DataFrame({"reward": [0, 1, 1], "uncertainty": 0.1,
    ...                       "bandit": [0.2, 0.7, 0.9], "global_rate": 0.5, "irt": 0.6})
    >>> round(prediction_metrics(frame)["bandit_brier"], 4), prediction_metrics(frame)["bandit_auc"]
    (0.0467, 1.0)
    """
    forecasts = {name: predictions[name].to_numpy(dtype=np.float64) for name in PREDICTORS}
    return _metrics(
        predictions["reward"].to_numpy(dtype=np.float64),
        forecasts,
        predictions["uncertainty"].to_numpy(dtype=np.float64),
    )


def _metrics(rewards: np.ndarray, forecasts: dict, uncertainty: np.ndarray) -> dict[str, float]:
    outcome = rewards >= 0.5
    n_pos = int(outcome.sum())
    n_neg = len(outcome) - n_pos
    metrics = {"mean_uncertainty": float(np.mean(uncertainty))}
    for name in PREDICTORS:
        p = np.clip(
            np.broadcast_to(forecasts[name], outcome.shape),
            PROBABILITY_FLOOR,
            1 - PROBABILITY_FLOOR,
        )
        metrics[f"{name}_log_loss"] = float(-np.mean(np.where(outcome, np.log(p), np.log1p(-p))))
        metrics[f"{name}_brier"] = float(np.mean((p - outcome) ** 2))
        metrics[f"{name}_auc"] = _auc(outcome, p, n_pos, n_neg)
    return metrics


def _auc(outcome: np.ndarray, scores: np.ndarray, n_pos: int, n_neg: int) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half), NaN for one class."""
    if n_pos == 0 or n_neg == 0:
        return np.nan
    ranks = rankdata(scores)  # average ranks of ties
    return float((ranks[outcome].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
