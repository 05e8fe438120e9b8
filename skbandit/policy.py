"""Ranking policies: LinUCB (greedy or softmax exploration) and the seed's rule-based order.

All policies take a candidate frame (one row per eligible item, the columns
``schema.CANDIDATE_COLUMNS``, see :func:`skbandit.context.candidate_frame`) and return a
frame with ``schema.RECOMMENDATION_COLUMNS``, one row per shown item, best first.

LinUCB scores every candidate at once: ``expected_reward`` is the calibrated success
probability, ``ucb_bonus = alpha * sqrt(x' A^-1 x)`` the exploration bonus (the model's own
scale, not an uncertainty) and ``ucb = expected_reward + ucb_bonus`` (Li et al. 2010);
``success_low``/``success_high`` are the 80 % interval of the true success
(:mod:`skbandit.uncertainty`) and ``uncertainty`` half its width. The *objective*:

- ``"max_success"``: ``score = ucb``; without the bonus, ``expected_reward``.
- ``"target_band"``: ``score = -|expected_reward - target| + ucb_bonus``; without the bonus,
  ``-|expected_reward - target|``. Maximising success favours easy items that teach little;
  this keeps students in a productive success band.
- ``"learning_progress"``: the target band at the target the model version *learned* from
  its training events (which target success was followed by the largest ability gains,
  :mod:`skbandit.learning_progress`) instead of an assumed one; :func:`resolve_objective`
  reads it from the pipeline. A version stored without it refuses this objective with a
  one-line error saying to retrain.

``is_exploration`` is True when the item would not be in the top-k by the objective without
the bonus: at least ``k`` candidates beat it strictly on the bonus-free score, so only the
exploration bonus (or, for softmax, the random draw) put it there.

``propensity`` is the probability that the item was chosen *in its slot given the items in
earlier slots*: for greedy ranking it is 1 unless the item tied on score with others still
unchosen (ties are broken uniformly at random, so it is ``1 / number tied``); for softmax it
is the item's softmax probability among the items not yet chosen; with ``epsilon > 0`` the
shown slots mix in ``epsilon`` uniform (:mod:`skbandit.exploration`, the REST default). For
slot 1 this is the plain probability that off-policy evaluation of a single shown item
needs; the full first-slot distribution is :func:`action_probabilities`.

How to rank (``alpha``, ``objective``, ``target``, ``exploration``, ``temperature``,
``top_k``) is one :class:`~skbandit.ranking_settings.RankingSettings`, checked when it is
built. Every LinUCB score, here, in the off-policy target policies of
:mod:`skbandit.ope.targets` and in the simulation study's online policy, comes from one
function, :func:`linucb_scores` (features by :meth:`skbandit.model.TrainedModel.features`).
The product serves :data:`SERVING_OBJECTIVE` (``"target_band"``); ``RankingSettings()``
keeps ``"max_success"``. The ``reason`` texts and :func:`~skbandit.explanations.explain` live in
:mod:`skbandit.explanations`.
"""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from skbandit import irt, schema
from skbandit.exceptions import SkbanditError
from skbandit.explanations import linucb_reasons, rule_reasons
from skbandit.exploration import draw_order, first_slot_probabilities
from skbandit.learning_progress import learned_target
from skbandit.ranking_settings import (
    EXPLORATIONS,
    OBJECTIVES,
    SERVING_OBJECTIVE,
    Objective,
    RankingSettings,
    as_settings,
)
from skbandit.uncertainty import candidate_interval

__all__ = [
    "EXPLORATIONS",
    "OBJECTIVES",
    "SERVING_OBJECTIVE",
    "CandidateScores",
    "RankingSettings",
    "action_probabilities",
    "linucb_scores",
    "rank_linucb",
    "rank_rule_based",
    "resolve_objective",
    "score_candidates",
]


@dataclass(frozen=True)
class CandidateScores:
    """What a LinUCB pipeline makes of each candidate (arrays in the candidates' row order).

    Attributes
    ----------
    expected : ndarray of shape (n_candidates,)
        The calibrated success probability (``expected_reward``).
    bonus : ndarray of shape (n_candidates,)
        The exploration bonus ``alpha * sqrt(x' A^-1 x)`` (``ucb_bonus``).
    base : ndarray of shape (n_candidates,)
        The bonus-free objective: ``expected`` for ``"max_success"``,
        ``-|expected - target|`` for ``"target_band"`` and ``"learning_progress"``.
    score : ndarray of shape (n_candidates,)
        ``base + bonus``: what the rankings maximise.
    std : ndarray of shape (n_candidates,)
        ``sqrt(x' A^-1 x)``, which the success interval also uses.
    """

    expected: np.ndarray
    bonus: np.ndarray
    base: np.ndarray
    score: np.ndarray
    std: np.ndarray


