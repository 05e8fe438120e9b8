"""What a policy is, once: a :class:`typing.Protocol` that every kind of policy satisfies.

Three places mean "policy", each on its own kind of candidates:

- the served rankings of :mod:`skbandit.policy`, as objects in :mod:`skbandit.ranking_policies`
  (:class:`~skbandit.ranking_policies.LinUCBRanking`,
  :class:`~skbandit.ranking_policies.RuleRanking`), on one student's candidate frame;
- the simulation study's online policies (:mod:`skbandit.study.policies`) on one step's
  :class:`~skbandit.sim.env.CandidateArrays`;
- the target policies of off-policy evaluation (:mod:`skbandit.ope.targets`) on chunks of
  logged candidate frames, rows of a decision sharing ``decision_id``.

All three choose one candidate row per decision: that is :class:`Policy`. The rankings and
the target policies also say how likely each row is to be chosen first, which off-policy
evaluation needs: that is :class:`StochasticPolicy`. Like bayesianbandits' ``PolicyProtocol``
the protocols are structural, so a policy needs no base class, and they are
``runtime_checkable`` (an ``isinstance`` check looks for the methods, not their signatures;
the type checker checks those).
"""

from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

Candidates = TypeVar("Candidates", contravariant=True)
"""The candidates a policy reads: a frame or :class:`~skbandit.sim.env.CandidateArrays`."""


@runtime_checkable
class Policy(Protocol[Candidates]):
    """Chooses one candidate row per decision."""

    def choose(self, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        """Row index (into ``candidates``) chosen for each decision, in decision order.

        Rows of a decision are contiguous; ``rng`` breaks ties and draws stochastic choices.
        """
        ...


@runtime_checkable
class StochasticPolicy(Policy[Candidates], Protocol[Candidates]):
    """A :class:`Policy` that also gives the probability of each row being chosen."""

    def probabilities(self, candidates: Candidates) -> np.ndarray:
        """Probability that :meth:`choose` picks each row (one per row; 1 per decision)."""
        ...


def draw_rows(probabilities: np.ndarray, starts: np.ndarray, rng: np.random.Generator):
    """One row per decision drawn from per-row ``probabilities`` (decision ``d``'s rows
    start at ``starts[d]`` and run to the next start).

    >>> draw_rows(np.array([0.0, 1.0, 1.0, 0.0]), np.array([0, 2]), np.random.default_rng(0))
    array([1, 2])
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    ends = np.r_[starts[1:], len(probabilities)]
    cumulative = np.cumsum(probabilities)
    before = np.r_[0.0, cumulative][starts]
    total = np.add.reduceat(probabilities, starts)
    rows = np.searchsorted(cumulative, before + rng.random(len(starts)) * total, side="right")
    return np.clip(rows, starts, ends - 1)
