"""How simulated students learn: the learning models the simulation study varies.

What a student learns from an attempt is an assumption, and the study's conclusions must
not rest on one choice of it. :class:`~skbandit.sim.world.SchoolConfig` selects one model
with ``learning_model`` (one of :data:`LEARNING_MODELS`); forgetting between sessions
(``forgetting_half_life_days``) combines with any of them. Every model changes the
student's true ability (logits) on the attempted item's topic; the attempt's success
probability stays the 2PL of that ability (:func:`~skbandit.sim.outcomes.success_probability`),
passed through :func:`observed_probability` (guess and slip, for knowledge tracing only).

- ``"gaussian_peak"`` (default): :func:`gaussian_peak_gain`, largest when the success
  probability is near ``learning_peak``.
- ``"performance_factors"``: :func:`performance_factors_gain`, one gain after a correct and
  another after a wrong answer (expected gain linear in p).
- ``"knowledge_tracing"``: :func:`knowledge_tracing_gain`, a one-off learning transition per
  student and topic, with guess and slip on the observed answers.
- ``"additive_factors"``: :func:`additive_factors_gain`, a constant gain per attempt: the
  null case in which the item chosen within a topic cannot matter.

:data:`LEARNING_SCENARIOS` names the settings the sweep runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from skbandit.exceptions import SkbanditError

LEARNING_MODELS = ("gaussian_peak", "performance_factors", "knowledge_tracing", "additive_factors")
"""Values of ``SchoolConfig.learning_model``."""

LEARNING_SCENARIOS: dict[str, dict[str, Any]] = {
    "peak_0.5": {"learning_peak": 0.5},
    "peak_0.7": {},
    "peak_0.85": {"learning_peak": 0.85},
    "peak_0.9": {"learning_peak": 0.9},
    "peak_0.7_wide": {"learning_width": 0.3},
    "pfa_success": {"learning_model": "performance_factors"},
    "pfa_errors": {
        "learning_model": "performance_factors",
        "gain_correct": 0.01,
        "gain_wrong": 0.05,
    },
    "bkt": {"learning_model": "knowledge_tracing"},
    "additive": {"learning_model": "additive_factors"},
    "peak_0.7_forgetting": {"forgetting_half_life_days": 30.0},
}
"""The learning models of the sweep: ``SchoolConfig`` fields that differ from the default."""

SECONDS_PER_DAY = 86_400.0


def gaussian_peak_gain(p, config) -> np.ndarray:
    """Gain ``rate * exp(-((p - peak) / width)**2 / 2)`` of an attempt of success prob. ``p``.

    Largest in the band around ``learning_peak``, little for items far too easy or far too
    hard. The optimal-challenge idea; Wilson, Shenhav, Straccia & Cohen (2019), "The Eighty
    Five Percent Rule for optimal learning", Nature Communications 10:4646, argue for a peak
    near 0.85 for gradient learners.

    >>> from skbandit.sim.world import SchoolConfig
    >>> float(gaussian_peak_gain(0.7, SchoolConfig())) == SchoolConfig().learning_rate
    True
    """
    z = (np.asarray(p, dtype=np.float64) - config.learning_peak) / config.learning_width
    return config.learning_rate * np.exp(-0.5 * z**2)


def performance_factors_gain(correct, config) -> np.ndarray:
    """``gain_correct`` after a correct answer, ``gain_wrong`` after a wrong one.

    Performance factors analysis: Pavlik, Cen & Koedinger (2009), "Performance Factors
    Analysis - A New Alternative to Knowledge Tracing", AIED 2009, 531-538. The expected
    gain ``gain_wrong + (gain_correct - gain_wrong) * p`` is linear in ``p``: easy items teach
    most when successes teach more, hard items when errors do.

    >>> from skbandit.sim.world import SchoolConfig
    >>> performance_factors_gain(np.array([True, False]), SchoolConfig()).tolist()
    [0.05, 0.01]
    """
    return np.where(np.asarray(correct, dtype=bool), config.gain_correct, config.gain_wrong)


def knowledge_tracing_gain(learned, u, config) -> np.ndarray:
    """A one-off jump of ``bkt_step`` logits with probability ``bkt_transit`` per attempt.

    Bayesian knowledge tracing: Corbett & Anderson (1995), "Knowledge tracing: Modeling the
    acquisition of procedural knowledge", User Modeling and User-Adapted Interaction 4,
    253-278. A student who has not yet learned the topic learns it on an attempt with
    probability ``bkt_transit`` whatever the item (``u`` is the attempt's uniform noise);
    observed answers carry guess and slip (:func:`observed_probability`).

    >>> from skbandit.sim.world import SchoolConfig
    >>> knowledge_tracing_gain(np.array([False, False, True]), np.array([0.01, 0.9, 0.01]),
    ...                        SchoolConfig()).tolist()
    [1.0, 0.0, 0.0]
    """
    jump = ~np.asarray(learned, dtype=bool) & (np.asarray(u) < config.bkt_transit)
    return np.where(jump, config.bkt_step, 0.0)


def additive_factors_gain(n, config) -> np.ndarray:
    """A constant gain ``learning_rate`` per attempt, whatever the item.

    Additive factors model: Cen, Koedinger & Junker (2006), "Learning Factors Analysis - A
    General Method for Cognitive Model Evaluation and Improvement", ITS 2006, 164-175. The
    null case: which item of a topic is shown cannot change learning.

    >>> from skbandit.sim.world import SchoolConfig
    >>> additive_factors_gain(2, SchoolConfig()).tolist()
    [0.04, 0.04]
    """
    return np.full(n, config.learning_rate)


def forgetting_factor(elapsed_seconds, config) -> np.ndarray:
    """Share of the gains kept after ``elapsed_seconds`` without practice (1 without forgetting).

    Exponential forgetting with a half-life, ``0.5 ** (days / forgetting_half_life_days)``:
    Ebbinghaus (1885); half-life regression, Settles & Meeder (2016), "A Trainable Spaced
    Repetition Model for Language Learning", ACL 2016, 1848-1858.

    >>> from skbandit.sim.world import SchoolConfig
    >>> config = SchoolConfig(forgetting_half_life_days=10.0)
    >>> forgetting_factor(np.array([0.0, 10 * 86400.0]), config).tolist()
    [1.0, 0.5]
    """
    elapsed = np.asarray(elapsed_seconds, dtype=np.float64)
    if config.forgetting_half_life_days is None:
        return np.ones_like(elapsed)
    days = np.maximum(elapsed, 0.0) / SECONDS_PER_DAY
    return 0.5 ** (days / config.forgetting_half_life_days)


def observed_probability(p, config) -> np.ndarray:
    """Success probability of an answer: ``guess + (1 - guess - slip) * p`` under knowledge
    tracing, ``p`` under the other models."""
    p = np.asarray(p, dtype=np.float64)
    if config.learning_model != "knowledge_tracing":
        return p
    return config.bkt_guess + (1.0 - config.bkt_guess - config.bkt_slip) * p


def expected_gain(p, config) -> np.ndarray:
    """Expected ability gain of an attempt of (observed) success probability ``p``.

    What the learning oracle maximises; for knowledge tracing and additive factors it does
    not depend on ``p`` (every item ties).
    """
    p = np.asarray(p, dtype=np.float64)
    model = config.learning_model
    if model == "gaussian_peak":
        return gaussian_peak_gain(p, config)
    if model == "performance_factors":
        return config.gain_wrong + (config.gain_correct - config.gain_wrong) * p
    if model == "knowledge_tracing":
        return np.full(p.shape, config.bkt_transit * config.bkt_step)
    return np.full(p.shape, config.learning_rate)


def check_learning_config(config) -> None:
    """Refuse an unknown learning model or a non-positive half-life, in one line."""
    if config.learning_model not in LEARNING_MODELS:
        raise SkbanditError(
            f"unknown learning_model {config.learning_model!r} (expected one of {LEARNING_MODELS})"
        )
    half_life = config.forgetting_half_life_days
    if half_life is not None and not half_life > 0:
        raise SkbanditError(f"forgetting_half_life_days must be > 0 or None; found {half_life}")


class StudentLearning:
    """The students' true abilities and how they change: one learning model plus forgetting.

    Parameters
    ----------
    ability0 : ndarray of shape (n_students, n_topics)
        Abilities at the start of the year (logits).
    config : SchoolConfig

    Attributes
    ----------
    ability : ndarray of shape (n_students, n_topics)
        Current abilities; with forgetting, as of each student's last attempt.
    """

    def __init__(self, ability0: np.ndarray, config):
        check_learning_config(config)
        self.config = config
        self.ability0 = ability0
        self.ability = ability0.copy()
        self.learned = np.zeros(ability0.shape, dtype=bool)
        self.last_time = np.full(ability0.shape[0], np.nan)

    def forget(self, student, time) -> None:
        """Apply forgetting since each student's last attempt (call at a session's start)."""
        if self.config.forgetting_half_life_days is None:
            return
        elapsed = np.nan_to_num(time - self.last_time[student], nan=0.0)
        keep = forgetting_factor(elapsed, self.config)[:, None]
        base = self.ability0[student]
        self.ability[student] = base + (self.ability[student] - base) * keep

    def learn(self, student, topic, p, correct, u) -> tuple[np.ndarray, np.ndarray]:
        """Apply one attempt per row; return the abilities on ``topic`` before and after.

        ``p`` is the attempt's success probability, ``correct`` its outcome and ``u`` its
        uniform noise (used by knowledge tracing). A student appears at most once.
        """
        model = self.config.learning_model
        if model == "gaussian_peak":
            gain = gaussian_peak_gain(p, self.config)
        elif model == "performance_factors":
            gain = performance_factors_gain(correct, self.config)
        elif model == "knowledge_tracing":
            gain = knowledge_tracing_gain(self.learned[student, topic], u, self.config)
            self.learned[student, topic] |= gain > 0
        else:
            gain = additive_factors_gain(len(student), self.config)
        before = self.ability[student, topic]
        self.ability[student, topic] = before + gain
        return before, before + gain

    def touch(self, student, time) -> None:
        """Record each student's latest attempt time (the start of forgetting)."""
        self.last_time[student] = time

    def abilities_at(self, time: float) -> np.ndarray:
        """Every student's abilities at ``time``, forgetting since their last attempt applied."""
        if self.config.forgetting_half_life_days is None:
            return self.ability.copy()
        keep = forgetting_factor(np.nan_to_num(time - self.last_time, nan=0.0), self.config)
        return self.ability0 + (self.ability - self.ability0) * keep[:, None]
