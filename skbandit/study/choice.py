"""One choice per decision from scored candidate rows, and the study policies' base class
(shared by every study policy)."""

from __future__ import annotations

import numpy as np

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.sim.env import CandidateArrays


def group_argmax(score, group, n_groups, rng):
    """Row of the highest ``score`` in each group (ties broken uniformly at random by ``rng``).

    ``group`` (shape ``(n_rows,)``) must be sorted with every group ``0..n_groups-1``
    non-empty, as ``CandidateArrays.decision`` is. Returns the chosen row of each group in
    order.

    >>> rng = np.random.default_rng(0)
    >>> group_argmax(np.array([1.0, 3.0, 2.0, 5.0]), np.array([0, 0, 1, 1]), 2, rng).tolist()
    [1, 3]
    """
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    if starts.size != n_groups or group[starts[-1]] != n_groups - 1 or (np.diff(group) < 0).any():
        raise SkbanditError(
            f"expected candidate rows sorted by decision with at least one per "
            f"decision 0..{n_groups - 1}; found {starts.size} groups"
        )
    best = np.maximum.reduceat(score, starts)
    key = np.where(score == best[group], rng.random(score.size), -1.0)
    hits = np.flatnonzero(key == np.maximum.reduceat(key, starts)[group])
    return hits[np.r_[True, group[hits][1:] != group[hits][:-1]]]  # one per group


class OnlinePolicy:
    """A study policy: ``choose`` one candidate row per decision, ``update`` on outcomes.

    A :class:`~skbandit.policy_protocol.Policy` on
    :class:`~skbandit.sim.env.CandidateArrays` that also learns online. ``columns`` are the
    model-input columns the policy reads (the environment computes only those).
    """

    columns: tuple[str, ...] = schema.MODEL_INPUT

    def choose(self, cands: CandidateArrays, rng: np.random.Generator) -> np.ndarray:
        """Row index (into ``cands``) chosen for each decision: the best ``score``."""
        return group_argmax(self.score(cands, rng), cands.decision, cands.n_decisions, rng)

    def score(self, cands: CandidateArrays, rng: np.random.Generator) -> np.ndarray:
        """One score per candidate row, higher is better (each policy defines it)."""
        raise NotImplementedError(f"{type(self).__name__} must define score")

    def update(self, cands: CandidateArrays, rows: np.ndarray, reward: np.ndarray) -> None:
        """Learn from the rewards of the chosen rows (no-op for non-learning policies)."""

    def observe(self, cands: CandidateArrays, rows: np.ndarray, outcome) -> None:
        """See the step's whole outcome (a :class:`~skbandit.sim.outcomes.StepOutcome`)."""
