"""Why an item is recommended: short truthful reasons, and per-feature score contributions.

Two levels of reason:

- :func:`linucb_reasons` and :func:`rule_reasons` are what :mod:`skbandit.policy` puts in
  the ``reason`` column from the numbers it has (expected success and its interval, whether
  the exploration bonus put the item in the list). They never claim a confidence the numbers
  do not show.
- :func:`ranking_reasons` is what the CLI shows: one line per item saying what sets it apart
  from the other candidates: its expected success against the objective, its difficulty
  against the student's level, how often the item has been tried, and the one or two
  features whose contribution ``theta_j * x_j`` (:func:`explain`) differs most from the
  candidates' average. "Explore" means what the README says: without the exploration bonus
  the item would not be in the top k, and the line says where it would rank. A student with
  no attempts gets the cold-start default context, so their ranking is generic: the line
  says so instead of claiming any confidence.

:data:`FEATURE_GLOSSARY` explains every feature name in one line (docs/features.md lists it).
"""

import numpy as np
import pandas as pd

from skbandit import irt, schema

MATCH_LOGITS = 0.5
"""An item within this many logits of the student's ability is "at their level"."""
STRETCH_LOGITS = 1.5
"""An item up to this many logits harder than the student is "a bit harder"."""
EASY_SUCCESS = 0.85
"""Expected success from which a LinUCB item "builds confidence"."""
MATCH_SUCCESS = 0.6
"""Expected success from which (up to :data:`EASY_SUCCESS`) it is a "good difficulty match"."""
STRETCH_SUCCESS = 0.4
"""Expected success from which (up to :data:`MATCH_SUCCESS`) it is "slightly challenging"."""
ON_TARGET = 0.015
"""Expected success within this of the target is "on target"."""
DISAGREE = 0.1
"""When the expected success and the chance from their level alone (IRT) differ by this
much, the line shows both, so the level words and the number never seem to contradict."""
MIN_CONTRIBUTION = 0.01
"""A feature is named as a driver only if it moves the score by at least this (1 point)."""
FEW_ATTEMPTS = 20
"""An item tried fewer times than this has "little data" (``item_evidence`` half weight)."""

FEATURE_GLOSSARY = {
    "intercept": ("baseline", "constant 1: the model's baseline success for every item"),
    "p_irt": (
        "chance at their level",
        "3PL probability of success, guessing + (1 - guessing) * "
        "sigmoid(discrimination * gap) (guessing 0 when the item has none: the 2PL)",
    ),
    "info": (
        "closeness to their level",
        "(1 - guessing) * s * (1 - s) with s = sigmoid(discrimination "
        "* gap), the slope of p_irt per logit (p_irt * (1 - p_irt) without guessing): "
        "largest for items at the student's level",
    ),
    "ability": (
        "their level",
        "the student's difficulty-adjusted ability on the topic (logits), logit(mastery)",
    ),
    "gap": ("how far below their level", "ability minus the item's IRT difficulty (logits)"),
    "item_evidence": (
        "how others did on it",
        "how much better the item is answered than its difficulty says (its "
        "accuracy above guessing, in logits), shrunk toward 0 for items with "
        "few attempts",
    ),
    "item_evidence_x_info": ("how others did on it, near their level", "item_evidence * info"),
    "mastery": (
        "mastery",
        "sigmoid(ability): the student's chance on an item of difficulty 0 (skbandit.ability)",
    ),
    "recent_accuracy": (
        "recent accuracy",
        "share of the student's recent answers correct (default set: minus its cold-start value)",
    ),
    "recent_speed": (
        "recent speed",
        "recent answer time, 0 fast to 1 slow (default set: minus its cold-start value)",
    ),
    "help_tendency": (
        "help use",
        "share of recent attempts with help requested (default set: minus its cold-start value)",
    ),
    "skill_gap": (
        "skill gap",
        "how far mastery is below the mastery target (default set: minus its cold-start value)",
    ),
    "difficulty": ("difficulty", "the item's IRT difficulty b (logits)"),
    "mastery_x_difficulty": ("mastery x difficulty", "seed set: mastery * difficulty"),
    "abs_mastery_minus_difficulty": (
        "|mastery - difficulty|",
        "seed set: |mastery - difficulty| (unlike scales)",
    ),
}
"""Feature name -> (short label, one-line meaning); ``*_x_info`` / ``*_x_gap`` are derived."""


def feature_label(name):
    """Short readable label of a feature name (also for the derived ``*_x_info`` names).

    >>> feature_label("p_irt"), feature_label("help_tendency_x_gap")
    ('chance at their level', 'help use, by difficulty')
    """
    if name in FEATURE_GLOSSARY:
        return FEATURE_GLOSSARY[name][0]
    for suffix, words in (("_x_info", "near their level"), ("_x_gap", "by difficulty")):
        if name.endswith(suffix) and name.removesuffix(suffix) in FEATURE_GLOSSARY:
            return f"{FEATURE_GLOSSARY[name.removesuffix(suffix)][0]}, {words}"
    return name


