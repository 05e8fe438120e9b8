"""An honest interval for the expected success: what ``uncertainty`` means since issue 21.

The served ``expected_reward`` ``p`` is the version's calibrated estimate of a student's
chance on an item. How far the *true* chance may lie from it has three sources, added as
variances on the logit scale and turned into an interval ``[low, high]`` of the success
probability with :data:`COVERAGE` (80 %):

1. **The student's ability.** :mod:`skbandit.ability` gives a Gaussian posterior sd
   ``sd`` (logits) per student and topic. The true chance moves with the true ability at the
   item's IRT slope, ``d logit P / d theta = (1 - c) a s (1 - s) / (P (1 - P))`` (``a`` for
   the 2PL), so this term is ``ability_factor * (slope * sd)^2``. ``ability_factor`` is the
   ratio of the ability error the data shows to the posterior's ``sd^2``: the posterior is
   a Laplace approximation with no learning between attempts, so it may be over- or
   under-confident, and the data says which.
2. **The item.** A published difficulty is an estimate and an item has effects the IRT
   parameters miss; what the model has not learned of them is shared by every student who
   answers the item: ``item_variance`` (logits^2).
3. **The model's parameters.** ``residual_variance * x' A^-1 x`` is the Bayesian ridge
   variance of the linear score (``residual_variance`` is the mean squared progressive
   residual of the score), divided by ``(p (1 - p))^2`` to put it on the logit scale.

The interval is ``sigmoid(logit p -+ z * sqrt(total))`` with ``z`` the normal quantile of
the coverage: asymmetric on the probability scale, never outside (0, 1).

**How the scales are learned (causally, from outcomes only).** A single 0/1 outcome cannot
tell how far its true chance was from the forecast (only the mean is identified), but two
outcomes that share an error can: their residuals' product has the shared error's variance
as its expectation, since the answers' own noise is independent.

- ``item_variance``: over pairs of *different* students' attempts at the same item,
  ``sum r_i r_j / sum v_i v_j`` with ``r = y - p`` the
  progressive residual and ``v = p (1 - p)`` (the linearised logit scale), minus the same
  ratio over pairs on *other* items of the topic (what the cohort's common ability error
  adds to every pair: it is in the ability term already); each forecast was made before its
  event was learned (:func:`skbandit.progressive.replay_history`).
- ``ability_factor``: each attempt ``i`` and the student's next attempt ``j`` on the same
  topic are both forecast from the ability at ``i`` (the IRT probability of each item at
  the ability mean before ``i``, so ``j``'s forecast has not seen ``y_i``); their residuals'
  products estimate the ability error's variance, ``sum r_i r_j / sum d_i d_j`` with ``d``
  the IRT slope ``dP/dtheta``, and the factor is that variance over the pairs' mean ``sd^2``.

They are fitted in warm-start on the scored progressive forecasts (never on events a
forecast had already learned) and stored with the version as data (:class:`SuccessInterval`,
``config.json``'s ``success_interval``). A request with no ``ability_sd`` (REST rows carry
``mastery`` but not its sd) uses ``ability_variance``, the ability error variance the data
showed on average, so the interval keeps its coverage over the served items, while a
per-student interval (``trace``) uses the student's own sd. A version trained before the
interval was kept has no learned scales: it gets ``ability_factor = 1``, no item term and
the Bernoulli bound ``residual_variance = 1/4``.

Why 80 %: the range is read by a teacher deciding what to assign; 80 % ("four times in
five the true chance is in this range") is a plausible range that stays narrow enough to
tell items apart, where 90-95 % ranges for a new student span most of [0, 1].
"""

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, logit, ndtri

from skbandit import schema
from skbandit.context import (
    ABILITY_SD,
    ITEM_PARAMETERS,
    completion_ns,
    item_table,
    student_counts,
    student_features,
)
from skbandit.exceptions import SkbanditError
from skbandit.irt import guessing_of, p_correct_3pl

