"""A student's difficulty-adjusted ability: a Gaussian posterior per student and topic.

One definition, used by the offline contexts (:mod:`skbandit.context`), the Spark contexts
(through :func:`skbandit.context.student_counts`), the simulator's running context
(:mod:`skbandit.sim.running_context`), REST inputs and explanations.

The model is the item's IRT response curve (3PL where the item has a ``guessing``)

    ``P(correct | theta) = c + (1 - c) * sigmoid(a * (theta - b))``

with a Laplace (Gaussian) posterior for ``theta`` on the logit scale. Every attempt's
log-likelihood is expanded to second order at the item's own difficulty ``theta = b``
(where the item is most informative; there ``s = 1/2`` and ``p_b = c + (1 - c)/2``):

    ``l_i(theta) ~ l_i(b) + g_i (theta - b) - h_i (theta - b)^2 / 2``

    ``g_i = (y_i - p_b) / (p_b (1 - p_b)) * d``,  ``h_i = d^2 / (p_b (1 - p_b))``,
    ``d = dp/dtheta at b = a (1 - c) / 4``

(``g = a (y - 1/2)`` and ``h = a^2 / 4`` for the 2PL). The posterior from a Gaussian prior
``N(m0, v0)`` and these terms is Gaussian with precision ``1/v0 + sum h_i`` and mean
``(m0/v0 + sum (g_i + h_i b_i)) / precision``: a success on a hard item (large ``b``) moves
the ability more than one on an easy item, and only the three sums ``G = sum g``,
``H = sum h`` and ``B = sum h b`` over the earlier attempts are needed, so every engine
computes them with prefix sums (no Python loop per event) and a future attempt can never
change a past ability.

Tracking (learners improve): each attempt's evidence fades by :data:`FORGETTING` per later
attempt of the same student, so the sums are ``G = sum lambda^age g`` (``age`` = later
attempts by the student before the decision, 0 for the latest), and likewise ``H`` and
``B``. This is exponential forgetting, the information-form Kalman filter of an ability that
drifts a little with every attempt: the posterior sd grows back toward the prior as old
evidence fades (it never falls below about ``sqrt((1 - lambda) / h)``), and recent attempts
move the ability the way an Elo rating's step does. The age counts the student's attempts on
every topic, so the topic sums and the level from other topics (their difference) fade on
one clock. :func:`faded_prefix_sum` computes the sums with prefix sums, exactly on any
partition of whole students.

Two levels (a student-level prior across topics for a topic's cold start):

1. the student's level from their attempts on **other** topics:
   ``N(m_s, v_s)`` from the prior ``N(0, PRIOR_SD^2)``;
2. the topic's ability: prior ``N(m_s, v_s + TOPIC_SD^2)`` (topics differ by about
   ``TOPIC_SD``), updated with the attempts on the topic.

``mastery = sigmoid(ability_mean)`` (the probability of solving an item of difficulty 0 with
discrimination 1), so ``irt.mastery_to_logit(mastery)`` gives back the ability.
"""

import numpy as np
from scipy.special import expit

from skbandit.exceptions import SkbanditError

PRIOR_SD = 1.0
"""Prior sd (logits) of a student's level before any attempt (prior mean 0)."""
TOPIC_SD = 0.7
"""Sd (logits) of a student's topic ability around their level across topics."""
FORGETTING = 0.97
"""Per later attempt, an attempt's evidence keeps this share (1 = never forgotten). 0.97 gives
an attempt a half-life of about 23 attempts. On ten real DataShop exports the served
model's mean progressive log-loss was 0.569 without forgetting, 0.561 at 0.98, 0.560 at 0.97,
0.561 at 0.95 and 0.564 at 0.90; the default school's was 0.643 with and without
(docs/benchmarks.md)."""
DISCRIMINATION_RANGE = (0.05, 10.0)
"""Accepted IRT discriminations ``a`` (an ``a`` outside is almost surely a data error)."""
DIFFICULTY_LIMIT = 10.0
"""Accepted IRT difficulties lie in ``[-DIFFICULTY_LIMIT, DIFFICULTY_LIMIT]`` logits."""


def check_item_parameters(difficulty, discrimination, guessing, where="items"):
    """Refuse NaN or out-of-range IRT parameters with a one-line :class:`SkbanditError`."""
    checks = (
        (
            "difficulty",
            np.asarray(difficulty, dtype=np.float64),
            lambda v: np.abs(v) <= DIFFICULTY_LIMIT,
            f"finite, within +-{DIFFICULTY_LIMIT:g} logits",
        ),
        (
            "discrimination",
            np.asarray(discrimination, dtype=np.float64),
            lambda v: (v >= DISCRIMINATION_RANGE[0]) & (v <= DISCRIMINATION_RANGE[1]),
            f"in [{DISCRIMINATION_RANGE[0]:g}, {DISCRIMINATION_RANGE[1]:g}]",
        ),
        (
            "guessing",
            np.asarray(guessing, dtype=np.float64),
            lambda v: (v >= 0.0) & (v < 1.0),
            "in [0, 1)",
        ),
    )
    for name, values, ok, expected in checks:
        bad = ~ok(values)  # NaN fails every comparison
        if bad.any():
            i = int(np.argmax(bad))
            raise SkbanditError(
                f"{where} has {int(bad.sum())} bad {name} value(s), e.g. "
                f"{values[i]} at row {i} (expected {expected}); fix or drop "
                "those items, or recalibrate with --calibrate"
            )


