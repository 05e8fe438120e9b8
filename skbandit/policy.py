"""Ranking policies: LinUCB (greedy or softmax exploration) and the seed's rule-based order.

All policies take a candidate frame (one row per eligible item, the columns
``schema.CANDIDATE_COLUMNS``, see :func:`skbandit.context.candidate_frame`) and return a
frame with ``schema.RECOMMENDATION_COLUMNS``, one row per shown item, best first.

LinUCB scores every candidate at once: ``expected_reward`` is the model's mean clipped to
[0, 1], ``uncertainty = alpha * sqrt(x' A^-1 x)`` and ``ucb = expected_reward + uncertainty``
(Li et al. 2010). The *objective* is what the ranking maximises:

- ``"max_success"``: ``score = ucb``; without the bonus, ``expected_reward``.
- ``"target_band"``: ``score = -|expected_reward - target| + uncertainty``; without the bonus,
  ``-|expected_reward - target|``. Maximising success favours easy items that teach little;
  this keeps students in a productive success band.

``is_exploration`` is True when the item would not be in the top-k by the objective without
the bonus: at least ``k`` candidates beat it strictly on the bonus-free score, so only the
uncertainty bonus (or, for softmax, the random draw) put it there.

``propensity`` is the probability that the item was chosen *in its slot given the items in
earlier slots*: for greedy ranking it is 1 unless the item tied on score with others still
unchosen (ties are broken uniformly at random, so it is ``1 / number tied``); for softmax it
is the item's softmax probability among the items not yet chosen. For slot 1 this is the
plain probability that off-policy evaluation of a single shown item needs; the full
first-slot distribution is :func:`action_probabilities`.

Every LinUCB ranking here, and the off-policy target policies of
:mod:`skbandit.ope.targets`, score candidates through one function,
:func:`score_candidates` (features by :func:`skbandit.features.transform_features`). The
``reason`` texts and :func:`~skbandit.explanations.explain` live in
:mod:`skbandit.explanations`.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit import irt, schema
from skbandit.exceptions import SkbanditError
from skbandit.explanations import linucb_reasons, rule_reasons
from skbandit.features import candidate_features

OBJECTIVES = ("max_success", "target_band")
"""Objectives accepted by :func:`rank_linucb`."""
SERVING_OBJECTIVE = "target_band"
"""The objective the product serves by default (``rank_linucb`` itself keeps ``"max_success"``).

