"""The sweep's teaching side: achievable oracle, experiment-driven policies, gap shares."""

import numpy as np
import pandas as pd
import pytest

from skbandit.study.config import StudyConfig
from skbandit.study.runner import run_one
from skbandit.study.sweep import SweepConfig, quick_sweep_config, run_sweep
from skbandit.study.teaching import experiment_markdown, gap_markdown, gap_shares

TINY = dict(n_students=40, seeds=(0,), days=8, n_bins=2, n_jobs=1)


def test_gap_shares_are_ratios_of_paired_means_with_bootstrap_intervals():
    seeds = np.arange(6)
    rows = []
    for name, gain in (("rule", 1.0), ("oracle_achievable", 2.0), ("oracle_learning", 3.0)):
        rows += [("x", name, s, gain + 0.1 * s) for s in seeds]  # same school effect
    rows += [("x", "p", s, 1.5 + 0.1 * s + (0.2 if s % 2 else -0.2)) for s in seeds]
    runs = pd.DataFrame(rows, columns=["learning", "policy", "seed", "posttest_end"])
    shares = gap_shares(runs).set_index("policy")
    assert shares.loc["p", "achievable"] == pytest.approx(0.5)  # 0.5 of the 1-point gap
    assert shares.loc["p", "full"] == pytest.approx(0.25)  # 0.5 of 2 points
    assert shares.loc["p", "achievable_low"] < 0.5 < shares.loc["p", "achievable_high"]
    assert shares.loc["oracle_achievable", "achievable_low"] == pytest.approx(1.0)
    assert "| x | p | +0.50 | 50% [" in gap_markdown(shares.reset_index())


def test_gap_shares_are_undefined_where_no_policy_can_beat_the_rule():
    runs = pd.DataFrame(
        [("null", name, s, 1.0) for name in ("rule", "oracle_achievable", "p") for s in (0, 1)],
        columns=["learning", "policy", "seed", "posttest_end"],
    )
    assert gap_shares(runs)["achievable"].isna().all()


def test_the_achievable_oracle_aims_where_the_learning_model_says():
    gains = {}
    for learning in ("pfa_errors", "peak_0.9"):
        config = StudyConfig(**TINY, learning=learning)
        achievable, _ = run_one("oracle_achievable", 0, config)
        gains[learning] = achievable["success_rate"]
        full, _ = run_one("oracle_learning", 0, config)
        rule, _ = run_one("rule", 0, config)
        # the oracle that sees only the deployed estimate teaches more than the rule, less
        # than the one that knows every true success probability
        assert rule["posttest_end"] < achievable["posttest_end"] <= full["posttest_end"] + 1e-9
    assert gains["pfa_errors"] < 0.5 < 0.8 < gains["peak_0.9"]  # hard items vs easy ones


def test_quick_sweep_runs_the_experiment_once_per_school():
    config = quick_sweep_config()
    policies = ("oracle_achievable", "experiment_served", "experiment_argmax", "rule")
    config = SweepConfig(**{**config.__dict__, "learning": ("pfa_errors",), "policies": policies})
    result = run_sweep(config)
    targets = result.experiment.targets
    assert len(targets) == len(config.seeds)
    assert set(targets["target"]) <= set(config.study("pfa_errors").experiment_arms)
    assert (targets["n_attempts"] > 0).all()
    assert "| pfa_errors |" in experiment_markdown(result.experiment)
    assert set(result.experiment.bias) == set(config.study("pfa_errors").experiment_arms)