COVERAGE = 0.8
"""Nominal coverage of the shown interval of the success probability."""
"""Attribute of a pipeline that holds its version's :class:`SuccessInterval`."""
MIN_PAIRS = 200
"""Fewer residual pairs than this: the scale keeps its default (too noisy to learn)."""
PROBABILITY_EDGE = 1e-3
"""Expected successes are kept in ``[edge, 1 - edge]`` before taking their logit."""
DEFAULT_ABILITY_VARIANCE = 1.0**2 + 0.7**2
"""Ability variance (logits^2) of a row without ``ability_sd`` when nothing was learned: the
prior of :mod:`skbandit.ability` (``PRIOR_SD^2 + TOPIC_SD^2``), the widest honest answer."""


@dataclass(frozen=True)
class SuccessInterval:
    """The learned scales of the success interval (data only; see the module docstring).

    Parameters
    ----------
    ability_factor : float
        Realised ability error variance over the posterior's ``sd^2``.
    ability_variance : float
        Realised ability error variance (logits^2): used for rows without ``ability_sd``.
    item_variance : float
        Item-level error variance the model has not learned (logits^2).
    residual_variance : float
        Mean squared progressive residual of the linear score (scales ``x' A^-1 x``).
    n_item_pairs, n_ability_pairs, n_events : int
        Residual pairs and scored events the scales were learned from (0: defaults).
    coverage : float
        Nominal coverage of the interval.

    Examples
    --------
    With only an item term of 1 logit^2 and no ability sd, an expected 50 % gets the 80 %
    interval ``sigmoid(-+1.2816)``:

    >>> scales = SuccessInterval(ability_variance=0.0, item_variance=1.0, residual_variance=0.0)
    >>> low, high = scales.bounds(np.array([0.5]), mastery=np.array([0.5]),
    ...                           difficulty=np.zeros(1), discrimination=np.ones(1),
    ...                           guessing=np.zeros(1), std=np.zeros(1))
    >>> round(float(low[0]), 3), round(float(high[0]), 3)
    (0.217, 0.783)
    """

    ability_factor: float = 1.0
    ability_variance: float = DEFAULT_ABILITY_VARIANCE
    item_variance: float = 0.0
    residual_variance: float = 0.25
    n_item_pairs: int = 0
    n_ability_pairs: int = 0
    n_events: int = 0
    coverage: float = COVERAGE

    def bounds(
        self, expected, *, mastery, difficulty, discrimination, guessing, std, ability_sd=None
    ):
        """``(low, high)``: the interval of the true success of each row.

        Parameters
        ----------
        expected : ndarray of shape (n,)
            The served expected success.
        mastery, difficulty, discrimination, guessing : ndarray of shape (n,)
            The row's model inputs (``mastery = sigmoid(ability)``).
        std : ndarray of shape (n,)
            ``sqrt(x' A^-1 x)`` of the row's features.
        ability_sd : ndarray of shape (n,), optional
            The ability posterior sd (logits); None (or NaN in a row) uses
            :attr:`ability_variance`.
        """
        shown = np.asarray(expected, dtype=np.float64)
        p = np.clip(shown, PROBABILITY_EDGE, 1 - PROBABILITY_EDGE)
        ability = logit(np.clip(np.asarray(mastery, dtype=np.float64), 1e-6, 1 - 1e-6))
        slope = _logit_slope(ability, difficulty, discrimination, guessing)
        ability_part = slope**2 * self.ability_variance
        if ability_sd is not None:
            own = self.ability_factor * np.asarray(ability_sd, dtype=np.float64) ** 2
            ability_part = np.where(np.isnan(own), ability_part, slope**2 * own)
        model_part = self.residual_variance * np.asarray(std, dtype=np.float64) ** 2
        total = ability_part + self.item_variance + model_part / (p * (1 - p)) ** 2
        half = ndtri(0.5 + self.coverage / 2) * np.sqrt(total)
        centre = logit(p)
        # an old version's clipped expected 0 or 1 stays inside its own interval
        return np.minimum(expit(centre - half), shown), np.maximum(expit(centre + half), shown)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SuccessInterval":
        defaults = cls()
        try:
            unknown = set(data) - set(asdict(defaults))
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            values = {k: type(getattr(defaults, k))(v) for k, v in dict(data).items()}
            scales = cls(**values)
        except (TypeError, ValueError) as error:
            raise SkbanditError(
                f"success interval is malformed ({error}); expected the keys "
                f"{', '.join(asdict(defaults))}"
            ) from None
        variances = [
            scales.ability_factor,
            scales.ability_variance,
            scales.residual_variance,
            scales.item_variance,
        ]
        if not (all(np.isfinite(v) and v >= 0 for v in variances) and 0 < scales.coverage < 1):
            raise SkbanditError(
                "success interval is malformed (expected finite non-negative variances and "
                "a coverage in (0, 1))"
            )
        return scales


