"""Target policies scored on logged decisions: the inputs of the off-policy estimators.

The estimators of :mod:`skbandit.ope.estimators` need, for every logged decision ``i``, the
target policy's probability of the logged item ``pi(a_i | x_i)`` and, for doubly robust, a
reward model at the logged item and in expectation under the target.
:func:`off_policy_inputs` scores a target policy on the decisions that
:func:`skbandit.ope.decisions.logged_decisions` rebuilds, chunk by chunk, and returns
:class:`OffPolicyInputs`, whose :meth:`~OffPolicyInputs.estimate` runs one estimator.

A target policy is a :class:`TargetPolicy`, a
:class:`~skbandit.policy_protocol.StochasticPolicy` on chunks of logged candidates:
``policy.probabilities(candidates)`` (or ``policy(candidates)``) gives, for one chunk (rows
of a decision are contiguous and share ``decision_id``), the probability that the policy
shows each row's item first (summing to 1 per decision). :func:`linucb_policy`,
:func:`rule_policy`, :func:`uniform_policy` and :func:`logging_policy` build them.

:func:`skbandit.ope.gate.promotion_gate` decides from the paired difference of two such
estimates (:meth:`OffPolicyInputs.terms`) whether a candidate model may replace the champion
(``python -m train.evaluate compare --promote``).

Example
-------
>>> from skbandit.sim.generate import SchoolConfig, simulate_school
>>> school = simulate_school(SchoolConfig(n_students=10, seed=1, end_date="2023-09-30"))
>>> inputs = off_policy_inputs(school.events, school.items, uniform_policy())
>>> bool(((inputs.target_propensity > 0) & (inputs.target_propensity < 1)).all())
True
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.irt import rule_distance
from skbandit.logging_policy import logging_policy_probabilities
from skbandit.ope import estimators as evaluation
from skbandit.ope.decisions import (
    CHUNK_ROWS,
    IS_LOGGED,
    decision_positions,
    logged_decisions,
)
from skbandit.policy import score_candidates
from skbandit.policy_protocol import StochasticPolicy, draw_rows
from skbandit.ranking_settings import Exploration, RankingSettings, as_settings

ESTIMATORS = ("dr", "snips", "ips", "replay")
"""Estimator names accepted by :meth:`OffPolicyInputs.estimate`."""
PROBABILITY_TOLERANCE = 1e-6
"""How far a decision's target probabilities may sum from 1."""
RowValues = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class TargetPolicy:
    """A target policy: first-slot probabilities of each decision's candidate rows.

    Satisfies :class:`~skbandit.policy_protocol.StochasticPolicy` on frames whose rows of a
    decision are contiguous and share ``decision_id``; calling it is :meth:`probabilities`.
    """

    first_slot: RowValues
    """``first_slot(candidates) -> probs``, one probability per row, 1 per decision."""

    def probabilities(self, candidates: pd.DataFrame) -> np.ndarray:
        """Probability that the policy shows each row's item first."""
        return self.first_slot(candidates)

    def __call__(self, candidates: pd.DataFrame) -> np.ndarray:
        return self.first_slot(candidates)

    def choose(self, candidates: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """One row per decision, drawn from :meth:`probabilities`."""
        groups = _Groups(candidates[schema.DECISION_ID].to_numpy())
        return draw_rows(self.probabilities(candidates), groups.starts, rng)


class SharedFeatures:
    """The checked feature rows of the chunk being scored, once per feature set.

    Off-policy evaluation scores the candidate and the champion, each as a policy and as a
    reward model, on the same chunks of logged candidates; with the same feature set (the
    usual case) they need the features of a chunk once, not four times (keyed by
    :attr:`skbandit.model.TrainedModel.feature_set`).
    """

    def __init__(self):
        self._chunk, self._rows = None, {}

    def __call__(self, pipeline, candidates) -> np.ndarray:
        if candidates is not self._chunk:
            self._chunk, self._rows = candidates, {}
        key = pipeline.feature_set
        if key not in self._rows:
            self._rows[key] = pipeline.candidate_features(candidates)[0]
        return self._rows[key]


# --- target policies ---------------------------------------------------------------------


def as_target_policy(policy) -> StochasticPolicy[pd.DataFrame]:
    """``policy`` as a :class:`~skbandit.policy_protocol.StochasticPolicy` (a plain
    ``probs = policy(candidates)`` function becomes a :class:`TargetPolicy`)."""
    if isinstance(policy, StochasticPolicy):
        return policy
    if callable(policy):
        return TargetPolicy(policy)
    raise SkbanditError(
        f"a target policy must give first-slot probabilities (a TargetPolicy, e.g. from "
        f"linucb_policy, or a function of the candidates); got {type(policy).__name__}"
    )


def linucb_policy(
    pipeline, settings: RankingSettings | None = None, shared: SharedFeatures | None = None
) -> TargetPolicy:
    """First-slot probabilities of :func:`skbandit.policy.rank_linucb`, for many decisions.

    Parameters
    ----------
    pipeline : TrainedModel
        A trained :class:`skbandit.model.TrainedModel`.
    settings : RankingSettings, optional
        As in :func:`skbandit.policy.rank_linucb` (``top_k`` plays no part); default
        ``RankingSettings()``.
    shared : SharedFeatures, optional
        Computes each chunk's features once for every target that shares it.

    Returns
    -------
    TargetPolicy
        ``policy.probabilities(candidates) -> probs``; per decision equal to
        :func:`skbandit.policy.action_probabilities` (greedy ties share the probability).
    """
    settings = as_settings(settings)

    def probabilities(candidates):
        features = None if shared is None else shared(pipeline, candidates)
        score = score_candidates(pipeline, candidates, settings, features).score
        groups = _Groups(candidates[schema.DECISION_ID].to_numpy())
        top = groups.spread(np.maximum.reduceat(score, groups.starts))
        if settings.exploration is Exploration.softmax:
            weights = np.exp((score - top) / settings.temperature)
        else:
            weights = (score == top).astype(np.float64)
        probs = weights / groups.spread(np.add.reduceat(weights, groups.starts))
        if settings.epsilon == 0.0:
            return probs
        return (1.0 - settings.epsilon) * probs + settings.epsilon / groups.spread(groups.sizes)

    return TargetPolicy(probabilities)


def rule_policy() -> TargetPolicy:
    """The rule-based baseline's first item (:func:`skbandit.policy.rank_rule_based`).

    The candidate closest in difficulty to the student's level gets probability 1; ties go
    to the earliest candidate, as in the stable sort of the rule.
    """

    def probabilities(candidates):
        distance = rule_distance(
            candidates[schema.MASTERY].to_numpy(np.float64),
            candidates[schema.DIFFICULTY].to_numpy(np.float64),
        )
        groups = _Groups(candidates[schema.DECISION_ID].to_numpy())
        closest = distance == groups.spread(np.minimum.reduceat(distance, groups.starts))
        position = np.arange(len(distance))
        first = np.minimum.reduceat(np.where(closest, position, len(distance)), groups.starts)
        return (position == groups.spread(first)).astype(np.float64)

    return TargetPolicy(probabilities)


def uniform_policy() -> TargetPolicy:
    """Every candidate of a decision equally likely."""

    def probabilities(candidates):
        groups = _Groups(candidates[schema.DECISION_ID].to_numpy())
        return 1.0 / groups.spread(groups.sizes).astype(np.float64)

    return TargetPolicy(probabilities)


def logging_policy(epsilon=0.1, top_k=5) -> TargetPolicy:
    """The simulated school's rule+epsilon logging policy (see :mod:`skbandit.sim.generate`)."""

    def probabilities(candidates):
        return logging_policy_probabilities(candidates, epsilon=epsilon, top_k=top_k)

    return TargetPolicy(probabilities)


def linucb_reward_model(pipeline, shared: SharedFeatures | None = None) -> RowValues:
    """``q(x, a)``: the pipeline's mean prediction clipped to [0, 1], for doubly robust
    (``shared`` as in :func:`linucb_policy`)."""

    def predict(candidates):
        if shared is None:
            return np.clip(pipeline.predict(candidates), 0.0, 1.0)
        return np.clip(pipeline.estimator.predict(shared(pipeline, candidates)), 0.0, 1.0)

    return predict


# --- estimator inputs --------------------------------------------------------------------


@dataclass(frozen=True)
class OffPolicyInputs:
    """Per-decision inputs of the estimators for one target policy.

    Attributes
    ----------
    rewards, logged_propensity, target_propensity : ndarray of shape (n,)
        See :func:`skbandit.ope.estimators.ips`.
    reward_model_logged, reward_model_target : ndarray of shape (n,) or None
        See :func:`skbandit.ope.estimators.doubly_robust` (None without a reward model).
    match : ndarray of bool of shape (n,) or None
        Whether the target's choice is the logged item; only for a deterministic target.
    expectations : dict of str to ndarray of shape (n,)
        ``sum_a pi(a | x_i) v(x_i, a)`` for each requested row-value function ``v``.
    n_candidates : ndarray of int of shape (n,)
        Size of each decision's candidate set.
    """

    rewards: np.ndarray
    logged_propensity: np.ndarray
    target_propensity: np.ndarray
    reward_model_logged: np.ndarray | None = None
    reward_model_target: np.ndarray | None = None
    match: np.ndarray | None = None
    expectations: dict = field(default_factory=dict)
    n_candidates: np.ndarray | None = None

    def estimate(
        self, estimator="dr", *, n_bootstrap=1000, confidence=0.95, rng=None, clusters=None
    ):
        """Run one estimator (``"dr"``, ``"snips"``, ``"ips"`` or ``"replay"``); with
        ``clusters`` (e.g. each decision's student) the interval resamples whole clusters.

        Returns
        -------
        PolicyValueEstimate
        """
        boot = {
            "n_bootstrap": n_bootstrap,
            "confidence": confidence,
            "rng": rng,
            "clusters": clusters,
        }
        logged = (self.rewards, self.logged_propensity, self.target_propensity)
        if estimator == "ips":
            return evaluation.ips(*logged, **boot)
        if estimator == "snips":
            return evaluation.snips(*logged, **boot)
        if estimator == "dr":
            if self.reward_model_logged is None:
                raise SkbanditError(
                    "doubly robust needs a reward model; pass reward_model to "
                    "off_policy_inputs or choose ips/snips"
                )
            return evaluation.doubly_robust(
                *logged, self.reward_model_logged, self.reward_model_target, **boot
            )
        if estimator == "replay":
            if self.match is None:
                raise SkbanditError(
                    "replay needs a deterministic target policy; this one "
                    "randomises, so choose ips, snips or dr"
                )
            return evaluation.replay(self.rewards, self.match, **boot)
        raise SkbanditError(f"unknown estimator {estimator!r} (expected one of {ESTIMATORS})")

    def terms(self, estimator="dr"):
        """Per-decision ``(numerator, denominator, weights)`` of ``estimator`` (see
        :func:`skbandit.ope.estimators.estimator_terms`)."""
        return evaluation.estimator_terms(
            estimator,
            self.rewards,
            self.logged_propensity,
            self.target_propensity,
            self.reward_model_logged,
            self.reward_model_target,
        )


def off_policy_inputs(
    events,
    items,
    policy: StochasticPolicy[pd.DataFrame] | RowValues,
    *,
    reward_model=None,
    expectations=None,
    contexts=None,
    rows=None,
    chunk_rows=CHUNK_ROWS,
) -> OffPolicyInputs:
    """Score a target policy on every logged decision.

    Parameters
    ----------
    events : DataFrame of shape (n_events, ...)
        Canonical events with ``propensity`` (the logging policy's probability of the
        logged item).
    items : DataFrame
        Item table.
    policy : StochasticPolicy or callable
        A :class:`TargetPolicy` (e.g. from :func:`linucb_policy`), any other
        :class:`~skbandit.policy_protocol.StochasticPolicy` on candidate frames, or a plain
        ``probs = policy(candidates)`` function.
    reward_model : callable, optional
        ``q(candidates) -> values`` (e.g. :func:`linucb_reward_model`); needed for ``"dr"``.
    expectations : dict of str to callable, optional
        Row-value functions ``v(candidates) -> values`` whose expectation under the target
        is returned per decision (e.g. the simulator's true success probability).
    contexts, rows, chunk_rows
        See :func:`skbandit.ope.decisions.logged_decisions`.

    Returns
    -------
    OffPolicyInputs
        One entry per selected decision, in ``rows`` order.
    """
    if schema.PROPENSITY not in events.columns:
        raise SkbanditError(
            f"events have no {schema.PROPENSITY!r} column (the logging policy's probability "
            "of each shown item), so off-policy estimates are impossible; log propensities "
            "at serving time (rank_linucb returns them) or use the simulated school"
        )
    selected = decision_positions(rows, len(events))
    sums = TargetSums(len(selected), policy, reward_model, expectations)
    for chunk in logged_decisions(
        events, items, contexts=contexts, rows=selected, chunk_rows=chunk_rows
    ):
        sums.add(chunk, chunk[IS_LOGGED].to_numpy())
    return sums.inputs(
        events[schema.CORRECT].to_numpy(np.float64)[selected],
        events[schema.PROPENSITY].to_numpy(np.float64)[selected],
    )


class TargetSums:
    """A target policy's per-decision sums, accumulated over chunks of candidate rows.

    Each chunk holds whole decisions (rows of a decision contiguous, ``decision_id`` the
    decision's position ``0..n-1``) and a flag for the logged item; :meth:`inputs` turns the
    sums into :class:`OffPolicyInputs`. Shared by the rebuilt (:func:`off_policy_inputs`) and
    the served-log (:func:`skbandit.ope.join.served_inputs`) paths.
    """

    def __init__(
        self,
        n: int,
        policy: StochasticPolicy[pd.DataFrame] | RowValues,
        reward_model: RowValues | None = None,
        expectations: dict[str, RowValues] | None = None,
    ):
        self.policy, self.reward_model = as_target_policy(policy), reward_model
        self.value_functions = dict(expectations or {})
        self.target, self.top, self.q_logged, self.q_target = (np.zeros(n) for _ in range(4))
        self.expectations = {name: np.zeros(n) for name in self.value_functions}
        self.sizes = np.zeros(n, dtype=np.int64)

    def add(self, chunk, logged) -> tuple[np.ndarray, np.ndarray]:
        """Score one chunk; returns the decisions it held and where each starts in it."""
        groups = _Groups(chunk[schema.DECISION_ID].to_numpy())
        ids = chunk[schema.DECISION_ID].to_numpy()[groups.starts]
        probs = _checked_probabilities(self.policy.probabilities(chunk), groups)
        self.target[ids] = np.add.reduceat(probs * logged, groups.starts)
        self.top[ids] = np.maximum.reduceat(probs, groups.starts)
        self.sizes[ids] = groups.sizes
        if self.reward_model is not None:
            q = np.asarray(self.reward_model(chunk), dtype=np.float64)
            self.q_logged[ids] = np.add.reduceat(q * logged, groups.starts)
            self.q_target[ids] = np.add.reduceat(q * probs, groups.starts)
        for name, values in self.value_functions.items():
            self.expectations[name][ids] = np.add.reduceat(
                np.asarray(values(chunk)) * probs, groups.starts
            )
        return ids, groups.starts

    def inputs(self, rewards, logged_propensity) -> OffPolicyInputs:
        """The estimator inputs, given each decision's reward and logged propensity."""
        deterministic = bool(np.all(self.top >= 1.0 - PROBABILITY_TOLERANCE))
        modelled = self.reward_model is not None
        return OffPolicyInputs(
            rewards=rewards,
            logged_propensity=logged_propensity,
            target_propensity=np.clip(self.target, 0.0, 1.0),
            reward_model_logged=self.q_logged if modelled else None,
            reward_model_target=self.q_target if modelled else None,
            match=self.target >= 1.0 - PROBABILITY_TOLERANCE if deterministic else None,
            expectations=self.expectations,
            n_candidates=self.sizes,
        )


# --- internals -------------------------------------------------------------------------


class _Groups:
    """Contiguous runs of equal decision ids: ``starts``, ``sizes`` and broadcasting."""

    def __init__(self, decision_ids):
        decision_ids = np.asarray(decision_ids)
        if len(decision_ids) == 0:
            raise SkbanditError("no candidate rows to score (expected at least one decision)")
        new = np.r_[True, decision_ids[1:] != decision_ids[:-1]]
        self.starts = np.flatnonzero(new)
        self.sizes = np.diff(np.r_[self.starts, len(decision_ids)])
        if len(np.unique(decision_ids[self.starts])) != len(self.starts):
            raise SkbanditError(
                "candidate rows of a decision must be contiguous (group the "
                "frame by decision_id, as logged_decisions does)"
            )

    def spread(self, per_group):
        """One value per group -> one value per row."""
        return np.repeat(per_group, self.sizes)


def _checked_probabilities(probs, groups):
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (int(groups.sizes.sum()),):
        raise SkbanditError(
            f"the target policy returned shape {probs.shape}, expected one "
            f"probability per candidate row ({int(groups.sizes.sum())})"
        )
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise SkbanditError("the target policy returned negative or non-finite probabilities")
    sums = np.add.reduceat(probs, groups.starts)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > PROBABILITY_TOLERANCE:
        raise SkbanditError(
            f"the target policy's probabilities of a decision sum to "
            f"{sums[worst]:.6g}, expected 1 (one first-slot choice per "
            "decision)"
        )
    return probs