def linucb_scores(
    model, X, settings: RankingSettings, target=None, calibration=None
) -> CandidateScores:
    """The LinUCB objective score of feature rows: the one formula every ranking uses.

    Serving (:func:`score_candidates`), the simulation study's online policy
    (:class:`skbandit.study.policies.LinUCBPolicy`) and the off-policy targets
    (:func:`skbandit.ope.targets.linucb_policy`) all score through this function.

    Parameters
    ----------
    model : LinUCB
        Fitted, or not yet fitted: then it is its prior, ``mean = 0`` and
        ``std = sqrt(x'x / l2)`` (``A = l2 * I``, ``b = 0``).
    X : ndarray of shape (n_rows, n_features)
        Feature rows (the pipeline's transformed input).
    settings : RankingSettings
        ``alpha`` (None: the model's), ``objective`` and ``target`` (for
        ``"learning_progress"`` already the learned one, see :func:`resolve_objective`).
    target : float or ndarray of shape (n_rows,), optional
        Replaces ``settings.target`` for the objectives that aim at a target; the
        simulation study's learning-progress policy gives each row its decision's target.

    Returns
    -------
    CandidateScores

    Notes
    -----
    ``expected = calibration(theta' x)`` (the version's probability calibration,
    :mod:`skbandit.probability_calibration`; ``clip(theta' x, 0, 1)`` without one) and the
    exploration bonus ``bonus = alpha * sqrt(x' A^-1 x)``
    (Li et al. 2010); ``score = expected + bonus`` for ``"max_success"`` and
    ``-|expected - target| + bonus`` for ``"target_band"`` and
    ``"learning_progress"``.

    Examples
    --------
    The prior of a model with ``l2 = 4`` and ``alpha = 2``: the bonus is ``2 * |x| / 2``.

    >>> from skbandit.linucb import LinUCB
    >>> scores = linucb_scores(LinUCB(alpha=2.0, l2=4.0), np.array([[3.0, 4.0]]),
    ...                        RankingSettings(objective="target_band", target=0.5))
    >>> float(scores.bonus[0]), float(scores.score[0])
    (5.0, 4.5)
    """
    alpha = model.alpha if settings.alpha is None else settings.alpha
    if hasattr(model, "coef_"):
        mean, std = model.predict(X, return_std=True)
    else:
        mean, std = np.zeros(len(X)), np.sqrt((X**2).sum(axis=1) / model.l2)
    expected = np.clip(mean, 0.0, 1.0) if calibration is None else calibration(mean)
    bonus = alpha * std
    if settings.objective is Objective.max_success:
        base = expected
    else:
        base = -np.abs(expected - (settings.target if target is None else target))
    return CandidateScores(expected, bonus, base, base + bonus, std)


def resolve_objective(pipeline, settings: RankingSettings | None) -> RankingSettings:
    """``settings`` with the learned target in ``target`` when the objective is
    ``"learning_progress"``; any other settings unchanged.

    Scoring (:func:`score_candidates`) resolves on its own; callers that also record or
    show the settings resolve first, so that the target they report is the one used.

    Raises
    ------
    SkbanditError
        ``"learning_progress"`` asked of a version stored without a learned target
        (:func:`skbandit.learning_progress.learned_target`).
    """
    settings = as_settings(settings)
    if settings.objective is not Objective.learning_progress:
        return settings
    learned = learned_target(pipeline)
    return settings if learned == settings.target else replace(settings, target=learned)


