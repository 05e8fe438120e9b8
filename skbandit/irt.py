"""Item response theory helpers shared by the simulator, features and policies.

Ability and difficulty live on the logit scale (IRT ``theta`` and ``b``). Mastery, as
the context builder reports it, is a probability; :func:`mastery_to_logit` puts it on the
logit scale so that it can be compared with an item's difficulty.
"""

import numpy as np
from scipy.special import expit, logit

MASTERY_EPS = 0.02
"""Mastery is clipped to ``[MASTERY_EPS, 1 - MASTERY_EPS]`` before the logit (finite values)."""


def mastery_to_logit(mastery):
    """Map mastery probabilities to the logit (ability) scale, clipping away 0 and 1.

    >>> float(mastery_to_logit(0.5))
    0.0
    """
    return logit(np.clip(np.asarray(mastery, dtype=np.float64), MASTERY_EPS, 1 - MASTERY_EPS))


def p_correct_2pl(ability, difficulty, discrimination=1.0, guessing=0.0):
    """Probability of a correct answer under the (3PL-capable) 2PL model.

    ``P = c + (1 - c) * sigmoid(a * (theta - b))``.

    >>> float(p_correct_2pl(0.0, 0.0))
    0.5
    """
    ability = np.asarray(ability, dtype=np.float64)
    prob = expit(np.asarray(discrimination) * (ability - np.asarray(difficulty)))
    return guessing + (1.0 - np.asarray(guessing)) * prob


def rule_distance(mastery, difficulty):
    """The rule-based baseline's sort key: how far an item's difficulty is from the student.

    The seed's rule orders a topic's items by difficulty relative to the student's level;
    we compare on the logit scale, so an item whose difficulty equals the student's ability
    (a 50 % item under IRT) comes first.
    """
    return np.abs(np.asarray(difficulty, dtype=np.float64) - mastery_to_logit(mastery))
