"""What a champion/challenger comparison is asked to do, and what it found."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.registry import DEFAULT_CHAMPION
from skbandit.ranking_settings import SERVING_SETTINGS, RankingSettings

if TYPE_CHECKING:
    from skbandit.ope.estimators import PolicyValueEstimate
    from skbandit.ope.gate import PairedDifference

DEFAULT_BASELINE = f"models:/{DEFAULT_CHAMPION}"


class Reward(StrEnum):
    """What the estimates are of (``gate.reward``; :data:`skbandit.ope.gate.REWARDS`)."""

    correct = "correct"
    """The first attempt at the served item was correct."""
    progress = "progress"
    """The delayed learning reward: the ability change (logits) the student's next five
    attempts on the topic show (:func:`skbandit.learning_progress.logged_rewards`)."""


class Estimator(StrEnum):
    """Off-policy estimator behind the gate."""

    dr = "dr"
    snips = "snips"
    ips = "ips"


def default_min_ess() -> float:
    """``skbandit.ope.gate.DEFAULT_MIN_ESS``, imported only when a default is needed."""
    from skbandit.ope.gate import DEFAULT_MIN_ESS

    return DEFAULT_MIN_ESS


@dataclass(frozen=True)
class CompareOptions:
    """Everything the comparison was asked to do (logged as run parameters).

    ``ranking`` is how both policies rank (``top_k`` plays no part: the target policies
    are first-slot distributions); by default what the product serves.
    """

    candidate: str
    baseline: str = DEFAULT_BASELINE
    events: Path | None = None
    items: Path | None = None
    decisions: str | None = None
    """The served decision log (URL, file or parquet export folder); None: rebuild from events."""
    verify_log: bool = True
    """Refuse a decision log whose hash chain fails verification (``--unverified-log``: use it)."""
    promote: bool = False
    estimator: str = "dr"
    reward: str = "correct"
    """``correct`` or ``progress`` (the delayed learning reward, :mod:`skbandit.ope.gate`)."""
    ranking: RankingSettings = SERVING_SETTINGS
    since: str | None = None
    min_ess: float = field(default_factory=default_min_ess)
    n_bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class Comparison:
    """The outcome: both estimates, their paired difference (what the gate decides on), the
    gate's verdict and what moved.

    ``model_name`` is the candidate's registered model (where the aliases move),
    ``baseline_model_name`` the baseline's; ``run_id`` is the MLflow run that logged it.
    """

    candidate: PolicyValueEstimate
    baseline: PolicyValueEstimate
    difference: PairedDifference
    candidate_version: str
    baseline_version: str
    model_name: str
    baseline_model_name: str
    passes: bool
    reason: str
    promoted: bool
    run_id: str
    n_decisions: int
    notes: tuple[str, ...] = ()
