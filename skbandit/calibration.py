"""Item calibration from responses: Rasch (1PL) and 2PL difficulties on a time prefix.

Real logs rarely ship item difficulties, and the items table needs them. This module
estimates them from the attempts themselves.

**Rasch / 1PL** is an L2-regularised logistic regression on sparse indicators,
``logit P(correct) = intercept + u_student + t_topic + v_item``, fitted by scikit-learn's
``LogisticRegression`` on a ``scipy.sparse`` design. An item's difficulty is
``b = -(t_topic + v_item)`` and a student's ability ``theta = intercept + u_student``, so
``P = sigmoid(theta - b)`` as in :func:`skbandit.irt.p_correct_2pl`. The L2 penalty is a
unit-variance Gaussian prior on each student and item deviation (``C = 1 / l2``) and a
weaker one on topics (their columns are scaled by :data:`TOPIC_SCALE`), so an item with few
responses is shrunk toward its topic's difficulty, and an item with none in the window gets
its topic's difficulty (the global mean when the topic is new too).

**2PL** adds a discrimination ``a`` per item, ``P = sigmoid(a (theta - b))``: alternating
from the Rasch solution, the items' ``(b, log a)`` are fitted by L-BFGS (``scipy.optimize``)
given the Rasch abilities, with Gaussian priors (``b`` around the item's Rasch topic
difficulty, ``log a`` around 0, sd 0.5). One pass: the abilities are not re-estimated, since
alternating to the joint optimum shrinks them and inflates ``a`` when students have few
responses (the inconsistency of joint maximum likelihood).

**Time prefix.** Calibration uses only the events up to :func:`calibration_cutoff` (by
default the earliest :data:`CALIBRATION_FRACTION` of the events, by time), so progressive
validation can score only later events, whose outcomes did not set any difficulty.

Example
-------
>>> rng = np.random.default_rng(0)
>>> theta, b = rng.normal(0, 1, 300), np.array([-1.5, 0.0, 1.5])
>>> user, item = np.repeat(np.arange(300), 3), np.tile(np.arange(3), 300)
>>> events = pd.DataFrame({
...     "user_id": user.astype(str), "item_id": item.astype(str), "topic": "t",
...     "timestamp": pd.Timestamp("2024-01-01", tz="UTC"),
...     "correct": (rng.random(900) < 1 / (1 + np.exp(b[item] - theta[user]))).astype(int)})
>>> fit = calibrate(events, method="rasch")
>>> bool(np.all(np.diff(fit.items["difficulty"].to_numpy()) > 0))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, sparse
from scipy.special import expit, log_expit

from skbandit import schema
from skbandit.cleaning import MAX_ABS_DIFFICULTY
from skbandit.exceptions import SkbanditError

METHODS = ("rasch", "2pl")
CALIBRATION_FRACTION = 0.5
"""Share of the events (the earliest, by time) that calibration may use by default."""
MIN_RESPONSES = 20
"""Items with fewer responses in the window are reported as shrunk toward their topic."""
TOPIC_SCALE = 3.0
"""Topic columns are scaled by this, so their prior standard deviation is 3 logits."""
N_RESPONSES = "n_responses"


@dataclass(frozen=True)
class CalibrationResult:
    """Calibrated item parameters and what they were estimated from.

    Attributes
    ----------
    items : DataFrame
        ``item_id, topic, difficulty, discrimination, n_responses`` for every item asked
        for (``n_responses`` counts its events in the window; 0 means topic mean).
    abilities : Series
        Ability (logits) of each student seen in the window, indexed by ``user_id``.
    mean_ability : float
        Ability given to students not seen in the window.
    method : str
        ``rasch`` or ``2pl``.
    window_start, window_end : Timestamp
        First and last event time used (inclusive).
    n_events : int
        Events in the window.
    n_items_few : int
        Items with 1 to ``min_responses - 1`` responses (estimate shrunk toward the topic).
    n_items_unseen : int
        Items with no response in the window (estimate = topic mean, or global mean).
    min_responses : int
    """

    items: pd.DataFrame
    abilities: pd.Series
    mean_ability: float
    method: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    n_events: int
    n_items_few: int
    n_items_unseen: int
    min_responses: int

    def summary(self) -> dict:
        """JSON-ready description (for ``cleaning.json`` and MLflow params)."""
        return {
            "method": self.method,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "events": self.n_events,
            "items": len(self.items),
            "items_few_responses": self.n_items_few,
            "items_unseen": self.n_items_unseen,
            "min_responses": self.min_responses,
        }

    def predict(self, events: pd.DataFrame) -> np.ndarray:
        """IRT-only success probability of each event from the calibrated parameters."""
        theta = events[schema.USER_ID].map(self.abilities).fillna(self.mean_ability)
        params = self.items.set_index(schema.ITEM_ID)
        b = events[schema.ITEM_ID].map(params[schema.DIFFICULTY])
        a = events[schema.ITEM_ID].map(params[schema.DISCRIMINATION])
        return expit(a.to_numpy(float) * (theta.to_numpy(float) - b.to_numpy(float)))


def calibration_cutoff(timestamps, fraction: float = CALIBRATION_FRACTION) -> pd.Timestamp:
    """The last timestamp of the calibration window: the earliest ``fraction`` of events.

    Events at the cut-off time are all inside, so the window ends between two distinct times.

    >>> ts = pd.to_datetime(["2024-01-0%d" % d for d in (1, 2, 2, 3)], utc=True)
    >>> str(calibration_cutoff(ts, 0.25).date()), str(calibration_cutoff(ts, 0.5).date())
    ('2024-01-01', '2024-01-02')
    """
    if not 0 < fraction <= 1:
        raise SkbanditError(
            f"calibration fraction must be in (0, 1]; found {fraction}; pass for example 0.5"
        )
    times = pd.DatetimeIndex(timestamps)
    if times.size == 0:
        raise SkbanditError("no events to calibrate items on; pass a non-empty events table")
    times = (times if times.tz is not None else times.tz_localize("UTC")).sort_values()
    k = max(1, int(np.ceil(fraction * times.size)))
    return times[k - 1]


def calibrate(
    events: pd.DataFrame,
    items: pd.DataFrame | None = None,
    *,
    method: str = "rasch",
    until: pd.Timestamp | None = None,
    l2: float = 1.0,
    min_responses: int = MIN_RESPONSES,
) -> CalibrationResult:
    """Estimate item difficulties (and 2PL discriminations) from canonical events.

    Parameters
    ----------
    events : DataFrame
        Canonical events (``user_id, item_id, topic, timestamp, correct``).
    items : DataFrame, optional
        ``item_id, topic`` of the items to calibrate (default: the items of ``events``).
        Items with no event in the window get their topic's difficulty.
    method : {"rasch", "2pl"}
    until : Timestamp, optional
        Use only events at or before this time (default: every event).
    l2 : float
        Prior precision of student and item deviations (``C = 1 / l2``).
    min_responses : int
        Threshold below which an item is reported as shrunk toward its topic.

    Returns
    -------
    CalibrationResult
    """
    if method not in METHODS:
        raise SkbanditError(
            f"unknown calibration method {method!r} (expected one of {', '.join(METHODS)}); "
            "pass --calibrate rasch or --calibrate 2pl"
        )
    if items is None:
        items = events.drop_duplicates(schema.ITEM_ID)[[schema.ITEM_ID, schema.TOPIC]]
    window = events
    if until is not None:
        window = events.loc[(events[schema.TIMESTAMP] <= until).to_numpy()]
    if window.empty:
        raise SkbanditError(
            f"no events at or before {until} to calibrate items on; pass a later cut-off"
        )
    index = _Index(window, items)
    fit = _fit_rasch(index, l2)
    if method == "2pl":
        fit = _fit_2pl(index, fit, l2)
    n = np.bincount(index.item, minlength=index.n_items)
    table = (
        items[[schema.ITEM_ID, schema.TOPIC]]
        .reset_index(drop=True)
        .assign(
            **{
                schema.DIFFICULTY: np.clip(fit.difficulty, -MAX_ABS_DIFFICULTY, MAX_ABS_DIFFICULTY),
                schema.DISCRIMINATION: fit.discrimination,
                N_RESPONSES: n,
            }
        )
    )
    ts = window[schema.TIMESTAMP]
    return CalibrationResult(
        items=table,
        abilities=pd.Series(fit.ability, index=index.users, name="ability"),
        mean_ability=fit.mean_ability,
        method=method,
        window_start=pd.Timestamp(ts.min()),
        window_end=pd.Timestamp(ts.max()),
        n_events=len(window),
        n_items_few=int(((n > 0) & (n < min_responses)).sum()),
        n_items_unseen=int((n == 0).sum()),
        min_responses=min_responses,
    )


class _Index:
    """Integer codes of the window's students, items (in ``items`` order) and topics."""

    def __init__(self, window: pd.DataFrame, items: pd.DataFrame):
        item_ids = pd.Index(items[schema.ITEM_ID])
        item = item_ids.get_indexer(window[schema.ITEM_ID])
        if (item < 0).any():
            missing = window.loc[item < 0, schema.ITEM_ID].iloc[0]
            raise SkbanditError(
                f"calibration: event item {missing!r} is not in the items table "
                f"({int((item < 0).sum())} events); pass every item to calibrate"
            )
        self.user, self.users = pd.factorize(window[schema.USER_ID])
        self.item, self.n_items = item, len(item_ids)
        self.item_topic, self.topics = pd.factorize(items[schema.TOPIC])
        self.y = window[schema.CORRECT].to_numpy(dtype=np.float64)

    @property
    def n_users(self) -> int:
        return len(self.users)


