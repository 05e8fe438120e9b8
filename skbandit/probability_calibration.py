"""Calibrated success probabilities: a monotone map from the model's linear score to [0, 1].

LinUCB's mean ``theta' x`` is a linear score that estimates ``P(correct)`` but is not one:
on real logs it leaves [0, 1] (1.4-12 % of forecasts) and is over-confident at the ends. What
is served and shown as expected success is ``calibration(score)``, fitted on pairs
``(score, outcome)`` of **progressive** forecasts: each pair's score was made before its
event was learned, and the map that scores a batch is fitted only on earlier batches, so
calibration never sees the events it scores (:func:`skbandit.progressive.replay_history`).

The map is a logistic link on the score's logit (Platt scaling, with a prior):

    ``p = sigmoid(intercept + slope * logit(clip(score, SCORE_EPS, 1 - SCORE_EPS))
                  + tail_slope * beyond)``

where ``beyond`` is how far a score lies outside ``[SCORE_EPS, 1 - SCORE_EPS]``, in units of
:data:`TAIL_UNIT` (a linear score leaves [0, 1]; a score of 1.2 still ranks above 1.1),

fitted by penalised maximum likelihood with a Gaussian prior at the identity
(``intercept = 0, slope = 1``) worth :data:`PRIOR_EVENTS` events. Why this and not isotonic
regression (the map before): the model starts from the IRT probability, so its score already
is close to a probability and the identity is the right place to start; two parameters
shrunk toward it learn a systematic over- or under-confidence from a few hundred events,
where isotonic regression fitted on a few hundred events added noise and ties (on eight
real DataShop exports it cost 0.02-0.06 log-loss against IRT, docs/benchmarks.md). The link
is monotone (``slope > 0``), so the ranking, and AUC, are unchanged. With no events the map
is the identity: the score clipped to ``[FLOOR, 1 - FLOOR]``.

It is stored as data: :data:`KNOTS` knots of a non-decreasing piecewise-linear map from
score to probability (uniform in the score's logit, so dense at the ends, where the link
bends), with outputs squeezed linearly into ``[FLOOR, 1 - FLOOR]`` (``FLOOR + (1 - 2 FLOOR)
p``, not clipped: no ties) so that no forecast is 0 or 1.
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from skbandit.exceptions import SkbanditError

FLOOR = 0.001
"""Calibrated probabilities lie in ``[FLOOR, 1 - FLOOR]``."""
SCORE_EPS = 1e-4
"""Scores are clipped to ``[SCORE_EPS, 1 - SCORE_EPS]`` before their logit; the rest of a
score beyond that range enters the link as ``beyond``."""
TAIL_UNIT = 0.01
"""``beyond`` counts in steps of this much score (its prior slope is 1)."""
PRIOR_EVENTS = 50.0
"""Strength of the prior at the identity, in events: the penalty is
``PRIOR_EVENTS / 8 * (intercept^2 + (slope - 1)^2)`` (an event near p = 1/2 carries Fisher
information 1/4 about the intercept), so a few dozen events barely move the map and a few
thousand decide it."""
MIN_SLOPE = 1e-3
"""The fitted slope is kept at or above this, so the map stays increasing."""
KNOTS = 99
"""Knots of the stored piecewise-linear map."""
SCORE_BIN = 1e-3
"""Pairs are pooled into bins this wide in score before the fit."""
TAIL, TAIL_KNOTS = 1.0, 12
"""The map is stored for scores ``TAIL`` beyond [0, 1] on either side, with ``TAIL_KNOTS``
of the knots on each (a score further out takes the last knot's probability)."""
NEWTON_STEPS = 100


@dataclass(frozen=True)
class ProbabilityCalibration:
    """A non-decreasing piecewise-linear map from score to probability (data only).

    Parameters
    ----------
    scores, probabilities : tuple of float
        The map's knots; empty means "clip the score to ``[FLOOR, 1 - FLOOR]``" (the
        identity). Scores beyond the first or last knot take its probability.
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
    """Fit the map on progressive ``(score, outcome)`` pairs (the identity when there are none).

    This is :func:`fit_calibration_counts` with one count per pair, to the last bit.
    """
    scores = np.asarray(scores, dtype=np.float64)
    outcomes = np.asarray(outcomes, dtype=np.float64)
    return fit_calibration_counts(scores, outcomes, np.ones(len(scores)))


def fit_calibration_counts(scores, positives, counts) -> ProbabilityCalibration:
    """:func:`fit_calibration` from per-score sums: the same map, to the last bit.

    ``scores`` (any order, a score may repeat), ``positives`` the sum of the outcomes of the
    events with that score and ``counts`` their number, as an engine that aggregates the
    pairs elsewhere (Spark, by score) brings them back. The pairs are pooled into bins of
    :data:`SCORE_BIN` of score (each bin fitted at its centre; a score beyond
    ``[-TAIL, 1 + TAIL]`` in the last bin), then the link is fitted by Newton's method on the
    bins' sums: exact for 0/1 outcomes, whose sums are exact integers, so neither the order
    the sums came in nor how they were grouped matters, and the fit's cost does not grow
    with the number of events.

    >>> rows = fit_calibration(np.repeat([0.1, 0.3, 0.5, 0.7], 60), np.tile([0, 1, 1], 80))
    >>> rows == fit_calibration_counts([0.5, 0.1, 0.3, 0.7], [40, 40, 40, 40], [60] * 4)
    True
    >>> round(float(rows(0.1)), 3), round(float(rows(0.7)), 3)  # all four are 2/3 correct
    (0.596, 0.667)
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    keep = np.isfinite(scores) & np.isfinite(positives) & (counts > 0)
    scores, positives, counts = scores[keep], positives[keep], counts[keep]
    n_events = int(counts.sum())
    if n_events == 0:
        return ProbabilityCalibration()
    n_bins = round((1.0 + 2.0 * TAIL) / SCORE_BIN) + 1
    bins = np.rint((np.clip(scores, -TAIL, 1.0 + TAIL) + TAIL) / SCORE_BIN).astype(np.int64)
    bin_counts = np.bincount(bins, weights=counts, minlength=n_bins)
    used = np.flatnonzero(bin_counts)
    centres = used * SCORE_BIN - TAIL
    bin_positives = np.bincount(bins, weights=positives, minlength=n_bins)[used]
    grid = _knots()
    probabilities = _link(_fit_link(centres, bin_positives, bin_counts[used]), grid)
    return ProbabilityCalibration(tuple(grid.tolist()), tuple(probabilities.tolist()), n_events)


def _design(score):
    """The link's inputs: ``1``, the logit of the score clipped to ``[SCORE_EPS, 1 -
    SCORE_EPS]`` and how far the score lies beyond that range, in :data:`TAIL_UNIT` steps
    (so a score of 1.2 still ranks above one of 1.1: no ties)."""
    score = np.asarray(score, dtype=np.float64)
    inside = np.clip(score, SCORE_EPS, 1.0 - SCORE_EPS)
    beyond = (score - inside) / TAIL_UNIT
    return np.column_stack([np.ones_like(score), logit(inside), beyond])


def _link(weights, score):
    p = expit(_design(score) @ weights)
    return FLOOR + (1.0 - 2.0 * FLOOR) * p


def _fit_link(score, positives, counts) -> np.ndarray:
    """Penalised logistic regression of the outcome on :func:`_design`, prior at the
    identity ``(0, 1, 1)``; the slopes kept at or above :data:`MIN_SLOPE`."""
    strength = PRIOR_EVENTS / 4.0
    prior = np.array([0.0, 1.0, 1.0])
    design = _design(score)

    def loss(w):  # negative penalised log-likelihood
        eta = design @ w
        nll = counts @ np.logaddexp(0.0, eta) - positives @ eta
        return nll + strength / 2.0 * np.sum((w - prior) ** 2)

    w, current = prior.copy(), loss(prior)
    for _ in range(NEWTON_STEPS):
        p = expit(design @ w)
        gradient = design.T @ (positives - counts * p) - strength * (w - prior)
        hessian = (design.T * (counts * p * (1.0 - p))) @ design + strength * np.eye(3)
        step = np.linalg.solve(hessian, gradient)
        while loss(w + step) > current + 1e-12 * abs(current) and np.abs(step).max() > 1e-12:
            step = step / 2.0  # damped Newton: the loss never rises
        w = w + step
        current = loss(w)
        if np.abs(step).max() < 1e-10:
            break
    w[1:] = np.maximum(w[1:], MIN_SLOPE)
    return w


def _knots():
    """Scores of the stored map's knots: uniform in the logit inside ``[SCORE_EPS, 1 -
    SCORE_EPS]``, uniform in the score on ``TAIL`` beyond it on either side."""
    tail = TAIL_KNOTS
    inside = expit(np.linspace(logit(SCORE_EPS), logit(1.0 - SCORE_EPS), KNOTS - 2 * tail))
    low = np.linspace(-TAIL, SCORE_EPS, tail + 1)[:-1]
    high = np.linspace(1.0 - SCORE_EPS, 1.0 + TAIL, tail + 1)[1:]
    return np.concatenate([low, inside, high])


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
