"""The learning-model sweep: post-test outcome, new baselines, the table and the command."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from skbandit.exceptions import SkbanditError
from skbandit.study.config import StudyConfig
from skbandit.study.runner import run_one
from skbandit.study.sweep import (
    SweepConfig,
    best_non_oracle,
    quick_sweep_config,
    run_sweep,
    sweep_table,
)

TINY = dict(n_students=30, seeds=(0,), days=8, n_bins=2, n_jobs=1)


def test_posttest_gain_is_zero_without_learning_and_grows_with_it():
    still, _ = run_one("rule", 0, StudyConfig(**TINY, learning="additive"))
    assert 0 < still["posttest_mid"] < still["posttest_end"]
    assert still["learning_gain"] > 0


def test_learning_oracle_beats_random_on_the_posttest_where_item_choice_matters():
    config = StudyConfig(**TINY, learning="peak_0.5")
    oracle, _ = run_one("oracle_learning", 0, config)
    random, _ = run_one("random", 0, config)
    assert oracle["posttest_end"] > random["posttest_end"]


def test_under_additive_factors_every_policy_teaches_the_same():
    config = StudyConfig(**TINY, learning="additive")
    gains = {
        name: run_one(name, 0, config)[0]["posttest_end"]
        for name in ("oracle_learning", "rule", "random")
    }
    # same attempts, same constant gain: the post-test cannot tell the policies apart
    assert np.ptp(list(gains.values())) < 1e-9


def test_sweep_table_pairs_with_the_rule_and_measures_the_gap():
    runs = pd.DataFrame(
        {
            "learning": ["x"] * 6,
            "policy": ["rule", "rule", "oracle_learning", "oracle_learning", "p", "p"],
            "seed": [0, 1] * 3,
            "posttest_end": [1.0, 2.0, 3.0, 4.0, 2.0, 3.0],
            "success_rate": [0.6] * 6,
        }
    )
    table = sweep_table(runs).set_index("policy")
    assert table.loc["p", "vs_rule"] == pytest.approx(1.0)
    assert table.loc["p", "gap_closed"] == pytest.approx(0.5)  # 1 of the oracle's 2
    assert table.loc["rule", "vs_rule"] == 0.0
    assert best_non_oracle(sweep_table(runs))["policy"].tolist() == ["p"]


def test_quick_sweep_runs_every_learning_model_policy_and_seed():
    config = quick_sweep_config()
    config = SweepConfig(
        **{**config.__dict__, "policies": ("oracle_learning", "rule", "linucb_progress")}
    )
    result = run_sweep(config)
    assert len(result.runs) == len(config.learning) * 3 * len(config.seeds)
    assert set(result.table["learning"]) == set(config.learning)
    assert result.table["posttest"].notna().all()


def test_bad_sweep_config_is_a_skbandit_error():
    with pytest.raises(SkbanditError, match="unknown learning scenarios"):
        run_sweep(SweepConfig(learning=("nope",)))


def test_sweep_command_logs_the_table_and_plot(evaluation_app, tmp_path):
    import mlflow

    from adapters.tracking import EVALUATION_EXPERIMENT

    out = tmp_path / "out"
    args = [
        "sweep",
        "--quick",
        "--learning",
        "peak_0.7,additive",
        "--seeds",
        "1",
        "--students",
        "20",
        "--days",
        "5",
        "--out-dir",
        str(out),
    ]
    result = CliRunner().invoke(evaluation_app, args)
    assert result.exit_code == 0, result.output
    assert "| peak_0.7 | rule |" in result.output
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs(
        [client.get_experiment_by_name(EVALUATION_EXPERIMENT).experiment_id]
    )
    assert run.data.params["learning"] == "peak_0.7,additive"
    assert "additive/rule/posttest" in run.data.metrics
    assert (out / "sweep.png").stat().st_size > 0
    assert pd.read_csv(out / "sweep.csv")["policy"].nunique() == len(SweepConfig().policies)


def test_sweep_command_bad_scenario_is_one_line_exit_1(evaluation_app):
    result = CliRunner().invoke(evaluation_app, ["sweep", "--quick", "--learning", "nope"])
    assert result.exit_code == 1
    assert "unknown learning scenarios ['nope']" in result.output
    assert "Traceback" not in result.output
