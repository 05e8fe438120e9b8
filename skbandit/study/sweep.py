"""The sweep: every learning model x policies x seeds, summarised per learning model.

The study's conclusions must hold whatever the simulated students' learning model is, so
the sweep runs the same policies on the same seeds (common random numbers within a
learning model) under every scenario of :data:`skbandit.sim.learning.LEARNING_SCENARIOS`
and reports, per (learning model, policy), the held-out post-test gain with a 95 %
t-interval over schools (seeds), the paired difference to the rule, the share of the
rule-to-learning-oracle gap the policy closes, and the success rate.

No setting is tuned: LinUCB's ``alpha`` (1.0) and the target band's and the IRT rule's
target (0.7) are fixed in advance; the learning-progress objective learns its target online
(``linucb_progress``) or, as served, from a rule-logged history of a school that is never
reported (``linucb_progress_served``, seeds offset by
:data:`skbandit.study.history.HISTORY_SEED_OFFSET`), so nothing is chosen on the reported
seeds.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit.exceptions import SkbanditError
from skbandit.sim.learning import LEARNING_SCENARIOS
from skbandit.study.config import POLICIES, StudyConfig
from skbandit.study.runner import _sorted, confidence_interval, run_one

SWEEP_POLICIES = (
    "oracle_learning",
    "oracle",
    "oracle_achievable",
    "experiment_served",
    "experiment_argmax",
    "linucb_experiment_served",
    "experiment_on",
    "linucb_progress",
    "linucb_progress_served",
    "linucb_target_band",
    "linucb_default",
    "irt_target",
    "rule",
    "thompson",
    "random",
)
"""Policies of the sweep, in table order."""
SWEEP_ORACLES = ("oracle", "oracle_learning", "oracle_achievable")


@dataclass(frozen=True)
class SweepConfig:
    """What the sweep runs (defaults: the documented sweep).

    Parameters
    ----------
    learning : tuple of str
        Scenario names from :data:`~skbandit.sim.learning.LEARNING_SCENARIOS`.
    policies : tuple of str
        Names from :data:`~skbandit.study.config.POLICIES`; ``rule`` and
        ``oracle_learning`` are needed for the paired and gap columns.
    seeds : tuple of int
        One school per seed (the same schools under every learning model).
    n_students, days, alpha, target, n_jobs
        As in :class:`~skbandit.study.config.StudyConfig`.
    history_students, experiment_share
        The target experiment's history schools (:mod:`skbandit.study.experiment`).
    null_seeds : int
        Null-world history schools behind the design bias
        (:func:`skbandit.study.experiment.design_bias`).
    """

    learning: tuple[str, ...] = tuple(LEARNING_SCENARIOS)
    policies: tuple[str, ...] = SWEEP_POLICIES
    seeds: tuple[int, ...] = tuple(range(20))
    n_students: int = 300
    days: int | None = 30
    alpha: float = 1.0
    target: float = 0.7
    n_jobs: int = 2
    history_students: int = 1200
    experiment_share: float = 1.0
    null_seeds: int = 10

    def study(self, learning: str, design_bias=(), served_targets=()) -> StudyConfig:
        """The study of one learning model (with the experiment's bias and targets)."""
        return StudyConfig(
            n_students=self.n_students,
            seeds=self.seeds,
            days=self.days,
            alpha=self.alpha,
            target=self.target,
            policies=self.policies,
            n_bins=4,
            n_jobs=1,
            learning=learning,
            history_students=self.history_students,
            experiment_share=self.experiment_share,
            design_bias=tuple(design_bias),
            served_targets=tuple(served_targets),
        )


def quick_sweep_config() -> SweepConfig:
    """CI-sized: 3 learning models, 2 seeds, 40 students, 10 school days."""
    return SweepConfig(
        learning=("peak_0.7", "pfa_errors", "additive"),
        seeds=(0, 1),
        n_students=40,
        days=10,
        n_jobs=1,
        history_students=150,
        null_seeds=2,
    )


@dataclass
class SweepResult:
    """``runs``: one row per (learning, policy, seed); ``table``: one row per (learning,
    policy) (:func:`sweep_table`); ``experiment``: the target experiment's side
    (:class:`skbandit.study.teaching.ExperimentOutcome`, None when no experiment policy
    ran)."""

    runs: pd.DataFrame
    table: pd.DataFrame
    config: SweepConfig
    experiment: object = None


def run_sweep(config: SweepConfig | None = None, on_done=None) -> SweepResult:
    """Run every (learning model, policy, seed); ``on_done(learning, policy, seed)`` per run."""
    config = config or SweepConfig()
    _check(config)
    experiment = _run_experiment(config)
    tasks = [
        (learning, name, seed)
        for learning in config.learning
        for name in config.policies
        for seed in config.seeds
    ]
    tasks.sort(key=lambda task: not task[1].startswith("linucb"))  # slowest first
    studies = {
        learning: config.study(learning, *experiment.study_inputs(learning))
        if experiment is not None
        else config.study(learning)
        for learning in config.learning
    }
    if config.n_jobs == 1:
        outputs = (run_one(name, seed, studies[learning]) for learning, name, seed in tasks)
    else:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=config.n_jobs, return_as="generator_unordered")
        outputs = parallel(
            delayed(run_one)(name, seed, studies[learning]) for learning, name, seed in tasks
        )
    rows = []
    for metrics, _ in outputs:
        rows.append(metrics)
        if on_done is not None:
            on_done(metrics["learning"], metrics["policy"], metrics["seed"])
    runs = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(config.learning)}
    runs = _sorted(runs, ["policy", "seed"], config.policies)
    runs = runs.sort_values(
        "learning", key=lambda col: col.map(order), kind="stable", ignore_index=True
    )
    return SweepResult(runs, sweep_table(runs), config, experiment)


