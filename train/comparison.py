"""What a champion/challenger comparison is asked to do, and what it found."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from skbandit.ranking_settings import Objective

if TYPE_CHECKING:
    from skbandit.ope.estimators import PolicyValueEstimate

CHALLENGER_ALIAS = "challenger"
CHAMPION_ALIAS = "champion"
DEFAULT_BASELINE = "models:/skbandit-linucb@champion"


def serving_objective() -> Objective:
    """``skbandit.policy.SERVING_OBJECTIVE``, imported only when a default is needed."""
    from skbandit.policy import SERVING_OBJECTIVE

    return Objective(SERVING_OBJECTIVE)


def default_min_ess() -> float:
    """``skbandit.ope.gate.DEFAULT_MIN_ESS``, imported only when a default is needed."""
    from skbandit.ope.gate import DEFAULT_MIN_ESS

    return DEFAULT_MIN_ESS


@dataclass(frozen=True)
class CompareOptions:
    """Everything the comparison was asked to do (logged as run parameters)."""

    candidate: str
    baseline: str = DEFAULT_BASELINE
    events: Path | None = None
    items: Path | None = None
    promote: bool = False
    estimator: str = "dr"
    exploration: str = "greedy"
    temperature: float = 0.05
    objective: str = field(default_factory=lambda: serving_objective().value)
    target: float = 0.7
    alpha: float | None = None
    since: str | None = None
    min_ess: float = field(default_factory=default_min_ess)
    n_bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class Comparison:
    """The outcome: both estimates, the gate's verdict and what moved."""

    candidate: PolicyValueEstimate
    baseline: PolicyValueEstimate
    candidate_version: str
    baseline_version: str
    model_name: str
    passes: bool
    reason: str
    promoted: bool
    run_id: str
    n_decisions: int
    notes: tuple[str, ...] = ()
