"""Learning progress: which target success teaches most, measured on later attempts.

The target band objective ranks items by closeness to a fixed target success (0.7), which
bakes in where learning peaks. Learning progress learns the target from data instead, in
the spirit of ZPDES / RiARiT (Clement, Roy, Oudeyer & Lopes 2015, "Multi-Armed Bandits for
Intelligent Tutoring Systems", JEDM 7(2)): the arms are the target successes
:data:`TARGETS`; the reward of a decision is a **delayed, learning-aligned reward**, how
much better the student does on their next ``horizon`` attempts on the same topic than the
student's ability at the decision predicted, on the ability (logit) scale:

``reward = sum_j a_j (correct_j - p_j) / sum_j a_j^2 p_j (1 - p_j)``,
``p_j = p_2pl(theta_t, b_j, a_j)``

where ``theta_t = mastery_to_logit(mastery)`` is the student's observed ability at the
decision and ``j`` runs over the next attempts on the topic (their items' published
difficulty ``b_j`` and discrimination ``a_j``). This is one Fisher-scoring step: the change
of ability since the decision that the later answers suggest. Practice that teaches raises
later successes above the prediction; on the logit scale an equal ability gain scores the
same at every target (in probability points, gains near p = 0.5 would look larger). Nothing
here needs the simulator's truth: the same reward is computed from logged events
(:func:`delayed_rewards`).

:class:`ProgressBands` keeps each target's mean reward and draws a target per decision by
Thompson sampling on a normal posterior (exploration across targets); :class:`PendingRewards`
turns an online stream of attempts into finished delayed rewards; :func:`progress_target`
estimates the best target from logged events (for ranking with the ``"learning_progress"``
objective, which ranks like the target band at that learned target).

>>> bands = ProgressBands()
>>> bands.update(np.array([2, 2, 5]), np.array([0.1, 0.3, -0.1]))
>>> float(bands.best_target())
0.6
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.irt import mastery_to_logit, p_correct_2pl

TARGETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Target successes the learning-progress objective chooses among."""
HORIZON = 5
"""Later attempts on the topic behind one delayed reward."""
MASTERY_STRATA = 20
"""Bins of observed mastery within which logged rewards are compared (:func:`progress_bands`)."""
PRIOR_SD = 0.5
"""Prior standard deviation of a target's mean reward (and of one reward before data)."""
_MIN_INFORMATION = 1e-6


