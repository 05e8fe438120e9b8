"""Student and item features from counts of earlier events: the one definition of them.

Every engine counts a decision's earlier events its own way (:mod:`skbandit.context` one
decision or every logged event, the Spark job per partition, the simulated school as it
runs); all of them turn the counts into features here.

Definitions (``n`` earlier events of the student, ``c`` of them correct):

- ``ability`` and ``ability_sd``: the difficulty-adjusted ability on the topic, a Gaussian
  posterior in logits from the student's earlier attempts and their items' IRT parameters,
  with the student's level on other topics as the prior (:mod:`skbandit.ability`).
- ``mastery``: ``sigmoid(ability)`` (the chance on an item of difficulty 0); an optional
  mastery table (such as SAKT's) overrides it. Without item parameters (a caller that
  passes none) every item counts as difficulty 0.
- ``accuracy``: the raw ``(c + 1) / (n + 2)`` over the student's earlier events on the topic
  when there are at least ``COLD_START_MIN_EVENTS`` of them, else over all their earlier
  events (the mastery of versions before the ability; not a model input).
- ``recent_accuracy``: mean correct of the last ``RECENT_WINDOW`` earlier events.
- ``recent_speed``: median latency (NaN ignored, capped at ``data.LATENCY_CAP_MS``) of the
  last ``RECENT_WINDOW`` earlier events divided by ``RECENT_SPEED_SCALE_MS``, clipped to
  [0, 1]; ``DEFAULT_RECENT_SPEED`` when none of them has a latency.
- ``help_tendency``: mean ``help_requested`` over all earlier events (NaN ignored);
  ``DEFAULT_HELP_TENDENCY`` when none is known.
- ``skill_gap``: ``max(0, SKILL_TARGET - mastery)`` (the seed's definition).
- ``item_attempts``: earlier attempts on the item by anyone; ``item_accuracy``:
  ``(correct + 1) / (attempts + 2)`` over them.
- ``difficulty``, ``discrimination`` and ``guessing`` are the item table's IRT b, a and c; a
  missing discrimination is ``DEFAULT_DISCRIMINATION``, a missing guessing (no column, or a
  blank) is 0 (the 2PL).

A student with fewer than ``COLD_START_MIN_EVENTS`` earlier events (including an unknown
student) is in cold start and gets the ``DEFAULT_*`` values for all student features but the
ability (and so mastery), whose posterior already says how little one attempt tells.
The order of earlier events ("the last ``RECENT_WINDOW``") is by completion time, ties kept
in the events' row order.
"""

import numpy as np

from skbandit import ability as ability_model
from skbandit import schema
from skbandit.cleaning import LATENCY_CAP_MS
from skbandit.exceptions import SkbanditError

COLD_START_MIN_EVENTS = 3
"""A student with fewer earlier events than this gets the cold-start defaults."""
DEFAULT_MASTERY = 0.5
"""Cold-start mastery (an IRT ability of 0 on the logit scale)."""
DEFAULT_RECENT_ACCURACY = 0.5
"""Cold-start recent accuracy."""
DEFAULT_RECENT_SPEED = 0.5
"""Cold-start recent speed, also used when no recent event has a latency."""
DEFAULT_HELP_TENDENCY = 0.1
"""Cold-start help tendency, also used when no earlier event says whether help was used."""
SKILL_TARGET = 0.8
"""Mastery the student should reach; ``skill_gap = max(0, SKILL_TARGET - mastery)``."""
RECENT_WINDOW = 5
"""Number of latest earlier events behind ``recent_accuracy`` and ``recent_speed``."""
RECENT_SPEED_SCALE_MS = 240_000.0
"""Latency (ms) that maps to ``recent_speed = 1`` (4 minutes)."""
ABILITY = "ability"
"""Context value: the ability posterior mean on the topic (logits; not a model input)."""
ABILITY_SD = "ability_sd"
"""Context value: the ability posterior sd (logits; not a model input)."""
ACCURACY = "accuracy"
"""Context value: the raw smoothed accuracy (the old mastery; not a model input)."""
ABILITY_SUMS = ("score", "info", "info_b", "topic_score", "topic_info", "topic_info_b")
"""Keys of :func:`~skbandit.context_counts.student_counts` holding the ability's sums."""


