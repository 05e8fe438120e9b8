"""The simulation study: policies in the online school, metrics, and the ``simulate`` job."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from skbandit import irt, schema
from skbandit.exceptions import SkbanditError
from skbandit.policy import rank_linucb
from skbandit.ranking_settings import RankingSettings
from skbandit.sim.env import DECISION_ID, CandidateArrays, SchoolEnv
from skbandit.sim.world import SchoolConfig
from skbandit.study.choice import group_argmax
from skbandit.study.config import POLICIES, StudyConfig, quick_study_config
from skbandit.study.policies import LinUCBPolicy, ThompsonPolicy, make_policy
from skbandit.study.runner import RUN_METRICS, confidence_interval, run_study

SMALL = SchoolConfig(n_students=40, seed=2)


@pytest.fixture(scope="module")
def quick_study():
    return run_study(quick_study_config())


def _by_seed(study, metric):
    return study.runs.pivot(index="seed", columns="policy", values=metric)


def test_group_argmax_takes_each_groups_best_and_breaks_ties_at_random():
    score = np.array([0.1, 0.9, 0.9, 0.5, 0.2])
    group = np.array([0, 0, 0, 1, 1])
    picks = {tuple(group_argmax(score, group, 2, np.random.default_rng(s))) for s in range(40)}
    assert picks == {(1, 3), (2, 3)}


def test_group_argmax_refuses_a_decision_without_candidates():
    with pytest.raises(SkbanditError, match="at least one per decision"):
        group_argmax(np.ones(2), np.array([0, 2]), 3, np.random.default_rng(0))


def test_candidate_arrays_equal_the_public_candidate_frame():
    env, rng = SchoolEnv(SMALL), np.random.default_rng(0)
    policy = make_policy("random", env, StudyConfig())
    for _ in range(30):  # after some steps the contexts and item counts are not trivial
        step = env.candidate_arrays()
        env.step(env.world.item_ids[step.item[policy.choose(step, rng)]])
    step, frame = env.candidate_arrays(), env.candidates()
    np.testing.assert_array_equal(step.decision, frame[DECISION_ID])
    np.testing.assert_array_equal(env.world.item_ids[step.item], frame[schema.ITEM_ID])
    np.testing.assert_allclose(step.X, frame[list(schema.MODEL_INPUT)].to_numpy(np.float64))
    np.testing.assert_allclose(step.p_true, env.true_success_probability(frame))


@pytest.mark.parametrize("name", POLICIES)
def test_policies_only_choose_among_their_decisions_candidates(name):
    env, rng = SchoolEnv(SMALL), np.random.default_rng(1)
    policy = make_policy(name, env, StudyConfig())
    for _ in range(40):
        step, frame = env.candidate_arrays(), env.candidates()
        rows = policy.choose(step, rng)
        chosen = env.world.item_ids[step.item[rows]]
        allowed = frame.groupby(DECISION_ID)[schema.ITEM_ID].agg(set)
        assert all(item in allowed[d] for d, item in enumerate(chosen))
        outcome = env.step(chosen)  # the environment checks topic and drift again
        policy.update(step, rows, outcome[schema.CORRECT].to_numpy(np.float64))


@pytest.mark.parametrize("objective", ["max_success", "target_band"])
def test_linucb_policy_chooses_what_rank_linucb_ranks_first(objective):
    env, rng = SchoolEnv(SMALL), np.random.default_rng(2)
    policy = LinUCBPolicy("default", alpha=0.5, objective=objective)
    for _ in range(60):
        step = env.candidate_arrays()
        rows = policy.choose(step, rng)
        outcome = env.step(env.world.item_ids[step.item[rows]])
        policy.update(step, rows, outcome[schema.CORRECT].to_numpy(np.float64))
    step, frame = env.candidate_arrays(), env.candidates()
    rows = policy.choose(step, rng)
    for decision in range(step.n_decisions):
        ranked = rank_linucb(
            policy.model,
            frame[frame[DECISION_ID] == decision],
            RankingSettings(top_k=1, objective=objective),
            rng=np.random.default_rng(0),
        )
        assert ranked[schema.ITEM_ID].iloc[0] == env.world.item_ids[step.item[rows[decision]]]


def test_thompson_counts_each_items_own_successes_and_failures():
    step = CandidateArrays(
        decision=np.array([0, 0, 1, 1]),
        item=np.array([3, 5, 3, 7]),
        X=np.zeros((4, len(schema.MODEL_INPUT))),
        p_true=np.zeros(4),
        n_decisions=2,
    )
    policy = ThompsonPolicy(n_items=8)
    policy.update(step, np.array([0, 3]), np.array([1.0, 0.0]))
    policy.update(step, np.array([0, 2]), np.array([1.0, 1.0]))
    assert policy.successes.tolist() == [0, 0, 0, 3, 0, 0, 0, 0]
    assert policy.failures.tolist() == [0, 0, 0, 0, 0, 0, 0, 1]
    draws = np.array([policy.score(step, np.random.default_rng(s)) for s in range(200)])
    assert draws[:, 0].mean() > draws[:, 3].mean()  # Beta(4, 1) against Beta(1, 2)


def test_oracle_has_the_highest_success_rate_on_every_seed(quick_study):
    rate = _by_seed(quick_study, "success_rate")
    others = rate.drop(columns="oracle")
    assert (rate["oracle"].to_numpy()[:, None] >= others.to_numpy()).all(), rate


def test_oracle_regret_is_zero_and_random_regret_clearly_positive(quick_study):
    regret = _by_seed(quick_study, "regret_per_decision")
    assert (regret["oracle"] == 0).all()
    assert (regret["random"] > 0.1).all(), regret  # ~0.25 on these seeds
    assert (regret.to_numpy() >= 0).all()


def test_learning_oracle_teaches_most_and_max_success_oracle_least(quick_study):
    gain = _by_seed(quick_study, "learning_gain")
    assert (gain["oracle_learning"].to_numpy()[:, None] >= gain.to_numpy()).all(), gain
    assert (gain["oracle"].to_numpy()[:, None] <= gain.to_numpy()).all(), gain


def test_every_policy_plays_the_same_decisions_on_a_seed(quick_study):
    counts = _by_seed(quick_study, "n_decisions")
    assert (counts.nunique(axis=1) == 1).all()


def test_summary_has_an_interval_around_every_mean(quick_study):
    summary = quick_study.summary
    assert set(summary["policy"]) == set(POLICIES)
    assert set(RUN_METRICS) <= set(summary["metric"])
    assert (summary["n_seeds"] == 2).all()
    assert ((summary["ci_low"] <= summary["mean"]) & (summary["mean"] <= summary["ci_high"])).all()
    assert "success_rate_vs_rule" in set(summary.loc[summary["policy"] == "random", "metric"])


def test_curves_end_at_the_runs_totals(quick_study):
    last = quick_study.curves.sort_values("bin").groupby(["policy", "seed"]).last()
    runs = quick_study.runs.set_index(["policy", "seed"]).loc[last.index]
    np.testing.assert_allclose(last["cumulative_regret"], runs["cumulative_regret"])
    np.testing.assert_allclose(last["learning_gain"], runs["learning_gain"])
    np.testing.assert_array_equal(last["decisions"], runs["n_decisions"])


def test_curves_are_sorted_by_policy_seed_and_bin_whatever_the_finishing_order():
    config = StudyConfig(
        n_students=20, seeds=(5, 4), days=3, policies=("random", "rule"), n_bins=3, n_jobs=2
    )
    curves = run_study(config).curves
    keys = list(zip(curves["policy"], curves["seed"], curves["bin"], strict=True))
    assert keys == [(p, s, b) for p in ("random", "rule") for s in (4, 5) for b in range(3)]


def test_days_stops_the_year_after_that_many_school_days():
    from skbandit.sim.world import school_days
    from skbandit.study.runner import run_policy

    def decisions(days):
        env = SchoolEnv(SMALL)
        trace = run_policy(
            make_policy("random", env, StudyConfig()), env, np.random.default_rng(0), days
        )
        events, _ = env.history()
        return len(trace), events[schema.TIMESTAMP].max()

    (n3, last3), (n6, _) = decisions(3), decisions(6)
    assert 0 < n3 < n6
    assert last3 < school_days(SMALL)[3]


def test_same_config_gives_the_same_study():
    config = StudyConfig(
        n_students=20, seeds=(4,), days=5, policies=("linucb_seed", "thompson"), n_jobs=1
    )
    first, second = run_study(config), run_study(config)
    pd.testing.assert_frame_equal(first.runs, second.runs)


def test_confidence_interval_is_the_student_t_interval():
    mean, low, high, n = confidence_interval([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and mean - low == pytest.approx(high - mean)
    assert high - mean == pytest.approx(4.302653 * 1.0 / np.sqrt(3), rel=1e-6)
    assert np.isnan(confidence_interval([5.0])[1])


def test_bad_study_config_is_a_skbandit_error():
    with pytest.raises(SkbanditError, match="unknown policies"):
        run_study(StudyConfig(policies=("bandit",)))
    with pytest.raises(SkbanditError, match="days must be at least 1"):
        run_study(StudyConfig(days=0))


# --- the `simulate` command ------------------------------------------------------------


def test_simulate_command_logs_metrics_and_plots(evaluation_app, tmp_path):
    import mlflow

    from adapters.tracking import EVALUATION_EXPERIMENT

    out = tmp_path / "out"
    result = CliRunner().invoke(evaluation_app, ["simulate", "--quick", "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "rule-based (baseline)" in result.output and "cumulative regret" in result.output
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name(EVALUATION_EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id])
    metrics = run.data.metrics
    assert metrics["oracle/cumulative_regret"] == 0
    assert metrics["random/regret_per_decision"] > 0.1
    assert metrics["rule/success_rate_ci_low"] <= metrics["rule/success_rate"]
    assert run.data.params["n_students"] == "60" and run.data.params["seeds"] == "0,1"
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/regret.png", "plots/learning_curves.png"}
    assert (out / "regret.png").stat().st_size > 0 and (out / "summary.csv").exists()


@pytest.mark.parametrize("flag", ["--seeds", "--students", "--days"])
def test_simulate_command_bad_option_is_one_line_exit_1(evaluation_app, flag):
    result = CliRunner().invoke(evaluation_app, ["simulate", "--quick", flag, "0"])
    assert result.exit_code == 1
    assert f"{flag} must be at least 1; found 0" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["--help"], ["simulate", "--help"]])
def test_evaluate_help_does_not_import_the_heavy_libraries(args, help_in_fresh_interpreter):
    heavy = ("mlflow", "matplotlib", "skbandit.study.runner")
    printed, imported = help_in_fresh_interpreter("train.evaluate.cli", args, heavy)
    assert "simulate" in printed or "--quick" in printed
    assert imported == [], printed


def test_the_served_progress_policy_aims_at_a_target_logged_on_another_school():
    from skbandit.learning_progress import TARGETS
    from skbandit.study.history import RULE_TOP_K, _rule_epsilon, learned_target

    target = learned_target(SMALL, days=5)
    assert target in TARGETS and learned_target(SMALL, days=5) == target  # seeded
    policy = make_policy("linucb_progress_served", SchoolEnv(SMALL), StudyConfig(days=5))
    assert policy.settings.objective == "learning_progress" and policy.settings.target == target
    env, rng = SchoolEnv(SMALL), np.random.default_rng(0)
    in_top, n = 0, 0
    for _ in range(40):  # the logging rule: one of its 5 closest items, 10 % anything
        step = env.candidate_arrays()
        rows = _rule_epsilon(step, rng)
        assert (step.decision[rows] == np.arange(step.n_decisions)).all()
        distance = irt.rule_distance(step.column(schema.MASTERY), step.column(schema.DIFFICULTY))
        for d, row in enumerate(rows):
            mine = distance[step.decision == d]
            in_top += int((mine < distance[row]).sum() < RULE_TOP_K)
            n += 1
        env.step_indices(step.item[rows])
    assert 0.85 < in_top / n < 1.0