@dataclass
class _Fit:
    ability: np.ndarray
    difficulty: np.ndarray
    discrimination: np.ndarray
    topic_difficulty: np.ndarray  # per item: its topic's difficulty (the shrinkage target)
    mean_ability: float


def _fit_rasch(ix: _Index, l2: float) -> _Fit:
    from sklearn.linear_model import LogisticRegression

    n, n_topics = len(ix.y), len(ix.topics)
    cols = np.column_stack(
        [  # three non-zeros per row, already in column order
            ix.user,
            ix.n_users + ix.item_topic[ix.item],
            ix.n_users + n_topics + ix.item,
        ]
    ).ravel()
    values = np.tile([1.0, TOPIC_SCALE, 1.0], n)
    shape = (n, ix.n_users + n_topics + ix.n_items)
    design = sparse.csr_matrix((values, cols, np.arange(0, 3 * n + 1, 3)), shape=shape)
    if np.unique(ix.y).size < 2:
        intercept, coef = _one_class(ix.y), np.zeros(shape[1])
    else:
        model = LogisticRegression(C=1.0 / l2, solver="newton-cg", max_iter=200, tol=1e-5)
        model.fit(design, ix.y)
        intercept, coef = float(model.intercept_[0]), model.coef_[0]
    topic = TOPIC_SCALE * coef[ix.n_users : ix.n_users + n_topics]
    item = coef[ix.n_users + n_topics :]
    topic_b = -topic[ix.item_topic]
    return _Fit(
        ability=intercept + coef[: ix.n_users],
        difficulty=topic_b - item,
        discrimination=np.ones(ix.n_items),
        topic_difficulty=topic_b,
        mean_ability=intercept,
    )


