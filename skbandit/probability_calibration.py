"""Calibrated success probabilities: a monotone map from the model's linear score to [0, 1].

LinUCB's mean ``theta' x`` is a linear score that estimates ``P(correct)`` but is not one:
on real logs it leaves [0, 1] (1.4-12 % of forecasts) and is over-confident at the ends. What
is served and shown as expected success is ``calibration(score)``, a non-decreasing
piecewise-linear map fitted by scikit-learn's ``IsotonicRegression`` on pairs
``(score, outcome)`` of **progressive** forecasts: each pair's score was made before its
event was learned, and the map that scores a batch is fitted only on earlier batches, so
calibration never sees the events it scores (:func:`skbandit.progressive.replay_history`).

Why isotonic and not a logistic link on the score: the score is a linear model of a
probability, so its miscalibration is not sigmoidal (clipped tails, a bend where the IRT
term saturates); isotonic regression assumes only that a higher score means a higher
chance, keeps the ranking (AUC changes only through ties) and is stored as data, its
thresholds. Its outputs are bounded to ``[FLOOR, 1 - FLOOR]`` so that no forecast is 0 or
1, and below :data:`MIN_EVENTS` pairs the score is only clipped to that range.
"""

from dataclasses import dataclass

import numpy as np

from skbandit.exceptions import SkbanditError

FLOOR = 0.01
"""Calibrated probabilities lie in ``[FLOOR, 1 - FLOOR]``."""
MIN_EVENTS = 200
"""Fewer progressive pairs than this: no map is fitted (the score is clipped)."""


@dataclass(frozen=True)
class ProbabilityCalibration:
    """A non-decreasing piecewise-linear map from score to probability (data only).

    Parameters
    ----------
    scores, probabilities : tuple of float
        The map's knots (``IsotonicRegression``'s ``X_thresholds_`` and ``y_thresholds_``);
        empty means "clip the score to ``[FLOOR, 1 - FLOOR]``".
    n_events : int
        Progressive pairs it was fitted on.

    Examples
    --------
    >>> cal = ProbabilityCalibration((0.0, 1.0), (0.2, 0.8), 500)
    >>> cal(np.array([-3.0, 0.5, 2.0])).tolist()
    [0.2, 0.5, 0.8]
    """

    scores: tuple = ()
    probabilities: tuple = ()
    n_events: int = 0

    def __call__(self, score) -> np.ndarray:
        score = np.asarray(score, dtype=np.float64)
        if not self.scores:
            return np.clip(score, FLOOR, 1.0 - FLOOR)
        return np.interp(score, self.scores, self.probabilities)

    def as_dict(self) -> dict:
        return {
            "scores": list(self.scores),
            "probabilities": list(self.probabilities),
            "n_events": self.n_events,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ProbabilityCalibration":
        try:
            scores = tuple(float(v) for v in data["scores"])
            probs = tuple(float(v) for v in data["probabilities"])
            n_events = int(data["n_events"])
        except (KeyError, TypeError, ValueError) as error:
            raise SkbanditError(
                f"probability calibration is malformed ({error}); expected "
                "scores, probabilities and n_events"
            ) from None
        ok = (
            len(scores) == len(probs)
            and np.all(np.diff(scores) >= 0)
            and np.all(np.diff(probs) >= 0)
            and all(0.0 <= p <= 1.0 for p in probs)
            and np.all(np.isfinite(scores))
        )
        if not ok:
            raise SkbanditError(
                "probability calibration is malformed (expected as many "
                "non-decreasing finite scores as probabilities in [0, 1])"
            )
        return cls(scores, probs, n_events)


def fit_calibration(scores, outcomes) -> ProbabilityCalibration:
    """Fit the map on progressive ``(score, outcome)`` pairs (clip only below MIN_EVENTS)."""
    from sklearn.isotonic import IsotonicRegression

    scores = np.asarray(scores, dtype=np.float64)
    outcomes = np.asarray(outcomes, dtype=np.float64)
    keep = np.isfinite(scores) & np.isfinite(outcomes)
    if keep.sum() < MIN_EVENTS:
        return ProbabilityCalibration(n_events=int(keep.sum()))
    iso = IsotonicRegression(
        y_min=FLOOR, y_max=1.0 - FLOOR, increasing=True, out_of_bounds="clip"
    ).fit(scores[keep], outcomes[keep])
    return ProbabilityCalibration(
        tuple(iso.X_thresholds_.tolist()), tuple(iso.y_thresholds_.tolist()), int(keep.sum())
    )


def fit_calibration_counts(scores, positives, counts) -> ProbabilityCalibration:
    """:func:`fit_calibration` from per-score sums: the same map, to the last bit.

    ``scores`` (any order, a score may repeat), ``positives`` the sum of the outcomes of the
    events with that score and ``counts`` their number, as an engine that aggregates the
    pairs elsewhere (Spark, by score) brings them back. ``IsotonicRegression.fit`` on the
    rows, step by step: scores within float64 resolution pooled (the first one kept, as
    sklearn's ``_make_unique``), the weighted isotonic fit of the pooled means, clipped to
    ``[FLOOR, 1 - FLOOR]``, and the redundant knots dropped. Exact for 0/1 outcomes, whose
    sums are exact integers.

    >>> rows = fit_calibration(np.repeat([0.1, 0.3, 0.5, 0.7], 60), np.tile([0, 1, 1], 80))
    >>> rows == fit_calibration_counts([0.5, 0.1, 0.3, 0.7], [40, 40, 40, 40], [60] * 4)
    True
    """
    from sklearn.isotonic import isotonic_regression

    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    keep = np.isfinite(scores) & np.isfinite(positives) & (counts > 0)
    scores, positives, counts = scores[keep], positives[keep], counts[keep]
    n_events = int(counts.sum())
    if n_events < MIN_EVENTS:
        return ProbabilityCalibration(n_events=n_events)
    order = np.argsort(scores, kind="stable")
    x, positives, counts = scores[order], positives[order], counts[order]
    eps = np.finfo(np.float64).resolution
    lead = np.ones(len(x), dtype=bool)  # first score of each pooled group
    lead[1:] = (x[1:] - x[:-1]) >= eps
    last = np.maximum.accumulate(np.where(lead, np.arange(len(x)), 0))
    moved: int | np.integer = -1
    for j in np.flatnonzero(~lead):  # near-ties: pooled while within eps of the group's first
        if x[j] - x[max(last[j], moved)] >= eps:
            lead[j], moved = True, j
    first = np.flatnonzero(lead)
    weight = np.add.reduceat(counts, first)
    y = isotonic_regression(
        np.add.reduceat(positives, first) / weight,
        sample_weight=weight,
        y_min=FLOOR,
        y_max=1.0 - FLOOR,
        increasing=True,
    )
    x = x[first]
    knots = np.ones(len(y), dtype=bool)
    knots[1:-1] = (y[1:-1] != y[:-2]) | (y[1:-1] != y[2:])
    return ProbabilityCalibration(tuple(x[knots].tolist()), tuple(y[knots].tolist()), n_events)


def served_probability(calibration: ProbabilityCalibration | None, score) -> np.ndarray:
    """The expected success to serve: ``calibration(score)``.

    A version without a calibration (trained before it was kept) gets the score clipped to
    [0, 1], as it was served then.
    """
    if calibration is None:
        return np.clip(np.asarray(score, dtype=np.float64), 0.0, 1.0)
    return calibration(score)


def success_probability(model, score) -> np.ndarray:
    """:func:`served_probability` with the calibration of ``model`` (a
    :class:`skbandit.model.TrainedModel`)."""
    return served_probability(model.calibration, score)
