"""One choice per decision from scored candidate rows (shared by every study policy)."""

import numpy as np

from skbandit.exceptions import SkbanditError


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
