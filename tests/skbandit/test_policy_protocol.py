"""One policy protocol: the frame rankings, the study's array policies and OPE's targets."""

import numpy as np
import pandas as pd
import pytest

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.model import TrainedModel
from skbandit.ope import targets
from skbandit.policy import action_probabilities, rank_linucb, rank_rule_based
from skbandit.policy_protocol import Policy, StochasticPolicy, draw_rows
from skbandit.ranking_policies import LinUCBRanking, RuleRanking
from skbandit.ranking_settings import RankingSettings
from skbandit.sim.env import DECISION_ID, SchoolEnv
from skbandit.sim.world import SchoolConfig
from skbandit.study.config import POLICIES, StudyConfig
from skbandit.study.policies import make_policy

SMALL = SchoolConfig(n_students=40, seed=2)


@pytest.fixture(scope="module")
def step():
    """One step of a small school: its candidate arrays and frame, and a trained model."""
    env = SchoolEnv(SMALL)
    frame = env.candidates()
    y = np.random.default_rng(0).integers(0, 2, len(frame)).astype(np.float64)
    pipeline = TrainedModel().partial_fit(frame, y)
    return env, env.candidate_arrays(), frame, pipeline


def _one_decision(frame):
    first = frame[DECISION_ID].iloc[0]
    return frame.loc[frame[DECISION_ID] == first].reset_index(drop=True)


@pytest.mark.parametrize("name", POLICIES)
def test_every_study_policy_is_a_policy_on_candidate_arrays(step, name):
    env, arrays, _, _ = step
    policy = make_policy(name, env, StudyConfig())
    assert isinstance(policy, Policy)
    rows = policy.choose(arrays, np.random.default_rng(1))
    np.testing.assert_array_equal(arrays.decision[rows], np.arange(arrays.n_decisions))


def test_every_target_policy_is_a_stochastic_policy_whose_draws_follow_its_probabilities(step):
    _, _, frame, pipeline = step
    softmax = RankingSettings(exploration="softmax", temperature=0.05)
    policies = {
        "linucb": targets.linucb_policy(pipeline, softmax),
        "rule": targets.rule_policy(),
        "uniform": targets.uniform_policy(),
        "logging": targets.logging_policy(0.3, 3),
    }
    ids = frame[DECISION_ID].to_numpy()
    starts = np.flatnonzero(np.r_[True, np.diff(ids) != 0])
    for name, policy in policies.items():
        assert isinstance(policy, StochasticPolicy), name
        probs = policy.probabilities(frame)
        np.testing.assert_array_equal(probs, policy(frame))
        rng = np.random.default_rng(2)
        counts = np.zeros(len(frame))
        n_draws = 600
        for _ in range(n_draws):
            rows = policy.choose(frame, rng)
            np.testing.assert_array_equal(ids[rows], ids[starts])
            counts[rows] += 1
        # the sd of a frequency is at most 0.5 / sqrt(600) = 0.020; 5 sd
        np.testing.assert_allclose(counts / n_draws, probs, atol=0.102, err_msg=name)


def test_the_rankings_are_stochastic_policies_that_choose_their_first_item(step):
    _, _, frame, pipeline = step
    candidates = _one_decision(frame)
    for settings in (RankingSettings(), RankingSettings(exploration="softmax", epsilon=0.2)):
        ranking = LinUCBRanking(pipeline, settings)
        assert isinstance(ranking, StochasticPolicy)
        np.testing.assert_array_equal(
            ranking.probabilities(candidates), action_probabilities(pipeline, candidates, settings)
        )
        for seed in range(5):
            (row,) = ranking.choose(candidates, np.random.default_rng(seed))
            first = rank_linucb(pipeline, candidates, settings, np.random.default_rng(seed))
            assert candidates[schema.ITEM_ID].iat[row] == first[schema.ITEM_ID].iat[0]
    rule = RuleRanking(top_k=3)
    assert isinstance(rule, StochasticPolicy)
    (row,) = rule.choose(candidates, np.random.default_rng(0))
    assert (
        candidates[schema.ITEM_ID].iat[row] == rank_rule_based(candidates, 3)[schema.ITEM_ID].iat[0]
    )
    assert rule.probabilities(candidates)[row] == 1.0 == rule.probabilities(candidates).sum()


def test_off_policy_evaluation_takes_any_stochastic_policy_and_refuses_other_things(step):
    _, _, frame, _ = step

    class FirstRow:  # no base class: the protocol is structural
        def probabilities(self, candidates):
            ids = candidates[DECISION_ID].to_numpy()
            return np.r_[True, ids[1:] != ids[:-1]].astype(np.float64)

        def choose(self, candidates, rng):
            return np.flatnonzero(self.probabilities(candidates))

    logged = np.r_[True, np.diff(frame[DECISION_ID].to_numpy()) != 0]
    sums = targets.TargetSums(frame[DECISION_ID].nunique(), FirstRow())
    sums.add(frame, logged.astype(np.float64))
    np.testing.assert_array_equal(sums.target, 1.0)
    with pytest.raises(SkbanditError, match="a target policy must give first-slot probabilities"):
        targets.TargetSums(3, "rule")


def test_draw_rows_never_picks_a_row_of_probability_zero():
    probs = np.array([0.0, 0.5, 0.5, 0.0, 0.0, 1.0])
    rows = np.stack(
        [draw_rows(probs, np.array([0, 3]), np.random.default_rng(s)) for s in range(200)]
    )
    assert set(rows[:, 0]) == {1, 2} and set(rows[:, 1]) == {5}
    assert pd.Series(rows[:, 0]).value_counts(normalize=True).min() > 0.4
