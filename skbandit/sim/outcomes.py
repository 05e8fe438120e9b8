"""The simulated school's attempt model: what happens when a student is shown an item.

Given the student's true ability ``theta`` on the item's topic, the true success probability
is the 2PL model with the item's hidden effect, ``p = p_correct_2pl(theta, b_true + hidden,
a)``. The attempt is correct when its uniform noise falls below ``p``; latency is lognormal
(longer when ``p`` is low, with a heavy tail); help is more likely when ``p`` is low; after
the attempt the student's ability on the topic grows as the school's learning model says
(:mod:`skbandit.sim.learning`; :func:`learning_gain` is the default Gaussian peak). All the
randomness is the world's per-attempt noise, so equal attempts give equal outcomes.
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from skbandit.cleaning import LATENCY_CAP_MS
from skbandit.irt import p_correct_2pl
from skbandit.sim.learning import gaussian_peak_gain
from skbandit.sim.world import SchoolConfig, World


@dataclass(frozen=True)
class StepOutcome:
    """What happened at each decision of one step; every array has shape (n_decisions,).

    Attributes
    ----------
    student, item : ndarray of int
        Student index (``env.world.user_ids[student]``) and the item index shown.
    timestamp : ndarray of float
        Epoch seconds of the attempt.
    correct, help_requested : ndarray of bool
    latency_ms : ndarray of float
        Whole milliseconds.
    p_true : ndarray of float
        True success probability of the attempt.
    ability_before, ability_after : ndarray of float
        The student's true ability (logits) on the item's topic around the attempt.
    """

    student: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    correct: np.ndarray
    latency_ms: np.ndarray
    help_requested: np.ndarray
    p_true: np.ndarray
    ability_before: np.ndarray
    ability_after: np.ndarray


def success_probability(world: World, theta, item) -> np.ndarray:
    """True P(correct) of ``item`` for students of true ability ``theta`` on its topic.

    Parameters
    ----------
    world : World
    theta : ndarray of float of shape (n,)
        Each student's true ability (logits) on the item's topic.
    item : ndarray of int of shape (n,)
        Item indices into the world's item arrays.

    Returns
    -------
    ndarray of shape (n,)
        ``p_correct_2pl(theta, difficulty_true + hidden_effect, discrimination)``.
    """
    return p_correct_2pl(
        theta, world.difficulty_true[item] + world.hidden_effect[item], world.discrimination[item]
    )


def draw_attempt(world: World, student, p, attempt):
    """Correctness, latency and help of attempts, from the world's per-attempt noise.

    Parameters
    ----------
    world : World
    student : ndarray of int of shape (n,)
        Student indices.
    p : ndarray of float of shape (n,)
        True success probability of each attempt.
    attempt : ndarray of int of shape (n,)
        Index of each attempt into ``world.noise``.

    Returns
    -------
    correct : ndarray of bool of shape (n,)
    latency_ms : ndarray of float of shape (n,)
        Whole milliseconds in ``[2000, LATENCY_CAP_MS]``.
    help_requested : ndarray of bool of shape (n,)
    """
    cfg, noise = world.config, world.noise
    correct = noise["correct"][attempt] < p
    log_s = (
        np.log(cfg.latency_median_s)
        + world.speed[student]
        + cfg.latency_hardness * (0.6 - p)
        + cfg.latency_sigma * noise["latency"][attempt]
    )
    tail = noise["tail"][attempt]
    log_s = log_s + np.where(tail < 0.03, -np.log(tail / 0.03), 0.0)  # heavy tail
    latency = np.clip(np.round(np.exp(log_s) * 1000.0), 2000.0, LATENCY_CAP_MS)
    help_ = noise["help"][attempt] < expit(
        world.help_logit[student] + cfg.help_struggle * (0.5 - p)
    )
    return correct, latency, help_


def learning_gain(p, config: SchoolConfig) -> np.ndarray:
    """Ability gain of one attempt whose true success probability is ``p``.

    ``rate * exp(-((p - peak) / width)**2 / 2)``: largest in the moderate band around
    ``learning_peak`` (0.7), little for items far too easy or far too hard.

    Examples
    --------
    >>> config = SchoolConfig()
    >>> float(learning_gain(config.learning_peak, config)) == config.learning_rate
    True
    """
    return gaussian_peak_gain(p, config)