def attempt_evidence(correct, difficulty, discrimination, guessing):
    """Per-attempt terms ``(g, h, h * b)`` of the ability posterior (module docstring).

    >>> g, h, hb = attempt_evidence(np.array([1.0, 0.0]), np.array([2.0, 2.0]),
    ...                             np.ones(2), np.zeros(2))
    >>> g.tolist(), h.tolist(), hb.tolist()
    ([0.5, -0.5], [0.25, 0.25], [0.5, 0.5])
    """
    y = np.asarray(correct, dtype=np.float64)
    b = np.asarray(difficulty, dtype=np.float64)
    a = np.asarray(discrimination, dtype=np.float64)
    c = np.asarray(guessing, dtype=np.float64)
    p = c + (1.0 - c) / 2.0
    d = a * (1.0 - c) / 4.0
    var = p * (1.0 - p)
    g = (y - p) / var * d
    h = d * d / var
    return g, h, h * b


def attempt_clock(order, start, end):
    """Each event's index among its student's attempts in completion order, and the number of
    the student's attempts completed before it (``order, start, end`` as returned by
    :func:`skbandit.context._completed_ranges` for the student key)."""
    k = np.empty(len(order), dtype=np.float64)
    k[order] = np.arange(len(order)) - np.asarray(start)[order]
    return k, (np.asarray(end) - np.asarray(start)).astype(np.float64)


def faded_prefix_sum(prefix_sum, values, clock, n_earlier, forgetting=None):
    """Per decision, ``sum values_j * forgetting ** (n_earlier - 1 - clock_j)`` over the rows
    that ``prefix_sum`` adds up (the student's attempts completed before the decision).

    ``prefix_sum(v)`` sums ``v`` (input order) over each decision's earlier rows; ``clock``
    is each attempt's index among its student's attempts and ``n_earlier`` each decision's
    count of them (:func:`attempt_clock`); ``forgetting`` defaults to :data:`FORGETTING`.
    ``forgetting ** -clock`` would overflow after
    ~20,000 attempts, so the clock is cut into chunks, each scaled from its own origin, and
    each chunk's sum is brought back to the decision's time (old chunks underflow to 0, which
    is what they weigh).

    >>> clock, n = np.arange(3.0), np.array([0.0, 1.0, 2.0])
    >>> upto = lambda v: np.concatenate([[0.0], np.cumsum(v)[:-1]])  # rows before each
    >>> faded_prefix_sum(upto, np.ones(3), clock, n, forgetting=0.5).tolist()
    [0.0, 1.0, 1.5]
    """
    values = np.asarray(values, dtype=np.float64)
    forgetting = FORGETTING if forgetting is None else float(forgetting)
    if forgetting == 1.0:
        return prefix_sum(values)
    chunk = np.floor(300.0 / -np.log(forgetting))  # forgetting ** -chunk <= e^300
    total = np.zeros(len(n_earlier))
    last = clock.max(initial=0.0)
    origin = 0.0
    while origin <= last:
        inside = (clock >= origin) & (clock < origin + chunk)
        scaled = np.where(inside, values * forgetting ** np.clip(origin - clock, -chunk, 0.0), 0.0)
        back = forgetting ** np.maximum(n_earlier - 1.0 - origin, 0.0)
        total = total + prefix_sum(scaled) * back
        origin += chunk
    return total


def posterior(score, info, info_b, topic_score, topic_info, topic_info_b):
    """Mean and sd (logits) of the topic ability from the sums over earlier attempts.

    ``score, info, info_b`` are the sums of :func:`attempt_evidence` over all the student's
    earlier attempts, ``topic_*`` over those on the decision's topic (arrays, one entry per
    decision).

    Examples
    --------
    No attempts: the prior, mean 0 and sd ``sqrt(PRIOR_SD^2 + TOPIC_SD^2)``:

    >>> zero = np.zeros(1)
    >>> mean, sd = posterior(zero, zero, zero, zero, zero, zero)
    >>> float(mean[0]), round(float(sd[0]), 4)
    (0.0, 1.2207)
    """
    score, info, info_b = (np.asarray(v, dtype=np.float64) for v in (score, info, info_b))
    t_score, t_info, t_info_b = (
        np.asarray(v, dtype=np.float64) for v in (topic_score, topic_info, topic_info_b)
    )
    level_precision = 1.0 / PRIOR_SD**2 + (info - t_info)
    level_mean = ((score - t_score) + (info_b - t_info_b)) / level_precision
    prior_var = 1.0 / level_precision + TOPIC_SD**2
    precision = 1.0 / prior_var + t_info
    mean = (level_mean / prior_var + t_score + t_info_b) / precision
    return mean, 1.0 / np.sqrt(precision)


def mastery_of(ability_mean):
    """``mastery = sigmoid(ability)``: the chance on an item of difficulty 0 (a = 1, c = 0)."""
    return expit(np.asarray(ability_mean, dtype=np.float64))
