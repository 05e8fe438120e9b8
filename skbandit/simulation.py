"""The simulated school's history: the logging policy run through :class:`SchoolEnv`.

No real learning data may be shipped, so the embedded default data set is a simulated school
(:mod:`skbandit.school` draws the world, :mod:`skbandit.school_env` plays policies against
it). :func:`simulate_school` produces the logged history the way a deployed rule-based
recommender with exploration would have: at every decision the **logging policy** shows

- w.p. ``1 - epsilon`` one of the rule's top ``top_k`` items uniformly (the rule orders the
  topic's non-drift items by :func:`skbandit.irt.rule_distance` between the item's
  published difficulty and the student's observed mastery), and
- w.p. ``epsilon`` a uniformly random candidate,

so item ``i`` of ``K`` candidates is shown with probability
``(1 - epsilon) / min(top_k, K) * [i in top_k] + epsilon / K``, which every event carries in
``propensity``. :func:`logging_policy_probabilities` gives the same numbers for any
candidate frame, for off-policy evaluation.

Example
-------
>>> school = simulate_school(SchoolConfig(n_students=20, seed=3))
>>> bool(school.events["propensity"].between(0, 1).all())
True
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.irt import rule_distance
from skbandit.school import SchoolConfig, default_school_config
from skbandit.school_env import (
    ABILITY_AFTER,
    ABILITY_BEFORE,
    DECISION_ID,
    P_TRUE,
    TRUTH_COLUMNS,
    SchoolEnv,
)

__all__ = [
    "ABILITY_AFTER", "ABILITY_BEFORE", "DECISION_ID", "P_TRUE", "TRUTH_COLUMNS",
    "SchoolConfig", "SchoolEnv", "SimulatedSchool", "default_school_config",
    "logging_policy_name", "logging_policy_probabilities", "rule_epsilon_probabilities",
    "simulate_school",
]


@dataclass
class SimulatedSchool:
    """A simulated school year.

    Attributes
    ----------
    events : DataFrame
        Canonical events incl. ``propensity`` and ``policy``, sorted by timestamp.
    items : DataFrame
        The published items table (canonical columns).
    truth : DataFrame
        Aligned with ``events`` row by row: ``p_true, ability_before, ability_after``.
    true_items : DataFrame
        The items with their true parameters (``difficulty_true``,
        ``discrimination_true``, ``hidden_effect``).
    config : SchoolConfig
    """

    events: pd.DataFrame
    items: pd.DataFrame
    truth: pd.DataFrame
    true_items: pd.DataFrame
    config: SchoolConfig


def logging_policy_name(epsilon: float) -> str:
    """The events' ``policy`` value, e.g. ``'rule+epsilon(0.1)'``."""
    return f"rule+epsilon({epsilon:g})"


def rule_epsilon_probabilities(mastery, difficulty, epsilon: float, top_k: int = 5):
    """Probabilities of the logging policy for a batch of decisions (padded matrix form).

    Parameters
    ----------
    mastery : array-like of shape (n_decisions,)
        Observed mastery of each decision's student.
    difficulty : array-like of shape (n_decisions, max_candidates)
        Published difficulty of each candidate; NaN pads decisions with fewer candidates.
    epsilon : float
        Exploration probability in [0, 1].
    top_k : int
        Size of the rule's shortlist.

    Returns
    -------
    ndarray of shape (n_decisions, max_candidates)
        Rows sum to 1; padding gets 0.

    Examples
    --------
    >>> p = rule_epsilon_probabilities([0.5], [[0.0, 3.0]], epsilon=0.2, top_k=1)
    >>> p.round(2).tolist()
    [[0.9, 0.1]]
    """
    difficulty = np.atleast_2d(np.asarray(difficulty, dtype=np.float64))
    mastery = np.asarray(mastery, dtype=np.float64).reshape(-1, 1)
    valid = ~np.isnan(difficulty)
    n_cand = valid.sum(axis=1, keepdims=True)
    dist = np.where(valid, rule_distance(mastery, np.nan_to_num(difficulty)), np.inf)
    rank = np.argsort(np.argsort(dist, axis=1, kind="stable"), axis=1, kind="stable")
    shortlist = np.minimum(top_k, n_cand)
    in_top = rank < shortlist
    probs = (1.0 - epsilon) * in_top / np.maximum(shortlist, 1) + epsilon / np.maximum(n_cand, 1)
    return np.where(valid, probs, 0.0)


