"""What the simulation study runs: the policy names and the study configuration."""

from dataclasses import dataclass

POLICIES = (
    "oracle",
    "oracle_learning",
    "linucb_default",
    "linucb_seed",
    "linucb_target_band",
    "linucb_progress",
    "linucb_progress_served",
    "irt_target",
    "rule",
    "thompson",
    "random",
)
"""Policy names understood by :func:`make_policy`, in the order of the study's tables."""


@dataclass(frozen=True)
class StudyConfig:
    """What the study runs (the defaults are the documented study, ~6 min on 2 cores).

    Parameters
    ----------
    n_students : int
        Students of every simulated school (``SchoolConfig(n_students, seed)``).
    seeds : tuple of int
        One school (and one outcome noise) per seed.
    days : int or None
        Stop after this many school days (None: the whole school year, 180 days).
    alpha, target : float
        LinUCB exploration width; target success of ``linucb_target_band``.
    policies : tuple of str
        Names from :data:`POLICIES`.
    n_bins : int
        Points of the learning and regret curves (bins of equally many decisions).
    n_jobs : int
        Runs in parallel (joblib processes; 1 runs in this process).
    learning : str
        How the simulated students learn: a name from
        :data:`skbandit.sim.learning.LEARNING_SCENARIOS` (default ``"peak_0.7"``, the
        default school).
    """

    n_students: int = 2000
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    days: int | None = None
    alpha: float = 1.0
    target: float = 0.7
    policies: tuple[str, ...] = POLICIES
    n_bins: int = 40
    n_jobs: int = 2
    learning: str = "peak_0.7"


def quick_study_config() -> StudyConfig:
    """A few-second study for tests and CI: 60 students, 15 school days, 2 seeds."""
    return StudyConfig(n_students=60, seeds=(0, 1), days=15, n_bins=10, n_jobs=1)
