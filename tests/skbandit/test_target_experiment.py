"""The target experiment: stateless assignment with logged probabilities, and its history in
the simulated school."""

import numpy as np
import pandas as pd
import pytest

from skbandit.exceptions import SkbanditError
from skbandit.sim.env import SchoolEnv
from skbandit.sim.world import SchoolConfig
from skbandit.study.config import StudyConfig
from skbandit.study.experiment import (
    AssignedTargetPolicy,
    experiment_history,
    predicted_success,
)
from skbandit.study.runner import run_one
from skbandit.target_experiment import (
    ARMS,
    TARGET,
    TARGET_PROBABILITY,
    assign_targets,
    check_state,
    experiment_state,
)


def _pairs(n):
    users = np.array([f"U{i:05d}" for i in range(n)], dtype=object)
    return np.repeat(users, 3), np.tile(np.array(["a", "b", "c"], dtype=object), n)


def test_assignment_is_a_function_of_student_topic_and_seed():
    users, topics = _pairs(400)
    state = experiment_state(share=0.5, seed=3)
    first = assign_targets(state, users, topics)
    shuffled = np.random.default_rng(0).permutation(users.size)
    again = assign_targets(state, users[shuffled], topics[shuffled])
    assert (again[0] == first[0][shuffled]).all()  # any order, any process: same target
    other_seed = assign_targets(experiment_state(share=0.5, seed=4), users, topics)[0]
    assert (other_seed != first[0]).mean() > 0.3


def test_share_and_arms_follow_the_logged_probabilities():
    users, topics = _pairs(5000)
    state = experiment_state(share=0.3, seed=0)
    target, probability = assign_targets(state, users, topics)
    arms = np.array(ARMS)
    for arm in arms:
        share = (target == arm).mean()
        expected = 0.3 / arms.size + (0.7 if arm == 0.7 else 0.0)
        assert probability[target == arm] == pytest.approx(expected)
        assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / target.size)


def test_share_zero_serves_everyone_at_the_default_and_share_one_nobody():
    users, topics = _pairs(300)
    off = assign_targets(experiment_state(share=0.0), users, topics)
    assert (off[0] == 0.7).all() and (off[1] == 1.0).all()
    on = assign_targets(experiment_state(share=1.0, arms=(0.2, 0.9)), users, topics)
    assert set(on[0]) == {0.2, 0.9} and (on[1] == 0.5).all()


def test_bad_state_is_one_line_advice():
    with pytest.raises(SkbanditError, match="share must lie"):
        experiment_state(share=1.5)
    with pytest.raises(SkbanditError, match="success probabilities"):
        experiment_state(arms=(0.5, 1.0))
    with pytest.raises(SkbanditError, match="needs 'share'"):
        check_state({"arms": [0.5]})


def test_history_keeps_each_pairs_target_and_logs_its_probability():
    config = SchoolConfig(n_students=60, seed=1)
    log = experiment_history(config, 6, 60, experiment_state(share=0.5, seed=0))
    per_pair = log.groupby(["user_id", "topic"])[TARGET].nunique()
    assert (per_pair == 1).all()
    assert set(log[TARGET]) <= set(ARMS)
    at_default = log[TARGET] == 0.7
    expected = 0.5 / len(ARMS) + 0.5 * at_default  # the pairs outside are served at 0.7 too
    assert np.allclose(log[TARGET_PROBABILITY], expected)
    assert 0 < (~at_default).mean() < 0.5 + 0.1


def test_served_at_its_target_the_pair_gets_items_predicted_near_it():
    env = SchoolEnv(SchoolConfig(n_students=80, seed=2))
    policy = AssignedTargetPolicy(env, experiment_state(share=1.0, arms=(0.2, 0.97)))
    rng = np.random.default_rng(0)
    for _ in range(40):
        cands = env.candidate_arrays(columns=policy.columns)
        rows = policy.choose(cands, rng)
        p = predicted_success(cands)[rows]
        low = policy.last_target == 0.2
        if low.any() and (~low).any():
            assert p[low].mean() < p[~low].mean()
        env.step_indices(cands.item[rows])


def test_the_experiment_off_is_the_irt_rule_at_the_default():
    tiny = dict(n_students=30, seeds=(0,), days=5, n_bins=2, n_jobs=1)
    off, _ = run_one("experiment_on", 0, StudyConfig(**tiny, experiment_share=0.0))
    irt, _ = run_one("irt_target", 0, StudyConfig(**tiny))
    assert off["posttest_end"] == pytest.approx(irt["posttest_end"])


def _curves_state(rates):
    from skbandit.learning_curves import LearningCurves

    arms = (0.5, 0.7, 0.9)
    curves = LearningCurves(
        np.array(arms), np.array(rates), np.zeros(3), np.diag([1e-6] * 3), np.ones(3), 0.0
    )
    return {"experiment": experiment_state(arms=arms), "curves": curves.as_dict()}


def test_learning_progress_serves_the_identified_target_and_old_versions_their_bands():
    from skbandit.learning_progress import ProgressBands
    from skbandit.model import TrainedModel
    from skbandit.policy import resolve_objective
    from skbandit.ranking_settings import RankingSettings

    settings = RankingSettings(objective="learning_progress")
    teaching = TrainedModel()
    teaching.identified_target = _curves_state([0.01, 0.02, 0.05])
    assert resolve_objective(teaching, settings).target == 0.9
    undecided = TrainedModel()
    undecided.identified_target = _curves_state([0.02, 0.02, 0.0201])
    assert resolve_objective(undecided, settings).target == 0.7  # stays at the default
    old = TrainedModel()
    old.progress_bands = ProgressBands()
    old.progress_bands.update(np.array([1, 1]), np.array([0.5, 0.4]))
    assert resolve_objective(old, settings).target == 0.5


def test_a_version_keeps_its_identified_target_through_its_state_and_refuses_a_malformed_one():
    from skbandit.exceptions import SkbanditError
    from skbandit.model import TrainedModel
    from skbandit.schema import MODEL_INPUT

    row = pd.DataFrame([dict.fromkeys(MODEL_INPUT, 0.5)])
    model = TrainedModel().partial_fit(row, [1.0])
    model.identified_target = _curves_state([0.01, 0.02, 0.05])
    again = TrainedModel.from_state(model.get_state())
    assert again.learned_target() == 0.9
    state = model.get_state()
    state["identified_target"] = {"experiment": {"share": 2}}
    with pytest.raises(SkbanditError, match="identified_target is malformed"):
        TrainedModel.from_state(state)


def test_identified_state_fits_the_logged_attempts_with_targets():
    from skbandit.target_experiment import identified_state, served_target

    state = experiment_state(share=1.0, arms=(0.5, 0.7, 0.9))
    log = experiment_history(SchoolConfig(n_students=80, seed=4), 8, 80, state)
    identified = identified_state(log, state)
    assert identified["curves"]["targets"] == [0.5, 0.7, 0.9]
    assert served_target(identified) in (0.5, 0.7, 0.9)
    assert identified_state(log.drop(columns=TARGET), state)["curves"] is None
