"""The rule+epsilon logging policy: the probability that it shows each candidate.

The simulated school is logged by it (:mod:`skbandit.sim.generate`), and off-policy
evaluation uses the same formula as a target policy, so it lives here rather than in the
simulator. At every decision the policy shows

- w.p. ``1 - epsilon`` one of the rule's top ``top_k`` items uniformly (the rule orders the
  topic's non-drift items by :func:`skbandit.irt.rule_distance` between the item's
  published difficulty and the student's observed mastery), and
- w.p. ``epsilon`` a uniformly random candidate,

so item ``i`` of ``K`` candidates is shown with probability
``(1 - epsilon) / min(top_k, K) * [i in top_k] + epsilon / K``.
"""

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.irt import rule_distance


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


def logging_policy_probabilities(
    candidates: pd.DataFrame, epsilon: float = 0.1, top_k: int = 5
) -> np.ndarray:
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
    if schema.DECISION_ID in candidates.columns:
        codes, _ = pd.factorize(candidates[schema.DECISION_ID])
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