def logging_policy_probabilities(candidates: pd.DataFrame, epsilon: float = 0.1,
                                 top_k: int = 5) -> np.ndarray:
    """Probability that the logging policy shows each candidate row.

    Parameters
    ----------
    candidates : DataFrame
        ``schema.CANDIDATE_COLUMNS`` rows (at least ``mastery`` and ``difficulty``); rows
        of one decision share a ``decision_id`` (all rows form one decision when the column
        is absent). Drift-flagged items must already be excluded, as in
        :meth:`SchoolEnv.candidates`.
    epsilon, top_k : float, int
        The logging policy's parameters (``SchoolConfig.epsilon`` / ``top_k``).

    Returns
    -------
    ndarray of shape (n_rows,)
        Aligned with ``candidates``; sums to 1 within each decision.
    """
    if DECISION_ID in candidates.columns:
        codes, _ = pd.factorize(candidates[DECISION_ID])
    else:
        codes = np.zeros(len(candidates), dtype=np.int64)
    if len(candidates) == 0:
        return np.empty(0)
    position = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    n_rows = codes.max() + 1
    difficulty = np.full((n_rows, position.max() + 1), np.nan)
    difficulty[codes, position] = candidates[schema.DIFFICULTY].to_numpy(np.float64)
    mastery = np.zeros(n_rows)
    mastery[codes] = candidates[schema.MASTERY].to_numpy(np.float64)
    probs = rule_epsilon_probabilities(mastery, difficulty, epsilon, top_k)
    return probs[codes, position]


def simulate_school(config: SchoolConfig | None = None) -> SimulatedSchool:
    """Simulate a school year logged by the rule+epsilon policy.

    Parameters
    ----------
    config : SchoolConfig, optional
        Defaults to :func:`default_school_config`. The result depends only on it.

    Returns
    -------
    SimulatedSchool
    """
    env = SchoolEnv(config)
    cfg = env.config
    rng = np.random.default_rng(env.policy_seed)
    while not env.done:
        cands = env.candidate_arrays(columns=(schema.MASTERY, schema.DIFFICULTY))
        first, position = _decision_positions(cands.decision, cands.n_decisions)
        difficulty = np.full((cands.n_decisions, position.max() + 1), np.nan)
        difficulty[cands.decision, position] = cands.column(schema.DIFFICULTY)
        mastery = cands.column(schema.MASTERY)[first]
        probs = rule_epsilon_probabilities(mastery, difficulty, cfg.epsilon, cfg.top_k)
        column = _sample_columns(probs, rng)
        decisions = np.arange(cands.n_decisions)
        env.step_indices(cands.item[first + column], propensity=probs[decisions, column])
    events, truth = env.history(policy=logging_policy_name(cfg.epsilon))
    return SimulatedSchool(events=events, items=env.items, truth=truth,
                           true_items=env.true_items, config=cfg)


def _decision_positions(decision: np.ndarray, n_decisions: int):
    """First row of each decision, and each row's position within its decision.

    ``decision`` is sorted (as in :class:`~skbandit.school_env.CandidateArrays`).
    """
    first = np.searchsorted(decision, np.arange(n_decisions))
    return first, np.arange(decision.size) - first[decision]


def _sample_columns(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column index per row, drawn with the row's probabilities."""
    cumulative = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cumulative[:, -1]
    return (cumulative <= u[:, None]).sum(axis=1)