def feature_meaning(name):
    """One line saying what a feature is (derived names are the product they name).

    >>> print(feature_meaning("recent_speed_x_info"))
    recent_speed * info: recent speed counts more for items at the student's level
    """
    if name in FEATURE_GLOSSARY:
        return FEATURE_GLOSSARY[name][1]
    base, _, other = name.rpartition("_x_")
    if base in FEATURE_GLOSSARY and other == "info":
        return (
            f"{base} * info: {FEATURE_GLOSSARY[base][0]} counts more for items at the "
            "student's level"
        )
    if base in FEATURE_GLOSSARY and other == "gap":
        return f"{base} * gap: lets {FEATURE_GLOSSARY[base][0]} favour easier or harder items"
    raise KeyError(f"no glossary entry for feature {name!r}")


def linucb_reasons(expected, low, high, bonus, is_exploration):
    """One reason per shown LinUCB item (arrays of equal length, in slot order).

    Only what the numbers say: the expected success with its 80 % interval
    (:mod:`skbandit.uncertainty`) and what that success means for the student; an exploring
    item says that the exploration bonus put it there.

    Parameters
    ----------
    expected, low, high, bonus : array-like of shape (k,)
        ``expected_reward``, ``success_low``, ``success_high`` and ``ucb_bonus`` of the
        shown items.
    is_exploration : array-like of bool, shape (k,)

    Returns
    -------
    list of str

    Examples
    --------
    >>> linucb_reasons([0.7, 0.3], [0.58, 0.2], [0.8, 0.45], [0.05, 0.2], [False, True])
    ['70% (58–80%) expected success; good difficulty match', \
'Exploring: in the list only because of its +20% UCB bonus; a stretch item']
    """
    return [
        (
            f"Exploring: in the list only because of its +{u:.0%} UCB bonus"
            if x
            else f"{e:.0%} ({success_range(lo, hi)}) expected success"
        )
        + f"; {success_phrase(e)}"
        for e, lo, hi, u, x in zip(expected, low, high, bonus, is_exploration, strict=True)
    ]


def success_range(low, high):
    """The interval of the success probability as a teacher reads it: ``58–80%``.

    >>> success_range(0.581, 0.796)
    '58–80%'
    """
    return f"{low * 100:.0f}–{high:.0%}"


def success_phrase(expected):
    """How hard an item is for the student, judged by its expected success.

    >>> [success_phrase(p) for p in (0.9, 0.7)]
    ['builds confidence', 'good difficulty match']
    >>> [success_phrase(p) for p in (0.5, 0.2)]
    ['slightly challenging for growth', 'a stretch item']
    """
    if expected >= EASY_SUCCESS:
        return "builds confidence"
    if expected >= MATCH_SUCCESS:
        return "good difficulty match"
    return "slightly challenging for growth" if expected >= STRETCH_SUCCESS else "a stretch item"


def rule_reasons(offset):
    """One reason per item shown by the rule-based order (``offset`` in slot order).

    >>> rule_reasons([0.2, -0.9])
    ['Rule: closest difficulty to their level (0.2 logits harder); good difficulty match', \
'Rule: closest difficulty to their level (0.9 logits easier); builds confidence']
    """
    return [
        f"Rule: closest difficulty to their level ({abs(d):.1f} logits "
        f"{'harder' if d > 0 else 'easier'}); {difficulty_phrase(d)}"
        for d in offset
    ]


def difficulty_phrase(offset):
    """How an item's difficulty sits against the student's ability (``offset`` in logits).

    >>> difficulty_phrase(1.0)
    'slightly challenging for growth'
    """
    if abs(offset) <= MATCH_LOGITS:
        return "good difficulty match"
    if offset < 0:
        return "builds confidence"
    return "slightly challenging for growth" if offset <= STRETCH_LOGITS else "a stretch item"


def level_phrase(offset):
    """Difficulty against the student's level in plain words (``offset`` in logits).

    >>> [level_phrase(d) for d in (0.1, 0.9, 2.0, -0.8, -2.0)]
    ['at their level', 'a bit harder than their level', 'much harder than their level', \
'a bit easier than their level', 'much easier than their level']
    """
    if abs(offset) <= MATCH_LOGITS:
        return "at their level"
    size = "a bit" if abs(offset) <= STRETCH_LOGITS else "much"
    return f"{size} {'harder' if offset > 0 else 'easier'} than their level"


