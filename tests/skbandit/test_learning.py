"""Learning models of the simulator, the held-out post-test and the learning-progress objective."""

import numpy as np
import pytest
from scipy.special import expit

from skbandit.exceptions import SkbanditError
from skbandit.learning_progress import PendingRewards, ProgressBands, delayed_rewards
from skbandit.sim.env import SchoolEnv
from skbandit.sim.learning import LEARNING_SCENARIOS, StudentLearning, expected_gain
from skbandit.sim.world import SchoolConfig
from skbandit.study.posttest import make_test_form, posttest_gain

WINTER = {"start_date": "2024-01-08", "end_date": "2024-01-19"}


def _play(config, steps=None):
    """Run the rule-free 'first candidate' policy; return the env and its step outcomes."""
    env, outcomes = SchoolEnv(config), []
    while not env.done and (steps is None or len(outcomes) < steps):
        cands = env.candidate_arrays(columns=())
        first = np.searchsorted(cands.decision, np.arange(cands.n_decisions))
        outcomes.append(env.step_indices(cands.item[first]))
    return env, outcomes


@pytest.mark.parametrize("model", ["performance_factors", "additive_factors"])
def test_env_applies_the_configured_learning_model(model):
    config = SchoolConfig(n_students=30, seed=1, learning_model=model, **WINTER)
    _, outcomes = _play(config, steps=300)
    gain = np.concatenate([o.ability_after - o.ability_before for o in outcomes])
    correct = np.concatenate([o.correct for o in outcomes])
    if model == "additive_factors":
        np.testing.assert_allclose(gain, config.learning_rate)
    else:
        np.testing.assert_allclose(gain, np.where(correct, config.gain_correct, config.gain_wrong))
        assert correct.any() and not correct.all()


def test_knowledge_tracing_learns_each_topic_at_most_once_with_guess_and_slip():
    config = SchoolConfig(
        n_students=30, seed=1, learning_model="knowledge_tracing", bkt_transit=0.3, **WINTER
    )
    env, outcomes = _play(config)
    jumps = np.concatenate([o.ability_after - o.ability_before for o in outcomes])
    assert set(np.unique(np.round(jumps, 9))) == {0.0, config.bkt_step}
    learned = env.ability - env.world.ability0
    assert set(np.unique(np.round(learned, 9))) <= {0.0, config.bkt_step}  # never twice
    p = np.concatenate([o.p_true for o in outcomes])
    assert p.min() >= config.bkt_guess and p.max() <= 1 - config.bkt_slip


def test_forgetting_halves_the_gains_over_one_half_life():
    config = SchoolConfig(forgetting_half_life_days=10.0)
    learning = StudentLearning(np.zeros((2, 1)), config)
    student, topic = np.array([0, 1]), np.array([0, 0])
    learning.learn(student, topic, np.array([0.7, 0.7]), np.array([True, True]), np.zeros(2))
    learning.touch(student, np.array([0.0, 0.0]))
    gained = learning.ability.copy()
    np.testing.assert_allclose(learning.abilities_at(10 * 86400.0), gained / 2)
    learning.forget(np.array([0]), np.array([20 * 86400.0]))
    np.testing.assert_allclose(learning.ability[:, 0], [gained[0, 0] / 4, gained[1, 0]])


def test_without_forgetting_abilities_do_not_decay():
    learning = StudentLearning(np.ones((1, 2)), SchoolConfig())
    learning.touch(np.array([0]), np.array([0.0]))
    np.testing.assert_array_equal(learning.abilities_at(1e9), np.ones((1, 2)))


def test_unknown_learning_model_is_a_skbandit_error():
    with pytest.raises(SkbanditError, match="unknown learning_model"):
        SchoolEnv(SchoolConfig(n_students=5, learning_model="magic"))


def test_every_scenario_builds_a_school():
    for overrides in LEARNING_SCENARIOS.values():
        SchoolConfig(n_students=3, **overrides)
        StudentLearning(np.zeros((1, 1)), SchoolConfig(**overrides))


def test_expected_gain_peaks_where_the_model_says():
    p = np.linspace(0.05, 0.95, 19)
    peak = SchoolConfig(learning_peak=0.5)
    assert p[np.argmax(expected_gain(p, peak))] == pytest.approx(0.5)
    pfa = SchoolConfig(learning_model="performance_factors", gain_correct=0.01, gain_wrong=0.05)
    assert np.all(np.diff(expected_gain(p, pfa)) < 0)  # errors teach more: harder is better
    assert np.ptp(expected_gain(p, SchoolConfig(learning_model="additive_factors"))) == 0


