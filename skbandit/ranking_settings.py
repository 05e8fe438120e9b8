"""Command-line choices shared by the serving CLI and the evaluation jobs.

Kept free of heavy imports so that ``--help`` stays instant; the values are the names
``skbandit.policy.EXPLORATIONS`` and ``skbandit.policy.OBJECTIVES`` accept.
"""

from enum import StrEnum


class Exploration(StrEnum):
    """How the bandit picks among candidates: top-k by score, or drawn from a softmax."""

    greedy = "greedy"
    softmax = "softmax"


class Objective(StrEnum):
    """What the bandit's ranking maximises."""

    max_success = "max_success"
    target_band = "target_band"