def fit_success_interval(
    *,
    reward,
    expected,
    score,
    item,
    student,
    topic,
    mastery,
    ability_sd,
    difficulty,
    discrimination,
    guessing,
) -> SuccessInterval:
    """Learn the interval's scales from scored progressive forecasts, in time order.

    Every argument is an array with one entry per scored event, sorted by time:
    ``reward`` (0/1), ``expected`` (the calibrated progressive forecast), ``score`` (the
    linear score it calibrated), ``item``, ``student`` and ``topic`` (group codes), and the
    event's ``mastery``, ``ability_sd`` and item parameters from its context (all from
    attempts strictly before it). See the module docstring for the estimators.
    """
    reward = np.asarray(reward, dtype=np.float64)
    n = len(reward)
    p = np.clip(np.asarray(expected, dtype=np.float64), PROBABILITY_EDGE, 1 - PROBABILITY_EDGE)
    residual_variance = float(np.mean((reward - np.asarray(score)) ** 2)) if n else 0.25
    item, student, topic = (pd.factorize(np.asarray(v))[0] for v in (item, student, topic))
    item_variance, n_item_pairs = _item_variance(reward - p, p * (1 - p), item, student, topic)
    factor, variance, n_ability_pairs = _ability_error(
        reward,
        _codes(student, topic),
        logit(np.clip(np.asarray(mastery, dtype=np.float64), 1e-6, 1 - 1e-6)),
        np.asarray(ability_sd, dtype=np.float64),
        np.asarray(difficulty, dtype=np.float64),
        np.asarray(discrimination, dtype=np.float64),
        np.asarray(guessing, dtype=np.float64),
    )
    default = SuccessInterval()
    return SuccessInterval(
        ability_factor=factor if n_ability_pairs >= MIN_PAIRS else default.ability_factor,
        ability_variance=variance if n_ability_pairs >= MIN_PAIRS else default.ability_variance,
        item_variance=item_variance if n_item_pairs >= MIN_PAIRS else default.item_variance,
        residual_variance=residual_variance,
        n_item_pairs=n_item_pairs,
        n_ability_pairs=n_ability_pairs,
        n_events=n,
    )


def learn_success_interval(events, items, contexts, predictions) -> SuccessInterval:
    """:func:`fit_success_interval` of a replay's scored forecasts.

    ``events`` and ``contexts`` are the replayed events (time order) and their contexts,
    ``predictions`` :attr:`skbandit.progressive.ReplayResult.predictions` (its last rows are
    the scored events: a replay scores from some row on).
    """
    sd = event_ability_sd(events, items)
    rows = slice(len(events) - len(predictions), None)
    scored, context = events.iloc[rows], contexts.iloc[rows]
    return fit_success_interval(
        reward=predictions["reward"].to_numpy(dtype=np.float64),
        expected=predictions["bandit"].to_numpy(dtype=np.float64),
        score=predictions["score"].to_numpy(dtype=np.float64),
        item=scored[schema.ITEM_ID].to_numpy(),
        student=scored[schema.USER_ID].to_numpy(),
        topic=scored[schema.TOPIC].to_numpy(),
        mastery=context[schema.MASTERY].to_numpy(dtype=np.float64),
        ability_sd=sd[rows],
        difficulty=context[schema.DIFFICULTY].to_numpy(dtype=np.float64),
        discrimination=context[schema.DISCRIMINATION].to_numpy(dtype=np.float64),
        guessing=context[schema.GUESSING].to_numpy(dtype=np.float64),
    )