class ProgressBands:
    """Mean delayed reward of each target in :data:`TARGETS`; Thompson draws among them.

    Attributes
    ----------
    count, total, total_sq : ndarray of shape (len(TARGETS),)
        Rewards seen per target, their sum and sum of squares.
    """

    def __init__(self, targets=TARGETS):
        self.targets = np.asarray(targets, dtype=np.float64)
        self.count = np.zeros(self.targets.size)
        self.total = np.zeros(self.targets.size)
        self.total_sq = np.zeros(self.targets.size)

    def update(self, arm, reward) -> None:
        """Add finished rewards: ``arm`` indexes :attr:`targets`."""
        arm, reward = np.asarray(arm, dtype=np.int64), np.asarray(reward, dtype=np.float64)
        n = self.targets.size
        self.count += np.bincount(arm, minlength=n)
        self.total += np.bincount(arm, weights=reward, minlength=n)
        self.total_sq += np.bincount(arm, weights=reward**2, minlength=n)

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of every target's mean reward.

        A normal model with prior ``N(0, PRIOR_SD^2)`` and the pooled reward variance.
        """
        n = self.count.sum()
        pooled = (self.total_sq.sum() / n - (self.total.sum() / n) ** 2) if n > 1 else 0.0
        noise = max(pooled, PRIOR_SD**2)
        precision = 1.0 / PRIOR_SD**2 + self.count / noise
        return (self.total / noise) / precision, np.sqrt(1.0 / precision)

    def draw(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """One arm per decision, each the best of a posterior draw (Thompson sampling)."""
        mean, sd = self.posterior()
        return np.argmax(mean + sd * rng.standard_normal((size, mean.size)), axis=1)

    def best_target(self) -> float:
        """The target whose mean reward is highest at its lower bound (posterior mean minus
        one posterior standard deviation), among the targets with rewards.

        Pessimism, the usual rule for choosing from logged data (Jin, Yang & Wang 2021, "Is
        Pessimism Provably Efficient for Offline RL?"): a logging policy rarely shows some
        targets, and the highest posterior *mean* would often be one of those by chance (a
        winner's curse); a target nobody practised is chosen only when none has a reward.
        """
        mean, sd = self.posterior()
        bound = mean - sd
        if self.count.any():
            bound = np.where(self.count > 0, bound, -np.inf)
        return float(self.targets[np.argmax(bound)])

    def as_dict(self) -> dict:
        """The bands as plain lists (stored with a model version, see :meth:`from_dict`)."""
        return {
            "targets": self.targets.tolist(),
            "count": self.count.tolist(),
            "total": self.total.tolist(),
            "total_sq": self.total_sq.tolist(),
            "target": self.best_target(),
        }

    @classmethod
    def from_dict(cls, values) -> ProgressBands:
        """Bands from :meth:`as_dict`; a malformed mapping raises SkbanditError.

        >>> ProgressBands.from_dict(ProgressBands().as_dict()).count.tolist()
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        """
        try:
            bands = cls(np.asarray(values["targets"], dtype=np.float64))
            for name in ("count", "total", "total_sq"):
                column = np.asarray(values[name], dtype=np.float64)
                if column.shape != bands.targets.shape or not np.isfinite(column).all():
                    raise ValueError(name)
                setattr(bands, name, column)
        except (KeyError, TypeError, ValueError) as error:
            raise SkbanditError(
                f"learning-progress bands need finite 'targets', 'count', 'total' and "
                f"'total_sq' lists of one length; found a problem with {error}"
            ) from None
        if bands.targets.ndim != 1 or not ((bands.targets >= 0) & (bands.targets <= 1)).all():
            raise SkbanditError(
                f"learning-progress targets must be success probabilities in "
                f"[0, 1]; found {bands.targets.tolist()}"
            )
        return bands


class PendingRewards:
    """Decisions waiting for their delayed reward, per (student, topic).

    :meth:`add` opens a decision with its arm and the student's ability then;
    :meth:`observe` adds an attempt's residual to every open decision of its student and
    topic and returns the ones that reached ``horizon`` attempts.
    """

    def __init__(self, horizon: int = HORIZON):
        self.horizon = horizon
        self._open: defaultdict[object, list] = defaultdict(list)

    def observe(self, student, topic, correct, difficulty, discrimination):
        """Residuals of one step's attempts; returns finished ``(arms, rewards)`` arrays."""
        arms, rewards = [], []
        for s, t, c, b, a in zip(
            student.tolist(),
            topic.tolist(),
            correct.tolist(),
            difficulty.tolist(),
            discrimination.tolist(),
            strict=True,
        ):
            entries = self._open.get((s, t))
            if not entries:
                continue
            keep = []
            for entry in entries:  # [arm, theta, score, information, attempts]
                p = float(p_correct_2pl(entry[1], b, a))
                entry[2] += a * (c - p)
                entry[3] += a * a * p * (1.0 - p)
                entry[4] += 1
                if entry[4] >= self.horizon:
                    arms.append(entry[0])
                    rewards.append(entry[2] / max(entry[3], _MIN_INFORMATION))
                else:
                    keep.append(entry)
            self._open[(s, t)] = keep
        return np.asarray(arms, dtype=np.int64), np.asarray(rewards, dtype=np.float64)

    def add(self, student, topic, arm, mastery) -> None:
        """Open one decision per row (after :meth:`observe` of the same step)."""
        theta = mastery_to_logit(np.asarray(mastery, dtype=np.float64))
        for s, t, k, th in zip(
            student.tolist(), topic.tolist(), arm.tolist(), theta.tolist(), strict=True
        ):
            self._open[(s, t)].append([k, th, 0.0, 0.0, 0])


def delayed_rewards(
    student, topic, correct, mastery, difficulty, discrimination, horizon: int = HORIZON
) -> np.ndarray:
    """The delayed reward of every logged attempt (NaN when fewer than ``horizon`` follow).

    Parameters
    ----------
    student, topic : array-like of shape (n,)
        Keys of the attempts, in time order.
    correct : array-like of shape (n,)
    mastery : array-like of shape (n,)
        The student's observed mastery at each attempt (its context).
    difficulty, discrimination : array-like of shape (n,)
        Published parameters of each attempt's item.

    Returns
    -------
    ndarray of shape (n,)

    Examples
    --------
    A student who keeps succeeding on items predicted at 0.5 has reward ``0.5 / 0.25 = 2``
    logits:

    >>> r = delayed_rewards([0] * 4, [0] * 4, [1, 1, 1, 1], [0.5] * 4, [0.0] * 4, [1.0] * 4,
    ...                     horizon=2)
    >>> r.tolist()[:2], bool(np.isnan(r[2:]).all())
    ([2.0, 2.0], True)
    """
    student = pd.factorize(np.asarray(student))[0]
    topic = pd.factorize(np.asarray(topic))[0]
    order = np.lexsort((np.arange(student.size), topic, student))  # time order within a key
    key = (student * (topic.max(initial=0) + 1) + topic)[order]
    correct = np.asarray(correct, dtype=np.float64)[order]
    theta = mastery_to_logit(np.asarray(mastery, dtype=np.float64))[order]
    b = np.asarray(difficulty, dtype=np.float64)[order]
    a = np.asarray(discrimination, dtype=np.float64)[order]
    n = key.size
    score, information, complete = np.zeros(n), np.zeros(n), np.ones(n, dtype=bool)
    for k in range(1, horizon + 1):
        later = np.minimum(np.arange(n) + k, max(n - 1, 0))
        ok = (np.arange(n) + k < n) & (key[later] == key)
        p = p_correct_2pl(theta, b[later], a[later])
        score += np.where(ok, a[later] * (correct[later] - p), 0.0)
        information += np.where(ok, a[later] ** 2 * p * (1.0 - p), 0.0)
        complete &= ok
    out = np.full(n, np.nan)
    out[order] = np.where(complete, score / np.maximum(information, _MIN_INFORMATION), np.nan)
    return out


def progress_target(events, items, horizon: int = HORIZON) -> tuple[float, ProgressBands]:
    """The target success that taught most in logged events, and the bands behind it.

    Computes every event's context (:func:`skbandit.context.historical_contexts`) and
    calls :func:`progress_bands`.

    Parameters
    ----------
    events : DataFrame
        Canonical events, in any order.
    items : DataFrame
        The items table (published ``difficulty`` and ``discrimination``).

    Returns
    -------
    target : float
        :meth:`ProgressBands.best_target`.
    bands : ProgressBands
    """
    from skbandit.context import historical_contexts

    events = events.sort_values(schema.TIMESTAMP, kind="stable")
    bands = progress_bands(events, historical_contexts(events, items), horizon=horizon)
    return bands.best_target(), bands


def progress_bands(
    events, contexts, bands: ProgressBands | None = None, horizon: int = HORIZON
) -> ProgressBands:
    """Add the delayed rewards of logged events to ``bands`` (new bands when None).

    Every event is an arm: the target in :data:`TARGETS` nearest to the 2PL success of its
    item at the student's observed mastery then; its reward is :func:`delayed_rewards`
    (events with fewer than ``horizon`` later attempts on the topic add nothing), centred
    on the mean reward of the events at the same observed mastery (:data:`MASTERY_STRATA`
    bins). Logged choices were not randomised over targets: which target an item hits
    depends on the student's observed mastery, and an over-estimated mastery (a lucky
    streak) both picks the high targets and predicts later answers too high (regression to
    the mean), which without the centring makes easy practice look useless. The estimate
    is still only as good as the logging policy's spread of difficulties at each mastery
    (its exploration).

    This is ``bands_from_sums(reward_sums(events, contexts), bands)``: an engine that splits
    the events by student adds up :func:`reward_sums` of its parts instead.

    Parameters
    ----------
    events : DataFrame of shape (n_events, ...)
        Canonical events in time order (``user_id``, ``topic``, ``correct``).
    contexts : DataFrame of shape (n_events, ...)
        Each event's context, row for row: ``mastery``, ``difficulty`` and
        ``discrimination`` (as the warm-start job computes them).
    bands : ProgressBands, optional
        Bands to continue (a continued model version's).
    """
    targets = TARGETS if bands is None else bands.targets
    return bands_from_sums(reward_sums(events, contexts, targets, horizon), bands)


def reward_sums(events, contexts, targets=TARGETS, horizon: int = HORIZON) -> np.ndarray:
    """Delayed rewards of logged events summed per (arm, mastery stratum), not yet centred.

    ``events`` and ``contexts`` as in :func:`progress_bands`. The sums of disjoint sets of
    whole students add up (a reward looks only at its own student's later attempts), and
    :func:`bands_from_sums` turns them into bands.

    Returns
    -------
    ndarray of shape (3, len(targets), MASTERY_STRATA)
        Per arm (a target) and stratum of observed mastery: the count of rewards, their sum
        and their sum of squares.

    Examples
    --------
    Two rewards of 2 logits (:func:`delayed_rewards`) at mastery 0.5 (stratum 10), item
    success 0.5 (arm 1, target 0.5):

    >>> events = pd.DataFrame({"user_id": 0, "topic": 0, "correct": [1, 1, 1, 1]})
    >>> contexts = pd.DataFrame({"mastery": [0.5] * 4, "difficulty": 0.0, "discrimination": 1})
    >>> sums = reward_sums(events, contexts, horizon=2)
    >>> sums.shape, sums[:, 1, 10].tolist(), float(sums.sum())
    ((3, 6, 20), [2.0, 4.0, 8.0], 14.0)
    """
    targets = np.asarray(targets, dtype=np.float64)
    mastery = contexts[schema.MASTERY].to_numpy(np.float64)
    b = contexts[schema.DIFFICULTY].to_numpy(np.float64)
    a = contexts[schema.DISCRIMINATION].to_numpy(np.float64)
    reward = logged_rewards(events, contexts, horizon)
    p = p_correct_2pl(mastery_to_logit(mastery), b, a)
    arm = np.argmin(np.abs(p[:, None] - targets[None, :]), axis=1)
    known = ~np.isnan(reward)
    stratum = np.clip((mastery * MASTERY_STRATA).astype(np.int64), 0, MASTERY_STRATA - 1)
    cell, reward = (arm * MASTERY_STRATA + stratum)[known], reward[known]
    sums = [
        np.bincount(cell, weights=w, minlength=targets.size * MASTERY_STRATA)
        for w in (None, reward, reward**2)
    ]
    return np.stack(sums).astype(np.float64).reshape(3, targets.size, MASTERY_STRATA)


def bands_from_sums(sums, bands: ProgressBands | None = None) -> ProgressBands:
    """Add :func:`reward_sums` (computed with ``bands``' targets) to ``bands`` (new bands
    when None), each reward centred on its stratum's mean reward (see :func:`progress_bands`).

    With ``m`` a stratum's mean reward, an arm's ``n`` rewards ``r`` there add ``n``,
    ``Σ r - n m`` and ``Σ r² - 2 m Σ r + n m²`` (the centred rewards' sums) to its bands.

    >>> sums = np.zeros((3, len(TARGETS), MASTERY_STRATA))
    >>> sums[:, 0, 3], sums[:, 1, 3] = [1, 3.0, 9.0], [1, 1.0, 1.0]  # rewards 3 and 1, m = 2
    >>> bands = bands_from_sums(sums)
    >>> bands.count[:2].tolist(), bands.total[:2].tolist(), bands.total_sq[:2].tolist()
    ([1.0, 1.0], [1.0, -1.0], [1.0, 1.0])
    """
    count, total, total_sq = np.asarray(sums, dtype=np.float64)
    bands = ProgressBands() if bands is None else bands
    mean = total.sum(axis=0) / np.maximum(count.sum(axis=0), 1)
    bands.count += count.sum(axis=1)
    bands.total += (total - count * mean).sum(axis=1)
    bands.total_sq += (total_sq - 2 * mean * total + count * mean**2).sum(axis=1)
    return bands


def logged_rewards(events, contexts, horizon: int = HORIZON) -> np.ndarray:
    """:func:`delayed_rewards` of logged events, row for row (NaN: too few later attempts).

    ``events`` are canonical events in time order and ``contexts`` their contexts row for
    row (``mastery``, ``difficulty``, ``discrimination``), as in :func:`progress_bands`.
    The champion/challenger gate's ``--reward progress`` scores each decision by it.
    """
    return delayed_rewards(
        events[schema.USER_ID].to_numpy(),
        events[schema.TOPIC].to_numpy(),
        events[schema.CORRECT].to_numpy(),
        contexts[schema.MASTERY].to_numpy(np.float64),
        contexts[schema.DIFFICULTY].to_numpy(np.float64),
        contexts[schema.DISCRIMINATION].to_numpy(np.float64),
        horizon,
    )


# --- the target a model version learned ---------------------------------------------------
#
# Decision (issue 24): ``objective=learning_progress`` now serves the target a **target
# experiment** identifies (:mod:`skbandit.target_experiment`, :mod:`skbandit.learning_curves`:
# learning curves fit to the experiment's log, safe switching from the default). A version
# that stores such a state (``TrainedModel.identified_target``) serves it; a version stored
# before (delayed-reward bands only) keeps loading and serving its bands' target, so no
# registered version breaks. The bands' own estimate is kept for those versions and for
# the study (``linucb_progress``), not for new decisions: from rule-logged history it is
# noise (docs/evidence.md).

UNAVAILABLE = (
    "objective learning_progress needs the target a model version learned from "
    "its training events, and this version has {}; retrain it with "
    "`python -m train.warmstart` (which stores the learned target), or ask for "
    "objective target_band"
)


def learned_target(model) -> float:
    """The target success a :class:`~skbandit.model.TrainedModel` version learned.

    The target its target experiment identified when it stores one
    (``model.identified_target``, :func:`skbandit.target_experiment.served_target`), else its
    delayed-reward bands' (:func:`target_of_bands`); SkbanditError when it has neither.
    """
    identified = getattr(model, "identified_target", None)
    if identified is not None:
        from skbandit.target_experiment import served_target

        return served_target(identified)
    return target_of_bands(model.progress_bands)


def target_of_bands(bands: ProgressBands | None) -> float:
    """The best target of a version's bands; SkbanditError when there are none to use.

    >>> target_of_bands(None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    skbandit.exceptions.SkbanditError: objective learning_progress needs ... none stored ...
    """
    if bands is None:
        raise SkbanditError(UNAVAILABLE.format("none stored (trained before it was kept)"))
    if not bands.count.any():
        raise SkbanditError(
            UNAVAILABLE.format(
                f"no delayed reward (no student had {HORIZON} later attempts on a topic)"
            )
        )
    return bands.best_target()