def score_candidates(
    pipeline, candidates, settings: RankingSettings | None = None, features=None
) -> CandidateScores:
    """Score every candidate row with a fitted pipeline: the one scoring path of the policies.

    Parameters
    ----------
    pipeline : TrainedModel
        A trained :class:`skbandit.model.TrainedModel` (a model version).
    candidates : DataFrame of shape (n_candidates, ...)
        ``item_id`` and ``schema.MODEL_INPUT`` (other columns are ignored).
    settings : RankingSettings, optional
        ``alpha``, ``objective`` and ``target`` are used (``"learning_progress"`` with the
        pipeline's learned target, :func:`resolve_objective`); default
        ``RankingSettings()``.
    features : ndarray, optional
        The checked feature rows of ``candidates``, ``pipeline.candidate_features(
        candidates)[0]``, when the caller already has them (off-policy evaluation shares them
        between versions with the same feature set, :class:`skbandit.ope.targets.SharedFeatures`).

    Returns
    -------
    CandidateScores
        From :func:`linucb_scores` of the pipeline's features.

    Examples
    --------
    With ``"target_band"`` the score is minus the distance to the target, plus the bonus:

    >>> import pandas as pd
    >>> from skbandit.model import TrainedModel
    >>> row = pd.DataFrame({"item_id": ["a"], "mastery": [0.6], "recent_accuracy": [0.5],
    ...                     "recent_speed": [0.5], "help_tendency": [0.1],
    ...                     "skill_gap": [0.2], "difficulty": [0.0], "discrimination": [1.0],
    ...                     "guessing": [0.0], "item_attempts": [0.0], "item_accuracy": [0.5]})
    >>> pipe = TrainedModel().partial_fit(row, [1.0])
    >>> band = RankingSettings(objective="target_band", target=0.7)
    >>> scores = score_candidates(pipe, row, band)
    >>> bool(scores.score[0] == -abs(scores.expected[0] - 0.7) + scores.bonus[0])
    True
    """
    settings = resolve_objective(pipeline, settings)
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite score is refused below
        X, model = (
            (features, pipeline.estimator)
            if features is not None
            else pipeline.candidate_features(candidates)
        )
        scores = linucb_scores(model, X, settings, calibration=pipeline.calibration)
    return _require_finite(scores, candidates)


def rank_linucb(pipeline, candidates, settings: RankingSettings | None = None, rng=None):
    """Rank candidates with a fitted features + LinUCB pipeline.

    Parameters
    ----------
    pipeline : TrainedModel
        A trained :class:`skbandit.model.TrainedModel` (a model version).
    candidates : DataFrame of shape (n_candidates, ...)
        ``schema.CANDIDATE_COLUMNS`` (at least ``item_id`` and ``schema.MODEL_INPUT``).
    settings : RankingSettings, optional
        ``top_k`` items are shown (fewer if there are fewer candidates), ranked by
        ``objective`` (with ``alpha`` and ``target``); ``exploration`` is a deterministic
        top-k by score (``"greedy"``) or top-k drawn without replacement from
        ``softmax(score / temperature)``. Default ``RankingSettings()`` (greedy,
        ``"max_success"``, top 5).
    rng : numpy.random.Generator, optional
        Breaks ties (greedy) and draws items (softmax, epsilon); default a new generator
        seeded from OS entropy (pass a seeded one to reproduce a ranking).

    Returns
    -------
    DataFrame of shape (min(top_k, n_candidates), 8)
        ``schema.RECOMMENDATION_COLUMNS``.
    """
    settings = as_settings(settings)
    rng = np.random.default_rng() if rng is None else rng
    scored = score_candidates(pipeline, candidates, settings)
    k = shown_count(settings.top_k, len(candidates))
    chosen, propensity = draw_order(scored.score, k, k, rng, settings)
    require_positive(propensity, settings)
    explore = exploration_flags(scored.base, k)[chosen]
    expected = scored.expected[chosen]
    bonus = scored.bonus[chosen]
    low, high = candidate_interval(pipeline, candidates, expected, scored.std[chosen], chosen)
    reasons = linucb_reasons(expected, low, high, bonus, explore)
    return _output(
        candidates,
        chosen,
        expected,
        (low, high),
        bonus,
        explore,
        propensity,
        reasons,
    )


def action_probabilities(pipeline, candidates, settings: RankingSettings | None = None):
    """Probability that :func:`rank_linucb` puts each candidate in the first slot.

    Same parameters as :func:`rank_linucb` (``top_k`` plays no part). For greedy ranking
    the probability is shared equally by the candidates tied at the top score (usually
    one, with probability 1); ``epsilon`` mixes in ``epsilon / n_candidates`` each
    (:func:`skbandit.exploration.first_slot_probabilities`).

    Returns
    -------
    ndarray of shape (n_candidates,)
        In the candidates' row order; sums to 1.
    """
    settings = as_settings(settings)
    score = score_candidates(pipeline, candidates, settings).score
    return first_slot_probabilities(score, settings)