def _run_experiment(config: SweepConfig):
    """The design bias and every school's identified target, when a policy needs them."""
    from skbandit.study.teaching import EXPERIMENT_POLICIES, run_experiment

    if not set(config.policies) & set(EXPERIMENT_POLICIES):
        return None
    return run_experiment(config)


def sweep_table(runs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """One row per (learning, policy): post-test gain, paired gain vs rule, gap closed, success.

    Columns: ``learning, policy, posttest, posttest_low, posttest_high, vs_rule,
    vs_rule_low, vs_rule_high, gap_closed, success_rate, success_low, success_high,
    n_seeds``. ``gap_closed = (policy - rule) / (oracle_learning - rule)`` on the mean
    post-test gains (NaN without both, or when the oracle does not beat the rule).
    """
    out = []
    for learning, group in runs.groupby("learning", sort=False):
        by = group.set_index(["policy", "seed"])["posttest_end"]
        policies = group["policy"].unique()
        rule = by.loc["rule"] if "rule" in policies else None
        oracle_gap = (
            by.loc["oracle_learning"].mean() - rule.mean()
            if rule is not None and "oracle_learning" in policies
            else np.nan
        )
        for name in policies:
            mine = by.loc[name]
            gain = confidence_interval(mine, level)
            paired = (
                confidence_interval((mine - rule).dropna(), level)
                if rule is not None
                else (np.nan,) * 4
            )
            success = confidence_interval(group.loc[group["policy"] == name, "success_rate"], level)
            gap = paired[0] / oracle_gap if oracle_gap > 0 else np.nan
            out.append((learning, name, *gain[:3], *paired[:3], gap, *success[:3], gain[3]))
    return pd.DataFrame(
        out,
        columns=[
            "learning",
            "policy",
            "posttest",
            "posttest_low",
            "posttest_high",
            "vs_rule",
            "vs_rule_low",
            "vs_rule_high",
            "gap_closed",
            "success_rate",
            "success_low",
            "success_high",
            "n_seeds",
        ],
    )


def best_non_oracle(table: pd.DataFrame) -> pd.DataFrame:
    """Per learning model, the non-oracle policy with the highest mean post-test gain."""
    rest = table[~table["policy"].isin(SWEEP_ORACLES)]
    return rest.loc[rest.groupby("learning", sort=False)["posttest"].idxmax()]


def _check(config: SweepConfig) -> None:
    unknown = [name for name in config.learning if name not in LEARNING_SCENARIOS]
    if unknown:
        raise SkbanditError(
            f"unknown learning scenarios {unknown} (expected names from "
            f"{tuple(LEARNING_SCENARIOS)})"
        )
    bad = [name for name in config.policies if name not in POLICIES]
    if bad:
        raise SkbanditError(f"unknown policies {bad} (expected names from {POLICIES})")
    if not config.seeds or config.n_students < 1:
        raise SkbanditError(
            f"the sweep needs at least 1 seed and 1 student; found "
            f"{len(config.seeds)} seeds and {config.n_students} students"
        )


__all__ = [
    "SWEEP_POLICIES",
    "SweepConfig",
    "SweepResult",
    "best_non_oracle",
    "quick_sweep_config",
    "run_sweep",
    "sweep_table",
]
