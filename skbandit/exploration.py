"""How a ranking is drawn from scores: greedy or softmax, mixed with an epsilon-uniform floor.

The *base* policy of one slot, over the items not yet placed, is

- ``"greedy"``: the best score (ties share the probability equally);
- ``"softmax"``: ``softmax(score / temperature)``.

With ``epsilon > 0`` each of the first ``top_k`` (shown) slots is drawn from the mixture
``(1 - epsilon) * base + epsilon * uniform`` over the items left, so every eligible item is
served first with probability at least ``epsilon / n_candidates``, and every shown item's
slot propensity is at least ``epsilon / n_left`` (never 0, whatever the temperature). The
items after the shown slots are ordered by the base policy alone (they are not shown; their
order only fills the ``rank`` column). With ``epsilon = 0`` the whole order is the base policy.

Every propensity reported is exact for this process: ``slot`` is the probability of the item
in its slot given the earlier slots; :func:`first_slot_probabilities` is the probability of
each candidate being served first, which off-policy evaluation uses.
"""

from __future__ import annotations

import numpy as np

from skbandit.ranking_settings import Exploration


def first_slot_probabilities(score, settings) -> np.ndarray:
    """Probability that each candidate is drawn into the first slot (sums to 1).

    >>> from skbandit.ranking_settings import RankingSettings
    >>> p = first_slot_probabilities(np.array([1.0, 0.0, 0.0, 0.0]),
    ...                              RankingSettings(exploration="greedy", epsilon=0.2))
    >>> p.round(3).tolist()
    [0.85, 0.05, 0.05, 0.05]
    """
    score = np.asarray(score, dtype=np.float64)
    base = _base(score, settings)
    epsilon = settings.epsilon
    return base if epsilon == 0.0 else (1.0 - epsilon) * base + epsilon / len(score)


def draw_order(score, n_out: int, top_k: int, rng, settings) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_out`` positions of a drawn order and each one's slot propensity.

    Parameters
    ----------
    score : ndarray of shape (n,)
    n_out : int
        How many slots to return (``<= n``).
    top_k : int
        How many slots are shown: the epsilon mixture applies to these.
    rng : numpy.random.Generator
    settings : RankingSettings
        ``exploration``, ``temperature`` and ``epsilon``.

    Returns
    -------
    order : ndarray of int, shape (n_out,)
    slot_propensity : ndarray of shape (n_out,)
    """
    score = np.asarray(score, dtype=np.float64)
    epsilon = settings.epsilon
    if epsilon == 0.0:
        return _base_order(score, n_out, rng, settings)
    n_mixed = min(top_k, n_out)
    left = np.ones(len(score), dtype=bool)
    order = np.empty(n_out, dtype=np.int64)
    prob = np.empty(n_out)
    for slot in range(n_mixed):
        positions = np.flatnonzero(left)
        p = (1.0 - epsilon) * _base(score[positions], settings) + epsilon / len(positions)
        pick = rng.choice(len(positions), p=p / p.sum())
        order[slot], prob[slot] = positions[pick], p[pick]
        left[positions[pick]] = False
    if n_out > n_mixed:
        rest = np.flatnonzero(left)
        tail, tail_prob = _base_order(score[rest], n_out - n_mixed, rng, settings)
        order[n_mixed:], prob[n_mixed:] = rest[tail], tail_prob
    return order, np.minimum(prob, 1.0)


def _base(score, settings) -> np.ndarray:
    """The base policy's first-slot probabilities over ``score``."""
    if settings.exploration is Exploration.softmax:
        z = (score - np.max(score)) / settings.temperature
        weights = np.exp(z)
    else:
        weights = (score == score.max()).astype(np.float64)
    return weights / weights.sum()


def _base_order(score, k, rng, settings):
    if settings.exploration is Exploration.greedy:
        return _greedy(score, k, rng)
    return _softmax_draw(score, k, rng, settings.temperature)


def _greedy(score, k, rng):
    """Top-k by score, ties broken at random; propensity ``1 / (number still tied)``."""
    order = np.lexsort((rng.random(len(score)), -score))
    ranked = score[order]
    last_of_tie = np.r_[ranked[1:] != ranked[:-1], True]
    tie_end = np.minimum.accumulate(np.where(last_of_tie, np.arange(len(score)), len(score))[::-1])[
        ::-1
    ]
    still_tied = tie_end - np.arange(len(score)) + 1
    return order[:k], 1.0 / still_tied[:k]


def _softmax_draw(score, k, rng, temperature):
    """k draws without replacement, each from the softmax over the items left.

    Uses the Gumbel-top-k trick: sorting ``score / temperature + Gumbel noise`` gives
    exactly the order of sequential softmax draws without replacement (Plackett-Luce), and
    each slot's propensity is the item's weight over the weights not yet drawn.
    """
    z = (score - np.max(score)) / temperature
    weights = np.exp(z)
    weights /= weights.sum()
    with np.errstate(divide="ignore"):
        keys = np.log(weights) + rng.gumbel(size=len(score))
    order = np.argsort(-keys, kind="stable")
    remaining = np.cumsum(weights[order][::-1])[::-1]  # weight not yet drawn, per slot
    prob = weights[order] / np.maximum(remaining, np.finfo(np.float64).tiny)
    return order[:k], np.minimum(prob[:k], 1.0)