def rank_rule_based(candidates, top_k=5):
    """The seed's rule: eligible items ordered by difficulty relative to the student's level.

    Items are ordered by :func:`skbandit.irt.rule_distance` (``|difficulty - ability|`` on the
    logit scale), ties in candidate order; drift-flagged rows are dropped if the frame has a
    ``drift_flag`` column. ``expected_reward`` is the 3PL probability from mastery,
    difficulty, discrimination and ``guessing`` (where the candidates carry it; else the
    2PL); the interval, bonus and ``ucb`` are NaN, ``is_exploration`` False, ``propensity`` 1.

    Parameters
    ----------
    candidates : DataFrame of shape (n_candidates, ...)
        ``item_id``, ``mastery``, ``difficulty`` and optionally ``discrimination`` and
        ``guessing``.
    top_k : int, default=5

    Returns
    -------
    DataFrame of shape (min(top_k, n_eligible), 8)
        ``schema.RECOMMENDATION_COLUMNS``.
    """
    if schema.DRIFT_FLAG in candidates.columns:
        candidates = candidates.loc[~candidates[schema.DRIFT_FLAG].fillna(False).astype(bool)]
    k = shown_count(RankingSettings(top_k=top_k).top_k, len(candidates))  # checks top_k
    mastery = candidates[schema.MASTERY].to_numpy(np.float64)
    difficulty = candidates[schema.DIFFICULTY].to_numpy(np.float64)
    discrimination = (
        candidates[schema.DISCRIMINATION].to_numpy(np.float64)
        if schema.DISCRIMINATION in candidates.columns
        else 1.0
    )
    chosen = np.argsort(irt.rule_distance(mastery, difficulty), kind="stable")[:k]
    ability = irt.mastery_to_logit(mastery)
    expected = np.broadcast_to(
        irt.p_correct_3pl(ability, difficulty, discrimination, irt.guessing_of(candidates)),
        mastery.shape,
    )[chosen]
    reasons = rule_reasons((difficulty - ability)[chosen])
    nan = np.full(k, np.nan)
    return _output(
        candidates, chosen, expected, (nan, nan), nan, np.zeros(k, dtype=bool), np.ones(k), reasons
    )


# --- scoring and selection ---------------------------------------------------------------


def exploration_flags(base, k):
    """True where at least k candidates have a strictly better bonus-free score."""
    ranked = np.sort(base)[::-1]
    better = np.searchsorted(-ranked, -base, side="left")
    return better >= k


# --- output ------------------------------------------------------------------------------


def _require_finite(scores: CandidateScores, candidates) -> CandidateScores:
    """No NaN or infinity reaches a ranking (or a JSON answer): refuse, naming the item."""
    finite = np.isfinite(scores.score) & np.isfinite(scores.expected)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        item = np.asarray(candidates[schema.ITEM_ID])[row] if schema.ITEM_ID in candidates else row
        raise SkbanditError(
            f"cannot rank: candidate {item!r} scores {scores.score[row]} (expected a finite "
            "score); its inputs are outside their documented ranges or the model is corrupt"
        )
    return scores


def require_positive(propensity, settings: RankingSettings) -> None:
    """A shown item never carries propensity 0 (or NaN): off-policy evaluation divides by it."""
    if not (np.asarray(propensity) > 0).all():
        raise SkbanditError(
            f"softmax at temperature {settings.temperature} gives a shown item probability 0 "
            "(the scores are too far apart for it); raise the temperature"
        )


def _output(candidates, chosen, expected, interval, bonus, explore, propensity, reasons):
    expected, low, high, bonus = (np.asarray(v, np.float64) for v in (expected, *interval, bonus))
    return pd.DataFrame(
        {
            schema.RANK: np.arange(1, len(chosen) + 1),
            schema.ITEM_ID: candidates[schema.ITEM_ID].to_numpy()[chosen],
            schema.EXPECTED_REWARD: expected,
            schema.SUCCESS_LOW: low,
            schema.SUCCESS_HIGH: high,
            schema.UNCERTAINTY: (high - low) / 2.0,
            schema.UCB_BONUS: bonus,
            schema.UCB: expected + bonus,
            schema.IS_EXPLORATION: np.asarray(explore, dtype=bool),
            schema.PROPENSITY: np.asarray(propensity, dtype=np.float64),
            schema.REASON: reasons,
        }
    )  # keys in schema.RECOMMENDATION_COLUMNS order


def shown_count(top_k, n_candidates):
    """How many of ``n_candidates`` are shown for a checked ``top_k``; none is an error."""
    if n_candidates == 0:
        raise SkbanditError(
            "no candidate items to rank (expected at least one row); the "
            "caller should say why, e.g. all items drift-flagged or recent"
        )
    return min(top_k, n_candidates)