def ranking_reasons(pipeline, candidates, recs, base, *, target=None, cold_start=False):
    """What sets each shown LinUCB item apart, one line per row of ``recs``.

    Parameters
    ----------
    pipeline : TrainedModel
        The trained model that ranked ``candidates``.
    candidates : DataFrame of shape (n_candidates, ...)
        Every candidate that was ranked (``schema.CANDIDATE_COLUMNS``).
    recs : DataFrame of shape (k, ...)
        The shown items (``schema.RECOMMENDATION_COLUMNS``), best first.
    base : array-like of shape (n_candidates,)
        The bonus-free objective score of every candidate (``CandidateScores.base``).
    target : float or None, default=None
        The target success of ``"target_band"``; None for ``"max_success"``.
    cold_start : bool, default=False
        The student has no attempts: their context is the cold-start default.

    Returns
    -------
    list of str
    """
    base = np.asarray(base, dtype=np.float64)
    position = pd.Index(candidates[schema.ITEM_ID]).get_indexer(recs[schema.ITEM_ID])
    shown = candidates.iloc[position]
    contributions = explain(pipeline, candidates)
    features = contributions.columns[1:-3]
    values = contributions[features].to_numpy()
    lift = (values - values.mean(axis=0))[position]
    base_rank = 1 + (base[None, :] > base[position][:, None]).sum(axis=1)
    ability = irt.mastery_to_logit(shown[schema.MASTERY].to_numpy(np.float64))
    offset = shown[schema.DIFFICULTY].to_numpy(np.float64) - ability
    at_level = irt.p_correct_3pl(
        ability,
        shown[schema.DIFFICULTY].to_numpy(np.float64),
        shown[schema.DISCRIMINATION].to_numpy(np.float64),
        shown[schema.GUESSING].to_numpy(np.float64),
    )
    attempts = shown[schema.ITEM_ATTEMPTS].to_numpy(np.float64)
    lines = []
    for i, row in enumerate(recs.to_dict("records")):
        lead = _lead(row, int(base_rank[i]), target)
        level = level_phrase(offset[i])
        if abs(row[schema.EXPECTED_REWARD] - at_level[i]) >= DISAGREE:
            level += f" ({at_level[i]:.0%} from their level alone)"
        parts = [lead, level, _tried(attempts[i]), _drivers(features, lift[i])]
        lines.append("; ".join(p for p in parts if p))
    if cold_start:
        lines = [f"Generic (cold start): {line}" for line in lines]
    return lines


def _lead(row, base_rank, target):
    expected, bonus = row[schema.EXPECTED_REWARD], row[schema.UCB_BONUS]
    if row[schema.IS_EXPLORATION]:
        return (
            f"Explore: {expected:.0%} expected, would rank {base_rank} without its "
            f"+{bonus:.0%} UCB bonus"
        )
    if target is None:
        return f"{expected:.0%} expected success, #{base_rank} of the candidates"
    gap = expected - target
    if abs(gap) < ON_TARGET:
        return f"{expected:.0%} expected, on the {target:.0%} target"
    side = "above" if gap > 0 else "below"
    return f"{expected:.0%} expected, {abs(gap) * 100:.0f} pts {side} the {target:.0%} target"


def _tried(attempts):
    if attempts < 1:
        return "new item, never tried"
    if attempts < 2:
        return "tried only once"
    if attempts < FEW_ATTEMPTS:
        return f"tried only {attempts:.0f} times"
    return f"tried {attempts:,.0f} times"


def _drivers(features, lift, n=2):
    order = np.argsort(-np.abs(lift))[:n]
    named = [
        f"{feature_label(features[j])} {lift[j] * 100:+.0f} pts"
        for j in order
        if abs(lift[j]) >= MIN_CONTRIBUTION
    ]
    return f"vs others: {', '.join(named)}" if named else ""


def explain(pipeline, candidates, alpha=None):
    """Per-feature contributions ``theta_j * x_j`` of every candidate's score.

    Parameters
    ----------
    pipeline : TrainedModel
        The trained model (:class:`skbandit.model.TrainedModel`).
    candidates : DataFrame of shape (n_candidates, ...)
    alpha : float, optional
        Exploration width of the bonus; default the model's.

    Returns
    -------
    DataFrame of shape (n_candidates, n_features + 4)
        ``item_id``, one column per feature (names from ``get_feature_names_out``), then
        ``prediction`` (their sum, the unclipped mean), ``bonus`` (``alpha * std``) and
        ``ucb`` (``clip(prediction, 0, 1) + bonus``), indexed like ``candidates``.
    """
    X, model = pipeline.candidate_features(candidates)
    alpha = model.alpha if alpha is None else alpha
    mean, std = model.predict(X, return_std=True)
    names = pipeline.feature_names()
    out = pd.DataFrame(
        np.asarray(X, dtype=np.float64) * model.coef_, columns=names, index=candidates.index
    )
    out.insert(0, schema.ITEM_ID, candidates[schema.ITEM_ID].to_numpy())
    out["prediction"] = mean
    out["bonus"] = alpha * std
    out[schema.UCB] = np.clip(mean, 0.0, 1.0) + alpha * std
    return out