The simulation study (README, "What the simulation study shows") found that maximising
success teaches less than the rule-based baseline (LinUCB max-success: -1.30 [-1.42, -1.18]
logits of learning gain per student against the rule), while the target band at 0.7 beats
the rule on learning gain (+0.39 [+0.33, +0.45]). Serving (``serve/``) and the
champion/challenger gate (``python -m train.evaluate compare``) default to it.
"""
EXPLORATIONS = ("greedy", "softmax")
"""Exploration modes accepted by :func:`rank_linucb`."""
DEFAULT_SEED = 0
"""Seed of the generator used when none is passed (rankings are then reproducible)."""


@dataclass(frozen=True)
class CandidateScores:
    """What a LinUCB pipeline makes of each candidate (arrays in the candidates' row order).

    Attributes
    ----------
    expected : ndarray of shape (n_candidates,)
        The model's mean clipped to [0, 1] (``expected_reward``).
    uncertainty : ndarray of shape (n_candidates,)
        The exploration bonus ``alpha * sqrt(x' A^-1 x)``.
    base : ndarray of shape (n_candidates,)
        The bonus-free objective: ``expected`` for ``"max_success"``,
        ``-|expected - target|`` for ``"target_band"``.
    score : ndarray of shape (n_candidates,)
        ``base + uncertainty``: what the rankings maximise.
    """

    expected: np.ndarray
    uncertainty: np.ndarray
    base: np.ndarray
    score: np.ndarray


def score_candidates(pipeline, candidates, alpha=None, objective="max_success", target=0.7
                     ) -> CandidateScores:
    """Score every candidate row with a fitted pipeline: the one scoring path of the policies.

    Parameters
    ----------
    pipeline : Pipeline
        From :func:`skbandit.features.make_pipeline`, fitted.
    candidates : DataFrame of shape (n_candidates, ...)
        ``item_id`` and ``schema.MODEL_INPUT`` (other columns are ignored).
    alpha : float, optional
        Exploration width; default the model's ``alpha``.
    objective : {"max_success", "target_band"}, default="max_success"
    target : float, default=0.7
        Target success probability of ``"target_band"``.

    Returns
    -------
    CandidateScores

    Notes
    -----
    ``expected = clip(theta' x, 0, 1)`` and ``uncertainty = alpha * sqrt(x' A^-1 x)``
    (Li et al. 2010); the objectives are described in the module docstring.

    Examples
    --------
    With ``"target_band"`` the score is minus the distance to the target, plus the bonus:

    >>> import pandas as pd
    >>> from skbandit.features import make_pipeline, partial_fit_pipeline
    >>> row = pd.DataFrame({"item_id": ["a"], "mastery": [0.6], "recent_accuracy": [0.5],
    ...                     "recent_speed": [0.5], "help_tendency": [0.1],
    ...                     "skill_gap": [0.2], "difficulty": [0.0], "discrimination": [1.0],
    ...                     "item_attempts": [0.0], "item_accuracy": [0.5]})
    >>> pipe = partial_fit_pipeline(make_pipeline(), row, [1.0])
    >>> scores = score_candidates(pipe, row, objective="target_band", target=0.7)
    >>> bool(scores.score[0] == -abs(scores.expected[0] - 0.7) + scores.uncertainty[0])
    True
    """
    _check_choice("objective", objective, OBJECTIVES)
    X, model = candidate_features(pipeline, candidates)
    alpha = model.alpha if alpha is None else float(alpha)
    mean, std = model.predict(X, return_std=True)
    expected = np.clip(mean, 0.0, 1.0)
    uncertainty = alpha * std
    base = expected if objective == "max_success" else -np.abs(expected - target)
    return CandidateScores(expected, uncertainty, base, base + uncertainty)


def rank_linucb(pipeline, candidates, top_k=5, rng=None, alpha=None, objective="max_success",
                target=0.7, exploration="greedy", temperature=0.05):
    """Rank candidates with a fitted features + LinUCB pipeline.

    Parameters
    ----------
    pipeline : Pipeline
        From :func:`skbandit.features.make_pipeline`, fitted.
    candidates : DataFrame of shape (n_candidates, ...)
        ``schema.CANDIDATE_COLUMNS`` (at least ``item_id`` and ``schema.MODEL_INPUT``).
    top_k : int, default=5
        Number of items to show (fewer if there are fewer candidates).
    rng : numpy.random.Generator, optional
        Breaks ties (greedy) or draws items (softmax); default
        ``np.random.default_rng(DEFAULT_SEED)``.
    alpha : float, optional
        Exploration width; default the model's ``alpha``.
    objective : {"max_success", "target_band"}, default="max_success"
    target : float, default=0.7
        Target success probability of ``"target_band"``.
    exploration : {"greedy", "softmax"}, default="greedy"
        Deterministic top-k by score, or top-k drawn without replacement from
        ``softmax(score / temperature)``.
    temperature : float, default=0.05

    Returns
    -------
    DataFrame of shape (min(top_k, n_candidates), 8)
        ``schema.RECOMMENDATION_COLUMNS``.
    """
    _check_choice("objective", objective, OBJECTIVES)
    _check_choice("exploration", exploration, EXPLORATIONS)
    rng = np.random.default_rng(DEFAULT_SEED) if rng is None else rng
    scored = score_candidates(pipeline, candidates, alpha, objective, target)
    k = _check_top_k(top_k, len(candidates))
    if exploration == "greedy":
        chosen, propensity = _greedy(scored.score, k, rng)
    else:
        chosen, propensity = _softmax_draw(scored.score, k, rng, temperature)
    explore = _exploration_flags(scored.base, k)[chosen]
    expected = scored.expected[chosen]
    uncertainty = scored.uncertainty[chosen]
    reasons = linucb_reasons(expected, uncertainty, explore)
    return _output(candidates, chosen, expected, uncertainty, expected + uncertainty, explore,
                   propensity, reasons)


def action_probabilities(pipeline, candidates, alpha=None, objective="max_success", target=0.7,
                         exploration="greedy", temperature=0.05):
    """Probability that :func:`rank_linucb` puts each candidate in the first slot.

    Same parameters as :func:`rank_linucb`. For greedy ranking the probability is shared
    equally by the candidates tied at the top score (usually one, with probability 1).

    Returns
    -------
    ndarray of shape (n_candidates,)
        In the candidates' row order; sums to 1.
    """
    _check_choice("objective", objective, OBJECTIVES)
    _check_choice("exploration", exploration, EXPLORATIONS)
    score = score_candidates(pipeline, candidates, alpha, objective, target).score
    if exploration == "softmax":
        return _softmax(score, temperature)
    top = (score == score.max()).astype(np.float64)
    return top / top.sum()


def rank_rule_based(candidates, top_k=5):
    """The seed's rule: eligible items ordered by difficulty relative to the student's level.

    Items are ordered by :func:`skbandit.irt.rule_distance` (``|difficulty - ability|`` on the
    logit scale), ties in candidate order; drift-flagged rows are dropped if the frame has a
    ``drift_flag`` column. ``expected_reward`` is the 2PL probability from mastery,
    difficulty and discrimination; ``uncertainty`` and ``ucb`` are NaN, ``is_exploration``
    False and ``propensity`` 1.

    Parameters
    ----------
    candidates : DataFrame of shape (n_candidates, ...)
        ``item_id``, ``mastery``, ``difficulty`` and optionally ``discrimination``.
    top_k : int, default=5

    Returns
    -------
    DataFrame of shape (min(top_k, n_eligible), 8)
        ``schema.RECOMMENDATION_COLUMNS``.
    """
    if schema.DRIFT_FLAG in candidates.columns:
        candidates = candidates.loc[~candidates[schema.DRIFT_FLAG].fillna(False).astype(bool)]
    k = _check_top_k(top_k, len(candidates))
    mastery = candidates[schema.MASTERY].to_numpy(np.float64)
    difficulty = candidates[schema.DIFFICULTY].to_numpy(np.float64)
    discrimination = (candidates[schema.DISCRIMINATION].to_numpy(np.float64)
                      if schema.DISCRIMINATION in candidates.columns else 1.0)
    chosen = np.argsort(irt.rule_distance(mastery, difficulty), kind="stable")[:k]
    ability = irt.mastery_to_logit(mastery)
    expected = np.broadcast_to(irt.p_correct_2pl(ability, difficulty, discrimination),
                               mastery.shape)[chosen]
    reasons = rule_reasons((difficulty - ability)[chosen])
    nan = np.full(k, np.nan)
    return _output(candidates, chosen, expected, nan, nan, np.zeros(k, dtype=bool),
                   np.ones(k), reasons)


def rank_requests(pipeline, frame, top_k=5, rng=None, alpha=None, objective="max_success",
                  target=0.7, exploration="greedy", temperature=0.05):
    """Rank every student's candidate rows of a batch request (used by the model server).

    The rows are scored in one pass; each student's rows (grouped by ``user_id``) are then
    ordered completely by the same rule as :func:`rank_linucb` (students in order of first
    appearance, drawing from one ``rng``).

    Parameters
    ----------
    pipeline, top_k, rng, alpha, objective, target, exploration, temperature
        As in :func:`rank_linucb`.
    frame : DataFrame of shape (n_rows, ...)
        One row per (student, candidate item): ``user_id``, ``item_id`` and
        ``schema.MODEL_INPUT``.

    Returns
    -------
    DataFrame of shape (n_rows, 9)
        In request order with ``frame``'s index: ``user_id``, ``item_id``,
        ``expected_reward``, ``uncertainty``, ``ucb``, ``rank`` (1.. within the student),
        ``recommended`` (``rank <= top_k``), ``is_exploration`` and ``propensity`` (of the
        row's slot given the earlier slots, as in :func:`rank_linucb`).
    """
    _check_choice("objective", objective, OBJECTIVES)
    _check_choice("exploration", exploration, EXPLORATIONS)
    if schema.USER_ID not in frame.columns:
        raise SkbanditError(f"request is missing column {schema.USER_ID!r} (expected one row "
                            f"per student and candidate item)")
    rng = np.random.default_rng(DEFAULT_SEED) if rng is None else rng
    _check_top_k(top_k, len(frame))
    scored = score_candidates(pipeline, frame, alpha, objective, target)
    rank = np.zeros(len(frame), dtype=np.int64)
    propensity = np.ones(len(frame))
    explore = np.zeros(len(frame), dtype=bool)
    user_ids = frame[schema.USER_ID].to_numpy()
    for rows in _student_rows(user_ids):
        score = scored.score[rows]
        if exploration == "greedy":
            chosen, prob = _greedy(score, len(rows), rng)
        else:
            chosen, prob = _softmax_draw(score, len(rows), rng, temperature)
        rank[rows[chosen]] = np.arange(1, len(rows) + 1)
        propensity[rows[chosen]] = prob
        explore[rows] = _exploration_flags(scored.base[rows], top_k)
    return pd.DataFrame({
        schema.USER_ID: user_ids,
        schema.ITEM_ID: frame[schema.ITEM_ID].to_numpy(),
        schema.EXPECTED_REWARD: scored.expected, schema.UNCERTAINTY: scored.uncertainty,
        schema.UCB: scored.expected + scored.uncertainty, schema.RANK: rank,
        "recommended": rank <= top_k, schema.IS_EXPLORATION: explore & (rank <= top_k),
        schema.PROPENSITY: propensity,
    }, index=frame.index)


# --- scoring and selection ---------------------------------------------------------------


def _student_rows(user_ids):
    """Row positions of each student, students in order of first appearance.

    A request for one student (the usual case) is one group without hashing the ids.
    """
    if np.all(user_ids == user_ids[0]):
        return [np.arange(len(user_ids))]
    groups = pd.factorize(user_ids)[0]
    order = np.argsort(groups, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(groups[order])) + 1)


def _greedy(score, k, rng):
    """Top-k by score, ties broken at random; propensity ``1 / (number still tied)``."""
    order = np.lexsort((rng.random(len(score)), -score))
    ranked = score[order]
    last_of_tie = np.r_[ranked[1:] != ranked[:-1], True]
    tie_end = np.minimum.accumulate(np.where(last_of_tie, np.arange(len(score)),
                                             len(score))[::-1])[::-1]
    still_tied = tie_end - np.arange(len(score)) + 1
    return order[:k], 1.0 / still_tied[:k]


def _softmax_draw(score, k, rng, temperature):
    """k draws without replacement, each from the softmax over the items left.

    Uses the Gumbel-top-k trick: sorting ``score / temperature + Gumbel noise`` gives
    exactly the order of sequential softmax draws without replacement (Plackett-Luce), and
    each slot's propensity is the item's weight over the weights not yet drawn.
    """
    weights = _softmax(score, temperature)
    with np.errstate(divide="ignore"):
        keys = np.log(weights) + rng.gumbel(size=len(score))
    order = np.argsort(-keys, kind="stable")
    remaining = np.cumsum(weights[order][::-1])[::-1]  # weight not yet drawn, per slot
    prob = weights[order] / np.maximum(remaining, np.finfo(np.float64).tiny)
    return order[:k], np.minimum(prob[:k], 1.0)


def _softmax(score, temperature):
    if not temperature > 0:
        raise SkbanditError(f"temperature must be > 0 for softmax exploration, got "
                            f"{temperature!r}")
    z = (score - np.max(score)) / temperature
    weights = np.exp(z)
    return weights / weights.sum()


def _exploration_flags(base, k):
    """True where at least k candidates have a strictly better bonus-free score."""
    ranked = np.sort(base)[::-1]
    better = np.searchsorted(-ranked, -base, side="left")
    return better >= k


# --- output ------------------------------------------------------------------------------


def _output(candidates, chosen, expected, uncertainty, ucb, explore, propensity, reasons):
    return pd.DataFrame({
        schema.RANK: np.arange(1, len(chosen) + 1),
        schema.ITEM_ID: candidates[schema.ITEM_ID].to_numpy()[chosen],
        schema.EXPECTED_REWARD: np.asarray(expected, dtype=np.float64),
        schema.UNCERTAINTY: np.asarray(uncertainty, dtype=np.float64),
        schema.UCB: np.asarray(ucb, dtype=np.float64),
        schema.IS_EXPLORATION: np.asarray(explore, dtype=bool),
        schema.PROPENSITY: np.asarray(propensity, dtype=np.float64),
        schema.REASON: reasons,
    })  # keys in schema.RECOMMENDATION_COLUMNS order


def _check_top_k(top_k, n_candidates):
    if n_candidates == 0:
        raise SkbanditError("no candidate items to rank (expected at least one row); the "
                            "caller should say why, e.g. all items drift-flagged or recent")
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise SkbanditError(f"top_k must be a positive integer, got {top_k!r}")
    return min(int(top_k), n_candidates)


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise SkbanditError(f"unknown {name} {value!r} (expected one of {allowed})")
