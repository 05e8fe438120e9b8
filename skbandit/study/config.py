"""What the simulation study runs: the policy names and the study configuration."""

from dataclasses import dataclass

from skbandit.target_experiment import ARMS

POLICIES = (
    "oracle",
    "oracle_learning",
    "linucb_default",
    "linucb_seed",
    "linucb_target_band",
    "linucb_progress",
    "linucb_progress_served",
    "oracle_achievable",
    "experiment_served",
    "experiment_argmax",
    "linucb_experiment_served",
    "experiment_on",
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
    history_students : int
        Students of the history school that runs the target experiment before
        ``experiment_served`` and ``linucb_experiment_served`` are run
        (:mod:`skbandit.study.experiment`).
    experiment_share, experiment_arms
        The target experiment (:func:`skbandit.target_experiment.experiment_state`, default
        target ``target``, seed 0): share of (student, topic) pairs in it and its arms;
        ``experiment_on`` runs it on the reported school (what it costs in learning).
    design_bias : tuple of (float, float)
        ``(target, bias)`` pairs subtracted from the identified rates
        (:func:`skbandit.study.experiment.design_bias`; the sweep measures them).
    served_targets : tuple of (int, float, float)
        ``(seed, safe target, highest-rate target)``: what each seed's experiment history
        identified, when already computed (the sweep does it once per school); a seed not
        listed is computed.
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
    history_students: int = 1200
    experiment_share: float = 1.0
    experiment_arms: tuple[float, ...] = ARMS
    design_bias: tuple[tuple[float, float], ...] = ()
    served_targets: tuple[tuple[int, float, float], ...] = ()

    def experiment(self) -> dict:
        """The target experiment's state (seed 0, default ``target``)."""
        from skbandit.target_experiment import experiment_state

        return experiment_state(self.experiment_share, self.experiment_arms, 0, self.target)


def quick_study_config() -> StudyConfig:
    """A few-second study for tests and CI: 60 students, 15 school days, 2 seeds."""
    return StudyConfig(n_students=60, seeds=(0, 1), days=15, n_bins=10, n_jobs=1)