def _one_class(y: np.ndarray) -> float:
    """The logit of a smoothed rate when every outcome is the same (no regression to fit)."""
    rate = (y.sum() + 0.5) / (len(y) + 1.0)
    return float(np.log(rate / (1 - rate)))


def _fit_2pl(ix: _Index, start: _Fit, l2: float, log_a_sd: float = 0.5) -> _Fit:
    """Item (b, log a) by penalised maximum likelihood given the Rasch abilities.

    The abilities stay the Rasch ones: they are shrunk estimates (posterior modes), which
    is what a regressor should be (regression calibration). Re-estimating them jointly
    would shrink them further with every pass and inflate every ``a`` (joint maximum
    likelihood is inconsistent with few responses per student).
    """
    ni = ix.n_items
    theta = start.ability[ix.user]
    item, y = ix.item, ix.y
    b_prior, a_precision = start.topic_difficulty, 1.0 / log_a_sd**2

    def objective(params):
        b, log_a = params[:ni], params[ni:]
        a = np.exp(log_a)
        z = a[item] * (theta - b[item])
        nll = -np.sum(y * log_expit(z) + (1 - y) * log_expit(-z))
        penalty = 0.5 * l2 * np.sum((b - b_prior) ** 2) + 0.5 * a_precision * np.sum(log_a**2)
        r = expit(z) - y  # d nll / d z
        g_b = -np.bincount(item, r * a[item], minlength=ni) + l2 * (b - b_prior)
        g_log_a = np.bincount(item, r * z, minlength=ni) + a_precision * log_a
        return nll + penalty, np.concatenate([g_b, g_log_a])

    x0 = np.concatenate([start.difficulty, np.zeros(ni)])
    bounds = [(None, None)] * ni + [(np.log(0.2), np.log(5.0))] * ni
    solution = optimize.minimize(
        objective, x0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500}
    )
    return _Fit(
        ability=start.ability,
        difficulty=solution.x[:ni],
        discrimination=np.exp(solution.x[ni:]),
        topic_difficulty=b_prior,
        mean_ability=start.mean_ability,
    )