# --- post-test -----------------------------------------------------------------------------


def test_posttest_gain_counts_only_the_students_grade_topics():
    env = SchoolEnv(SchoolConfig(n_students=30, seed=4))
    world, form = env.world, make_test_form(env.world)
    start = world.ability0
    later = start.copy()
    grade7_topics = slice(8, 16)  # the second grade's topics in the default curriculum
    later[:, grade7_topics] += 1.0
    gain = posttest_gain(world, form, start, later)
    assert (gain[world.grade == 1] > 1.0).all()
    np.testing.assert_array_equal(gain[world.grade != 1], 0.0)
    assert (posttest_gain(world, form, start, start - 0.5) < 0).all()


def test_test_form_is_fixed_by_the_seed_and_leaves_the_school_unchanged():
    a = SchoolEnv(SchoolConfig(n_students=10, seed=3))
    b = SchoolEnv(SchoolConfig(n_students=10, seed=3))
    np.testing.assert_array_equal(
        make_test_form(a.world).difficulty, make_test_form(b.world).difficulty
    )
    other = make_test_form(SchoolEnv(SchoolConfig(n_students=10, seed=4)).world)
    assert not np.array_equal(make_test_form(a.world).difficulty, other.difficulty)


# --- learning progress -----------------------------------------------------------------------


def _progress_case(config, n_students=2000, n_steps=10, seed=0):
    """Students practise one topic; each decision's item sits exactly at the drawn target.

    By construction the item's true success equals the target and the observed mastery is
    the true success at the student's ability (an ideal observer), so only learning moves
    the later answers away from the prediction. Returns the bands after the run.
    """
    rng = np.random.default_rng(seed)
    bands, pending = ProgressBands(), PendingRewards(horizon=3)
    learning = StudentLearning(rng.normal(0.0, 0.5, (n_students, 1)), config)
    students, topic = np.arange(n_students), np.zeros(n_students, np.int64)
    for _ in range(n_steps):
        arm = bands.draw(n_students, rng)
        theta = learning.ability[:, 0].copy()
        difficulty = theta - np.log(bands.targets[arm] / (1 - bands.targets[arm]))
        p = expit(theta - difficulty)
        correct = rng.random(n_students) < p
        finished = pending.observe(
            students, topic, correct.astype(float), difficulty, np.ones(n_students)
        )
        bands.update(*finished)
        pending.add(students, topic, arm, expit(theta))
        learning.learn(students, topic, p, correct, rng.random(n_students))
    return bands


def test_learning_progress_finds_the_peak_where_learning_peaks():
    bands = _progress_case(SchoolConfig(learning_peak=0.5, learning_rate=0.3, learning_width=0.08))
    assert bands.best_target() == 0.5
    assert bands.targets[np.argmax(bands.count)] == 0.5  # and exploited it


def test_learning_progress_prefers_hard_items_when_errors_teach():
    bands = _progress_case(
        SchoolConfig(learning_model="performance_factors", gain_correct=0.0, gain_wrong=0.4)
    )
    mean, sd = bands.posterior()
    assert bands.best_target() <= 0.5  # expected gain 0.4 (1 - p): the hardest targets
    assert mean[0] - mean[-1] > 3 * np.hypot(sd[0], sd[-1])


def test_learning_progress_sees_no_clear_difference_under_additive_factors():
    bands = _progress_case(SchoolConfig(learning_model="additive_factors", learning_rate=0.2))
    mean, sd = bands.posterior()
    assert np.ptp(mean) < 4 * sd.max()


def test_delayed_rewards_from_logged_events_match_the_online_tracker():
    rng = np.random.default_rng(1)
    n = 60
    student, topic = rng.integers(0, 3, n), rng.integers(0, 2, n)
    correct, mastery = rng.random(n) < 0.6, rng.uniform(0.2, 0.9, n)
    b, a = rng.normal(0, 1, n), rng.uniform(0.5, 2, n)
    offline = delayed_rewards(student, topic, correct, mastery, b, a, horizon=2)
    pending, online = PendingRewards(horizon=2), np.full(n, np.nan)
    for i in range(n):  # one attempt per step; the arm is the attempt's row number
        arms, rewards = pending.observe(
            student[i : i + 1],
            topic[i : i + 1],
            correct[i : i + 1].astype(float),
            b[i : i + 1],
            a[i : i + 1],
        )
        online[arms] = rewards
        pending.add(student[i : i + 1], topic[i : i + 1], np.array([i]), mastery[i : i + 1])
    np.testing.assert_allclose(online, offline)