def event_ability_sd(events, items) -> np.ndarray:
    """The ability posterior sd (logits) before every event, as its context has it.

    ``events`` in time order (as warm-start replays them); the same sums as
    :func:`skbandit.context.historical_contexts` (:func:`skbandit.context.student_counts`).
    """
    static = item_table(items)
    position = pd.Index(static[schema.ITEM_ID]).get_indexer(events[schema.ITEM_ID])
    parameters = [static[name].to_numpy(dtype=np.float64)[position] for name in ITEM_PARAMETERS]
    ts = _utc_ns(events[schema.TIMESTAMP])
    latency = _column(events, schema.LATENCY_MS)
    counts = student_counts(
        events[schema.USER_ID].to_numpy(),
        events[schema.TOPIC].to_numpy(),
        ts,
        completion_ns(ts, latency),
        events[schema.CORRECT].to_numpy(dtype=np.float64),
        latency,
        _column(events, schema.HELP_REQUESTED),
        *parameters,
    )
    return student_features(**counts, names=[ABILITY_SD])[ABILITY_SD]


def _utc_ns(timestamps):
    return pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).as_unit("ns").asi8


def _column(frame, name):
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _item_variance(residual, weight, item, student, topic):
    """The item-level error variance and the number of item pairs it rests on.

    ``C(item) - C(topic, other item)``, where ``C(g)`` is :func:`_pair_moments`' ratio over
    pairs of *different* students in the same group ``g``: what two students' residuals on
    the same item share beyond what any two attempts on the topic share (the cohort's
    common ability error, already in the ability term).
    """
    if residual.size < 2:
        return 0.0, 0
    item, student, topic = (pd.factorize(v)[0] for v in (item, student, topic))
    same_item = _pair_moments(residual, weight, item) - _pair_moments(
        residual, weight, _codes(item, student)
    )
    same_topic = _pair_moments(residual, weight, topic) - _pair_moments(
        residual, weight, _codes(topic, student)
    )
    other_item = same_topic - same_item
    n_pairs = int(same_item[2])
    if same_item[1] <= 0 or other_item[1] <= 0:
        return 0.0, n_pairs
    return max(0.0, float(same_item[0] / same_item[1] - other_item[0] / other_item[1])), n_pairs


def _pair_moments(residual, weight, group):
    """``[sum r_i r_j, sum w_i w_j, pairs]`` over the pairs ``i != j`` within each group."""
    s = np.bincount(group, weights=residual)
    q = np.bincount(group, weights=residual**2)
    w = np.bincount(group, weights=weight)
    ww = np.bincount(group, weights=weight**2)
    sizes = np.bincount(group).astype(np.float64)
    return np.array(
        [(s * s - q).sum() / 2, (w * w - ww).sum() / 2, (sizes * (sizes - 1)).sum() / 2]
    )


def _codes(*keys):
    """One group code per combination of the non-negative integer codes ``keys``.

    >>> _codes(np.array([0, 0, 1, 0]), np.array([2, 1, 2, 2])).tolist()
    [0, 1, 2, 0]
    """
    combined = np.zeros(len(keys[0]), dtype=np.int64)
    for key in keys:  # a mixed radix number: distinct for distinct combinations
        key = np.asarray(key, dtype=np.int64)
        combined = pd.factorize(combined * (int(key.max(initial=0)) + 1) + key)[0]
    return combined


