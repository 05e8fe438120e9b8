"""Item response theory helpers shared by the simulator, features and policies.

Ability and difficulty live on the logit scale (IRT ``theta`` and ``b``). Mastery, as
the context builder reports it, is a probability; :func:`mastery_to_logit` puts it on the
logit scale so that it can be compared with an item's difficulty.
"""

import numpy as np
from scipy.special import expit, logit

from skbandit.schema import GUESSING

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


def p_correct_3pl(ability, difficulty, discrimination=1.0, guessing=None):
    """Probability of a correct answer under the 3PL model, ``c`` missing meaning no guessing.

    ``P = c + (1 - c) * sigmoid(a * (theta - b))``, with ``c`` the item's ``guessing`` (the
    chance of a correct answer by guessing, e.g. 1/4 for four choices). Items tables carry
    ``guessing`` only where it is known: ``None`` or NaN counts as ``c = 0`` (the 2PL).
    An item with b = 0.44 and c = 0.39, for a student the 2PL gives 66 %, has 79 %:

    >>> theta = 0.44 + float(logit(0.66))
    >>> two_pl, three_pl = p_correct_3pl(theta, 0.44), p_correct_3pl(theta, 0.44, 1.0, 0.39)
    >>> round(float(two_pl), 2), round(float(three_pl), 2)
    (0.66, 0.79)
    """
    guess = 0.0 if guessing is None else np.nan_to_num(np.asarray(guessing, dtype=np.float64))
    return p_correct_2pl(ability, difficulty, discrimination, guess)


def guessing_of(frame) -> np.ndarray:
    """The ``guessing`` column of an items or candidates frame, 0.0 where missing or absent.

    >>> import pandas as pd
    >>> guessing_of(pd.DataFrame({"guessing": pd.array([0.25, None], dtype="Float64")})).tolist()
    [0.25, 0.0]
    """
    if GUESSING not in getattr(frame, "columns", ()):
        return np.zeros(len(frame))
    values = frame[GUESSING].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isnan(values), 0.0, values)


def rule_distance(mastery, difficulty):
    """The rule-based baseline's sort key: how far an item's difficulty is from the student.

    The seed's rule orders a topic's items by difficulty relative to the student's level;
    we compare on the logit scale, so an item whose difficulty equals the student's ability
    (a 50 % item under IRT) comes first.
    """
    return np.abs(np.asarray(difficulty, dtype=np.float64) - mastery_to_logit(mastery))