def student_features(
    n,
    n_correct,
    n_topic,
    n_topic_correct,
    recent_correct,
    latency_lags,
    help_sum,
    help_known,
    names=schema.STUDENT_CONTEXT,
    score=None,
    info=None,
    info_b=None,
    topic_score=None,
    topic_info=None,
    topic_info_b=None,
):
    """Student-context features from a student's counts: the one definition of them.

    Used by :func:`skbandit.context.student_context`,
    :func:`~skbandit.context.historical_contexts` and the simulated school's running context
    (:class:`skbandit.sim.running_context.SchoolContext`). Every argument is an array with
    one entry per decision; the definitions are in the module docstring.

    Parameters
    ----------
    n, n_correct : ndarray of shape (n_decisions,)
        The student's earlier attempts and how many were correct.
    n_topic, n_topic_correct : ndarray of shape (n_decisions,)
        The same on the decision's topic.
    recent_correct : ndarray of shape (n_decisions,)
        Correct attempts among the latest ``min(n, RECENT_WINDOW)``.
    latency_lags : ndarray of shape (n_decisions, RECENT_WINDOW)
        Latencies (ms) of the latest ``RECENT_WINDOW`` attempts in any order, NaN where
        unknown or where there are fewer attempts.
    help_sum, help_known : ndarray of shape (n_decisions,)
        Help requests, and attempts whose help flag is known.
    names : sequence of str, default ``schema.STUDENT_CONTEXT``
        Only these features are computed (also ``ability``, ``ability_sd``, ``accuracy``);
        an input that none of them reads may be None.
    score, info, info_b, topic_score, topic_info, topic_info_b : ndarray, optional
        The ability posterior's sums (:data:`ABILITY_SUMS`, from
        :func:`~skbandit.context_counts.student_counts`);
        needed by ``mastery``, ``skill_gap``, ``ability`` and ``ability_sd``.

    Returns
    -------
    dict of str to ndarray of shape (n_decisions,)
        ``names`` in order.

    Examples
    --------
    Ten attempts, 6 correct (2 of 2 on the topic: too few for topic-level mastery):

    >>> one = lambda v: np.array([v], dtype=float)
    >>> sums = dict(score=one(0.5), info=one(2.5), info_b=one(0.0), topic_score=one(1.0),
    ...             topic_info=one(0.5), topic_info_b=one(0.0))
    >>> features = student_features(one(10), one(6), one(2), one(2), one(4),
    ...                             np.full((1, RECENT_WINDOW), 60_000.0), one(1), one(10),
    ...                             **sums)
    >>> {k: round(float(v[0]), 4) for k, v in features.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'mastery': 0.6142, 'recent_accuracy': 0.8, 'recent_speed': 0.25, 'help_tendency': 0.1,
     'skill_gap': 0.1858}
    """
    cold = n < COLD_START_MIN_EVENTS
    posterior = {}

    def ability_posterior():
        if not posterior:
            if score is None:
                raise SkbanditError(
                    "the ability needs the posterior sums "
                    f"{ABILITY_SUMS} (from skbandit.context.student_counts)"
                )
            posterior["mean"], posterior["sd"] = ability_model.posterior(
                score, info, info_b, topic_score, topic_info, topic_info_b
            )
        return posterior

    def mastery():
        return ability_model.mastery_of(ability_posterior()["mean"])

    def accuracy():
        topic_level = n_topic >= COLD_START_MIN_EVENTS
        value = np.where(
            topic_level, (n_topic_correct + 1.0) / (n_topic + 2.0), (n_correct + 1.0) / (n + 2.0)
        )
        return np.where(cold, DEFAULT_MASTERY, value)

    def recent_accuracy():
        n_recent = np.minimum(n, RECENT_WINDOW)
        return np.where(cold, DEFAULT_RECENT_ACCURACY, recent_correct / np.maximum(n_recent, 1))

    def recent_speed():
        median = _row_nanmedian(np.minimum(latency_lags, LATENCY_CAP_MS))
        speed = np.clip(median / RECENT_SPEED_SCALE_MS, 0.0, 1.0)
        return np.where(cold | np.isnan(speed), DEFAULT_RECENT_SPEED, speed)

    def help_tendency():
        return np.where(
            cold | (help_known == 0), DEFAULT_HELP_TENDENCY, help_sum / np.maximum(help_known, 1)
        )

    known = {
        schema.MASTERY: mastery,
        ACCURACY: accuracy,
        ABILITY: lambda: ability_posterior()["mean"],
        ABILITY_SD: lambda: ability_posterior()["sd"],
        schema.RECENT_ACCURACY: recent_accuracy,
        schema.RECENT_SPEED: recent_speed,
        schema.HELP_TENDENCY: help_tendency,
    }
    out = {}
    for name in names:
        if name == schema.SKILL_GAP:
            level = out[schema.MASTERY] if schema.MASTERY in out else mastery()
            out[name] = np.maximum(0.0, SKILL_TARGET - level)
        elif name in known:
            out[name] = known[name]()
        else:
            raise SkbanditError(
                f"unknown student feature {name!r} (expected names from "
                f"schema.STUDENT_CONTEXT: {schema.STUDENT_CONTEXT}, or "
                f"{(ABILITY, ABILITY_SD, ACCURACY)})"
            )
    return out


def item_features(attempts, item_correct):
    """``item_attempts`` and ``item_accuracy`` (smoothed) from an item's earlier attempts.

    >>> item_features(np.array([0.0, 8.0]), np.array([0.0, 6.0]))[schema.ITEM_ACCURACY].tolist()
    [0.5, 0.7]
    """
    attempts = np.asarray(attempts, dtype=np.float64)
    return {
        schema.ITEM_ATTEMPTS: attempts,
        schema.ITEM_ACCURACY: (np.asarray(item_correct, dtype=np.float64) + 1.0) / (attempts + 2.0),
    }


def _row_nanmedian(matrix):
    """Median of each row ignoring NaN (NaN for an all-NaN row), without warnings."""
    srt = np.sort(matrix, axis=1)  # NaN sorts last
    count = (~np.isnan(srt)).sum(axis=1)
    lo = np.clip((count - 1) // 2, 0, None)
    hi = np.clip(count // 2, 0, matrix.shape[1] - 1)
    rows = np.arange(len(srt))
    median = (srt[rows, lo] + srt[rows, hi]) / 2.0
    return np.where(count > 0, median, np.nan)