def _ability_error(reward, group, ability, sd, b, a, c):
    """Ability error variance from each attempt and the next on its student's topic.

    Returns ``(factor, variance, n_pairs)``: the realised variance over the pairs'
    slope-weighted mean ``sd^2``, the realised variance, and the number of pairs.
    """
    n = reward.size
    order = np.lexsort((np.arange(n), group))  # time order within each student-topic
    same = group[order][1:] == group[order][:-1]
    i, j = order[:-1][same], order[1:][same]
    if i.size == 0:
        return 1.0, DEFAULT_ABILITY_VARIANCE, 0
    theta = ability[i]  # both forecast from the ability before i: j's has not seen y_i
    r_i = reward[i] - p_correct_3pl(theta, b[i], a[i], c[i])
    r_j = reward[j] - p_correct_3pl(theta, b[j], a[j], c[j])
    d = _slope(theta, b[i], a[i], c[i]) * _slope(theta, b[j], a[j], c[j])
    variance = max(0.0, float((r_i * r_j).sum() / d.sum()))
    posterior = float((sd[i] ** 2 * d).sum() / d.sum())
    return (variance / posterior if posterior > 0 else 1.0), variance, int(i.size)


def _slope(ability, difficulty, discrimination, guessing):
    """``dP/dtheta`` of the 3PL: ``(1 - c) a s (1 - s)``."""
    s = expit(np.asarray(discrimination) * (ability - np.asarray(difficulty)))
    return (1.0 - np.asarray(guessing)) * np.asarray(discrimination) * s * (1.0 - s)


def _logit_slope(ability, difficulty, discrimination, guessing):
    """``d logit P / d theta`` of the 3PL (``a`` for the 2PL)."""
    p = np.clip(p_correct_3pl(ability, difficulty, discrimination, guessing), 1e-9, 1 - 1e-9)
    return _slope(ability, difficulty, discrimination, guessing) / (p * (1.0 - p))


INTERVAL_INPUTS = (schema.MASTERY, schema.DIFFICULTY, schema.DISCRIMINATION, schema.GUESSING)
"""Candidate columns the interval reads (with ``ability_sd`` where the rows carry it)."""


def interval_inputs_of(candidates) -> dict:
    """The columns of candidate rows that :func:`interval_of_columns` reads, as float arrays
    (``guessing`` 0 where missing; ``ability_sd`` only where the rows carry it)."""
    columns = {
        name: candidates[name].to_numpy(dtype=np.float64)
        for name in (*INTERVAL_INPUTS[:3], ABILITY_SD)
        if name in candidates.columns
    }
    columns[schema.GUESSING] = guessing_of(candidates)
    return columns


def interval_of_columns(model, columns, expected, std):
    """``(success_low, success_high)``: the 80 % interval of each row's true success.

    :meth:`SuccessInterval.bounds` with the version's learned scales and the rows' ability
    and item parameters (``columns``, :func:`interval_inputs_of`), and ``ability_sd`` where
    the rows carry it (``trace`` does; a REST row does not), else the version's typical
    ability error.
    """
    return success_interval_of(model).bounds(
        expected,
        mastery=columns.get(schema.MASTERY),
        difficulty=columns.get(schema.DIFFICULTY),
        discrimination=columns.get(schema.DISCRIMINATION),
        guessing=columns.get(schema.GUESSING),
        std=std,
        ability_sd=columns.get(ABILITY_SD),
    )


def candidate_interval(model, candidates, expected, std, rows=None):
    """:func:`interval_of_columns` of candidate rows (``rows`` selects some; ``expected`` and
    ``std`` are already those rows')."""
    picked = candidates if rows is None else candidates.iloc[rows]
    return interval_of_columns(model, interval_inputs_of(picked), expected, std)


def success_interval_of(model) -> SuccessInterval:
    """The version's learned scales (``model.success_interval``); the defaults for a version
    trained before they were kept."""
    scales = getattr(model, "success_interval", None)
    return SuccessInterval() if scales is None else scales
