"""Why an item is recommended: short human reasons, and per-feature score contributions.

The reasons are what ``reason`` says in the rankings of :mod:`skbandit.policy` (the CLI
shows them; the REST output has no reason column and never builds them). They combine the
model's confidence with how hard the item is for this student:

- exploring (in the top-k only because of the bonus): "Exploring: little data on items like
  this"; otherwise "High", "Moderate" or "Low confidence" by the uncertainty (below
  :data:`HIGH_CONFIDENCE`, below :data:`MODERATE_CONFIDENCE`, else) and the expected success;
- for LinUCB the difficulty phrase follows the expected success the table shows
  (:func:`success_phrase`), so the words never contradict the number; for the rule-based
  order, which has no model, it follows the IRT gap between the item's difficulty and the
  student's ability (:func:`difficulty_phrase`, ``offset = difficulty - logit(mastery)``).

:func:`explain` splits a LinUCB score into ``theta_j * x_j`` per feature.
"""

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.features import candidate_features

MATCH_LOGITS = 0.5
"""An item within this many logits of the student's ability is a "good difficulty match"."""
STRETCH_LOGITS = 1.5
"""An item up to this many logits harder than the student is "slightly challenging"."""
EASY_SUCCESS = 0.85
"""Expected success from which a LinUCB item "builds confidence"."""
MATCH_SUCCESS = 0.6
"""Expected success from which (up to :data:`EASY_SUCCESS`) it is a "good difficulty match"."""
STRETCH_SUCCESS = 0.4
"""Expected success from which (up to :data:`MATCH_SUCCESS`) it is "slightly challenging"."""
HIGH_CONFIDENCE = 0.1
"""Uncertainty below which a non-exploring recommendation says "High confidence"."""
MODERATE_CONFIDENCE = 0.25
"""Uncertainty below which it says "Moderate confidence" (else "Low confidence")."""


def linucb_reasons(expected, uncertainty, is_exploration):
    """One reason per shown LinUCB item (arrays of equal length, in slot order).

    Parameters
    ----------
    expected, uncertainty : array-like of shape (k,)
        ``expected_reward`` and ``uncertainty`` of the shown items.
    is_exploration : array-like of bool, shape (k,)

    Returns
    -------
    list of str

    Examples
    --------
    >>> linucb_reasons([0.7], [0.05], [False])
    ['High confidence: 70% expected success; good difficulty match']
    """
    return [f"{_confidence(e, u, x)}; {success_phrase(e)}"
            for e, u, x in zip(expected, uncertainty, is_exploration, strict=True)]


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
    """One reason per item shown by the rule-based order (``offset`` in slot order)."""
    return [f"Rule: closest difficulty to your level; {difficulty_phrase(d)}" for d in offset]


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


def _confidence(expected, uncertainty, is_exploration):
    if is_exploration:
        return "Exploring: little data on items like this"
    level = ("High" if uncertainty < HIGH_CONFIDENCE
             else "Moderate" if uncertainty < MODERATE_CONFIDENCE else "Low")
    return f"{level} confidence: {expected:.0%} expected success"


def explain(pipeline, candidates, alpha=None):
    """Per-feature contributions ``theta_j * x_j`` of every candidate's score.

    Parameters
    ----------
    pipeline : Pipeline
        Fitted features + LinUCB pipeline.
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
    X, model = candidate_features(pipeline, candidates)
    alpha = model.alpha if alpha is None else alpha
    mean, std = model.predict(X, return_std=True)
    names = pipeline[:-1].get_feature_names_out()
    out = pd.DataFrame(np.asarray(X, dtype=np.float64) * model.coef_, columns=names,
                       index=candidates.index)
    out.insert(0, schema.ITEM_ID, candidates[schema.ITEM_ID].to_numpy())
    out["prediction"] = mean
    out["bonus"] = alpha * std
    out[schema.UCB] = np.clip(mean, 0.0, 1.0) + alpha * std
    return out
