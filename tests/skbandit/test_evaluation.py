"""Off-policy estimators: exact identities, coverage on a synthetic bandit, diagnostics, errors
(and the candidate-table lookups of ``skbandit.ope.decisions`` that feed them).

The synthetic bandit has 5 arms and 40 context types drawn uniformly; the success
probability of arm ``a`` in context ``m`` is ``expit(z_m . theta_a + b_a)``, so a policy's
true value is exactly ``mean_m sum_a pi(a|m) p(m, a)``. The logging policy is
epsilon-greedy (epsilon = 0.3) around a fixed rule, or uniform.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import expit, softmax

from skbandit.exceptions import SkbanditError
from skbandit.ope import bootstrap
from skbandit.ope import estimators as evaluation
from skbandit.ope.decisions import logged_action_probability, policy_expected_reward
from skbandit.ope.estimators import (
    PolicyValueEstimate,
    doubly_robust,
    estimate_all,
    estimates_frame,
    ips,
    replay,
    snips,
)

N_ARMS, N_CONTEXTS, EPSILON = 5, 40, 0.3


@dataclasses.dataclass(frozen=True)
class Bandit:
    p: np.ndarray  # (contexts, arms) true success probabilities
    rule: np.ndarray  # (contexts,) the logging rule's arm

    def epsilon_greedy(self, rule=None):
        rule = self.rule if rule is None else rule
        mu = np.full(self.p.shape, EPSILON / N_ARMS)
        mu[np.arange(N_CONTEXTS), rule] += 1 - EPSILON
        return mu

    def greedy_target(self):
        pi = np.zeros(self.p.shape)
        pi[np.arange(N_CONTEXTS), self.p.argmax(axis=1)] = 1.0
        return pi

    def value(self, pi):
        return float((pi * self.p).sum(axis=1).mean())

    def log(self, mu, n, seed):
        """Logged contexts, actions and 0/1 rewards under logging policy ``mu``."""
        rng = np.random.default_rng(seed)
        m = rng.integers(0, N_CONTEXTS, n)
        a = (rng.random(n)[:, None] > np.cumsum(mu[m], axis=1)).sum(axis=1)
        a = np.minimum(a, N_ARMS - 1)  # guards a cumsum that rounds below 1
        r = (rng.random(n) < self.p[m, a]).astype(np.float64)
        return m, a, r


@pytest.fixture(scope="module")
def bandit():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(N_CONTEXTS, 2))
    theta, b = rng.normal(size=(N_ARMS, 2)), rng.normal(0, 0.5, size=N_ARMS)
    return Bandit(p=expit(z @ theta.T + b), rule=(np.arange(N_CONTEXTS) * 3) % N_ARMS)


# --- hand-checkable values ---------------------------------------------------------------


def test_hand_computed_values():
    r, mu, pi = [1, 0, 0, 1], [0.5, 0.5, 0.25, 1.0], [1.0, 0.0, 0.5, 1.0]
    # weights 2, 0, 2, 1; weighted rewards 2, 0, 0, 1
    assert ips(r, mu, pi, n_bootstrap=0).value == pytest.approx(3 / 4)
    assert snips(r, mu, pi, n_bootstrap=0).value == pytest.approx(3 / 5)
    # q = 0.5 everywhere: 0.5 + w (r - 0.5) = 1.5, 0.5, -0.5, 1.0
    dr = doubly_robust(r, mu, pi, [0.5] * 4, [0.5] * 4, n_bootstrap=0)
    assert dr.value == pytest.approx(2.5 / 4)
    assert dr.effective_sample_size == pytest.approx(25 / 9)
    assert dr.max_weight == 2.0
    assert np.isnan(dr.ci_low) and np.isnan(dr.ci_high)
    rep = replay(r, [True, True, False, True], n_bootstrap=0)
    assert rep.value == pytest.approx(2 / 3)
    assert rep.effective_sample_size == 3.0


# --- identities ---------------------------------------------------------------------------

rewards_st = arrays(np.float64, st.integers(1, 60), elements=st.floats(-5, 5))


@settings(max_examples=50, deadline=None)
@given(rewards=rewards_st, data=st.data())
def test_ips_and_snips_of_the_logging_policy_are_the_logged_mean(rewards, data):
    mu = data.draw(arrays(np.float64, len(rewards), elements=st.floats(1e-3, 1.0)))
    assert ips(rewards, mu, mu, n_bootstrap=0).value == np.mean(rewards)
    assert snips(rewards, mu, mu, n_bootstrap=0).value == np.mean(rewards)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 60), reward=st.floats(-5, 5), data=st.data())
def test_snips_of_a_constant_reward_is_that_reward(n, reward, data):
    mu = data.draw(arrays(np.float64, n, elements=st.floats(1e-3, 1.0)))
    pi = data.draw(arrays(np.float64, n, elements=st.floats(0.0, 1.0)))
    pi[0] = max(pi[0], 0.5)  # at least one row with overlap, else snips is undefined
    estimate = snips(np.full(n, reward), mu, pi, n_bootstrap=20, rng=0)
    assert estimate.value == pytest.approx(reward, abs=1e-12)
    assert estimate.ci_low == pytest.approx(reward, abs=1e-12)
    assert estimate.ci_high == pytest.approx(reward, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(rewards=rewards_st, data=st.data())
def test_dr_with_a_zero_reward_model_is_ips(rewards, data):
    n = len(rewards)
    mu = data.draw(arrays(np.float64, n, elements=st.floats(1e-3, 1.0)))
    pi = data.draw(arrays(np.float64, n, elements=st.floats(0.0, 1.0)))
    dr = doubly_robust(rewards, mu, pi, np.zeros(n), np.zeros(n), n_bootstrap=50, rng=3)
    assert dataclasses.replace(dr, name="ips") == ips(rewards, mu, pi, n_bootstrap=50, rng=3)


def test_dr_with_a_perfect_model_of_deterministic_rewards_is_the_true_value(bandit):
    """Rewards equal q(x, a): the correction is 0, even with wrong propensities."""
    pi = softmax(4 * bandit.p, axis=1)
    m, a, _ = bandit.log(bandit.epsilon_greedy(), 3000, seed=1)
    rewards = bandit.p[m, a]
    wrong_mu = np.full(len(m), 0.5)
    q_target = (pi * bandit.p).sum(axis=1)[m]
    dr = doubly_robust(rewards, wrong_mu, pi[m, a], rewards, q_target, n_bootstrap=0)
    assert dr.value == pytest.approx(q_target.mean(), rel=1e-12)


def test_dr_with_a_perfect_model_is_tighter_than_ips(bandit):
    pi = softmax(4 * bandit.p, axis=1)
    mu = bandit.epsilon_greedy()
    m, a, r = bandit.log(mu, 3000, seed=2)
    truth = bandit.value(pi)
    q_target = (pi * bandit.p).sum(axis=1)[m]
    dr = doubly_robust(r, mu[m, a], pi[m, a], bandit.p[m, a], q_target, rng=0)
    ipw = ips(r, mu[m, a], pi[m, a], rng=0)
    assert dr.ci_low <= truth <= dr.ci_high
    assert dr.ci_high - dr.ci_low < 0.5 * (ipw.ci_high - ipw.ci_low)


# --- unbiasedness and coverage on the synthetic bandit --------------------------------------


def test_replay_is_unbiased_under_uniform_logging(bandit):
    """n = 20 000 uniform decisions, ~4 000 matches: within 4 binomial standard errors."""
    pi = bandit.greedy_target()
    m, a, r = bandit.log(np.full(bandit.p.shape, 1 / N_ARMS), 20_000, seed=3)
    estimate = replay(r, pi.argmax(axis=1)[m] == a, rng=0)
    truth = bandit.value(pi)
    standard_error = np.sqrt(truth * (1 - truth) / estimate.effective_sample_size)
    assert abs(estimate.value - truth) < 4 * standard_error
    assert estimate.ci_low <= truth <= estimate.ci_high


def test_replay_is_biased_when_logging_is_not_uniform_but_ips_is_not(bandit):
    """The rule agrees with the target where rewards are high, so matches over-sample them."""
    pi = bandit.greedy_target()
    best = pi.argmax(axis=1)
    high = bandit.p.max(axis=1) >= np.median(bandit.p.max(axis=1))
    mu = bandit.epsilon_greedy(np.where(high, best, (best + 1) % N_ARMS))
    m, a, r = bandit.log(mu, 20_000, seed=4)
    truth = bandit.value(pi)
    replayed = replay(r, best[m] == a, rng=0)
    weighted = ips(r, mu[m, a], pi[m, a], rng=0)
    assert replayed.ci_low > truth
    assert weighted.ci_low <= truth <= weighted.ci_high


@pytest.mark.parametrize("target", ["greedy", "softmax"])
def test_intervals_cover_the_true_value_for_most_seeds(bandit, target):
    """30 logs of 2 000 epsilon-greedy decisions; each 95 % interval covers in >= 25 of 30.

    At exact 95 % coverage, fewer than 25 hits has probability 1.6 %; the seeds are fixed.
    The percentile bootstrap under-covers IPS slightly for the greedy target (about 92 %
    over 200 seeds), which the margin allows.
    """
    pi = bandit.greedy_target() if target == "greedy" else softmax(4 * bandit.p, axis=1)
    mu = bandit.epsilon_greedy()
    truth = bandit.value(pi)
    # a reward model that is wrong by up to ~0.2: DR must stay unbiased through the weights
    q = np.clip(bandit.p + np.random.default_rng(99).normal(0, 0.1, bandit.p.shape), 0, 1)
    hits = {"ips": 0, "snips": 0, "dr": 0}
    rng = np.random.default_rng(2024)
    for seed in range(30):
        m, a, r = bandit.log(mu, 2000, seed=100 + seed)
        estimates = estimate_all(
            r,
            mu[m, a],
            pi[m, a],
            reward_model_logged=q[m, a],
            reward_model_target=(pi * q).sum(axis=1)[m],
            rng=rng,
        )
        for estimate in estimates:
            hits[estimate.name] += estimate.ci_low <= truth <= estimate.ci_high
    assert min(hits.values()) >= 25, hits


# --- bootstrap -------------------------------------------------------------------------------


def test_interval_contains_the_estimate_and_narrows_with_more_data(bandit):
    pi = softmax(4 * bandit.p, axis=1)
    mu = bandit.epsilon_greedy()
    widths = []
    for n in (500, 8000):
        m, a, r = bandit.log(mu, n, seed=5)
        for estimator in (ips, snips):
            estimate = estimator(r, mu[m, a], pi[m, a], rng=0)
            assert estimate.ci_low <= estimate.value <= estimate.ci_high
        widths.append(estimate.ci_high - estimate.ci_low)
    assert widths[1] < 0.5 * widths[0]  # 16x the data: about a quarter of the width


def test_bootstrap_is_reproducible_and_independent_of_the_chunk_size(bandit, monkeypatch):
    mu = bandit.epsilon_greedy()
    m, a, r = bandit.log(mu, 1000, seed=6)
    pi = bandit.greedy_target()[m, a]
    whole = snips(r, mu[m, a], pi, n_bootstrap=200, rng=7)
    assert snips(r, mu[m, a], pi, n_bootstrap=200, rng=np.random.default_rng(7)) == whole
    monkeypatch.setattr(bootstrap, "BOOTSTRAP_CHUNK_ELEMENTS", 3 * 1000 + 1)  # 3 rows/chunk
    assert snips(r, mu[m, a], pi, n_bootstrap=200, rng=7) == whole


def test_higher_confidence_gives_a_wider_interval(bandit):
    mu = bandit.epsilon_greedy()
    m, a, r = bandit.log(mu, 1000, seed=8)
    narrow = ips(r, mu[m, a], mu[m, a], confidence=0.5, rng=0)
    wide = ips(r, mu[m, a], mu[m, a], confidence=0.99, rng=0)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


# --- diagnostics --------------------------------------------------------------------------


def test_no_warning_with_full_overlap():
    mu = np.full(200, 0.2)
    assert ips(np.ones(200), mu, mu, n_bootstrap=10, rng=0).warning is None


def test_warning_on_an_exploding_weight():
    mu = np.full(200, 0.5)
    mu[0] = 0.005  # weight 1 / 0.005 = 200
    estimate = ips(np.ones(200), mu, np.ones(200), n_bootstrap=10, rng=0)
    assert estimate.max_weight == pytest.approx(200)
    assert "max importance weight 200" in estimate.warning


def test_warning_on_a_low_effective_sample_size():
    pi = np.zeros(200)
    pi[:5] = 1.0  # 5 rows carry all the weight: ESS 5 < 10 % of 200
    estimate = snips(np.ones(200), np.full(200, 0.5), pi, n_bootstrap=10, rng=0)
    assert estimate.effective_sample_size == pytest.approx(5)
    assert "effective sample size 5.0" in estimate.warning


def test_warning_counts_resamples_without_overlap():
    pi = np.zeros(100)
    pi[0] = 1.0  # one overlapping row: about 37 % of resamples miss it
    estimate = snips(np.ones(100), np.full(100, 0.5), pi, n_bootstrap=200, rng=0)
    assert "bootstrap resamples had no overlap" in estimate.warning
    assert estimate.ci_low == estimate.ci_high == 1.0


# --- estimate_all and the frame --------------------------------------------------------------


def test_estimate_all_orders_estimators_and_frames_them():
    r, mu, pi = np.array([1.0, 0, 1, 1]), np.full(4, 0.5), np.array([1.0, 0, 0, 1])
    estimates = estimate_all(
        r,
        mu,
        pi,
        match=pi == 1,
        reward_model_logged=np.zeros(4),
        reward_model_target=np.zeros(4),
        n_bootstrap=10,
        rng=0,
    )
    assert [e.name for e in estimates] == ["replay", "ips", "snips", "dr"]
    assert all(isinstance(e, PolicyValueEstimate) for e in estimates)
    frame = estimates_frame(estimates)
    assert list(frame.columns) == [f.name for f in dataclasses.fields(PolicyValueEstimate)]
    assert frame["value"].tolist() == [e.value for e in estimates]
    assert [e.name for e in estimate_all(r, mu, pi, n_bootstrap=0)] == ["ips", "snips"]


# --- candidate tables (skbandit.ope.decisions) --------------------------------------------


def test_logged_action_probability_recovers_the_logging_propensities(bandit):
    mu = bandit.epsilon_greedy()
    m, a, _ = bandit.log(mu, 500, seed=9)
    decisions = np.arange(500)
    table = pd.DataFrame(
        {
            "decision": np.repeat(decisions, N_ARMS),
            "item": np.tile(np.arange(N_ARMS), 500),
        }
    ).sample(frac=1.0, random_state=0)  # row order of the table must not matter
    table["prob"] = mu[m[table["decision"]], table["item"]]
    table["q"] = bandit.p[m[table["decision"]], table["item"]]
    got = logged_action_probability(table["decision"], table["item"], table["prob"], decisions, a)
    np.testing.assert_array_equal(got, mu[m, a])
    expected = policy_expected_reward(table["decision"], table["prob"], table["q"], decisions)
    np.testing.assert_allclose(expected, (mu * bandit.p).sum(axis=1)[m], rtol=1e-12)


def test_logged_item_outside_the_candidates_has_probability_zero():
    got = logged_action_probability(
        ["d1", "d1", "d2"], ["a", "b", "a"], [0.3, 0.7, 1.0], ["d2", "d1", "d1"], ["b", "b", "a"]
    )
    assert got.tolist() == [0.0, 0.7, 0.3]


@pytest.mark.parametrize(
    ("decisions", "items", "probs", "logged", "match"),
    [
        ([1, 1], ["a", "a"], [0.5, 0.5], [1], "appears twice"),
        ([1, 1], ["a", "b"], [0.6, 0.6], [1], "sum to 1.2"),
        ([1, 1], ["a", "b"], [0.5, 0.5], [2], "no candidate table"),
        ([1, 1], ["a", "b"], [0.5, -0.1], [1], r"must lie in \[0, 1\]"),
        ([1, 1], ["a"], [0.5, 0.5], [1], "expected \\(2,\\)"),
        ([1, 1], ["a", "b"], [0.5, 0.5], [], "is empty"),
    ],
)
def test_bad_candidate_tables_raise(decisions, items, probs, logged, match):
    with pytest.raises(SkbanditError, match=match):
        logged_action_probability(decisions, items, probs, logged, ["a"] * len(logged))


# --- input validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rewards", "mu", "pi", "match"),
    [
        ([], [], [], "is empty"),
        ([1, 0], [0.5], [0.5, 0.5], "has 1 entries but rewards has 2"),
        ([1, np.nan], [0.5, 0.5], [0.5, 0.5], "rewards has 1 missing"),
        ([1, 0], [0.5, 0.0], [0.5, 0.5], r"logged_propensity must lie in \(0, 1\]"),
        ([1, 0], [0.5, 1.5], [0.5, 0.5], r"logged_propensity must lie in \(0, 1\]"),
        ([1, 0], [0.5, 0.5], [-0.1, 0.5], r"target_propensity must lie in \[0, 1\]"),
        ([1, 0], [0.5, 0.5], [0.5, np.inf], "target_propensity has 1 missing or infinite"),
        ([[1, 0]], [0.5, 0.5], [0.5, 0.5], "one-dimensional"),
        (["yes", "no"], [0.5, 0.5], [0.5, 0.5], "must be numeric"),
    ],
)
@pytest.mark.parametrize("estimator", [ips, snips])
def test_bad_inputs_raise(estimator, rewards, mu, pi, match):
    with pytest.raises(SkbanditError, match=match):
        estimator(rewards, mu, pi)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ips([1], [1], [1], n_bootstrap=-1), "n_bootstrap must be"),
        (lambda: ips([1], [1], [1], n_bootstrap=2.5), "n_bootstrap must be"),
        (lambda: ips([1], [1], [1], confidence=1.0), "confidence must lie"),
        (lambda: snips([1, 0], [0.5, 0.5], [0, 0]), "no overlap"),
        (lambda: replay([1, 0], [False, False]), "none of the 2 rows match"),
        (lambda: replay([1, 0], [0, 2]), "must be boolean"),
        (lambda: doubly_robust([1], [1], [1], [0.5], [0.5, 0.5]), "reward_model_target has 2"),
        (lambda: estimate_all([1], [1], [1], reward_model_logged=[0.5]), "needs both"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(SkbanditError, match=match):
        call()


def test_errors_are_one_line():
    with pytest.raises(SkbanditError) as info:
        ips([1, 0], [0.5, 0.0], [0.5, 0.5])
    assert "\n" not in str(info.value)


def test_clustered_intervals_resample_whole_students():
    """Ten identical rows per student carry one student's worth of information: the
    student-resampling interval is about sqrt(10) times the row-resampling one."""
    rng = np.random.default_rng(3)
    per_student = rng.random(200) < 0.6
    rewards = np.repeat(per_student.astype(float), 10)
    students = np.repeat(np.arange(200), 10)
    propensity = np.full(len(rewards), 0.5)
    rows = evaluation.ips(rewards, propensity, propensity, n_bootstrap=2000, rng=1)
    clustered = evaluation.ips(
        rewards, propensity, propensity, n_bootstrap=2000, rng=1, clusters=students
    )
    assert clustered.value == rows.value
    ratio = (clustered.ci_high - clustered.ci_low) / (rows.ci_high - rows.ci_low)
    assert 2.5 < ratio < 3.8  # sqrt(10) = 3.16
    with pytest.raises(SkbanditError, match="one label per row"):
        evaluation.ips(rewards, propensity, propensity, clusters=students[:-1])


def test_student_resampled_intervals_do_not_depend_on_the_order_of_the_log():
    """The same decisions read back in another order (the log does not order ties) give the
    same intervals for the same seed: students are resampled in a fixed order."""
    from skbandit.ope.gate import paired_difference

    rng = np.random.default_rng(5)
    n = 600
    students = rng.choice([f"s{k}" for k in range(40)], n)
    rewards = (rng.random(n) < 0.6).astype(float)
    mu, target = rng.uniform(0.2, 0.9, n), rng.uniform(0.0, 1.0, n)
    shuffled = rng.permutation(n)

    def both(order):
        single = evaluation.ips(
            rewards[order], mu[order], target[order], rng=3, clusters=students[order]
        )
        terms = evaluation.estimator_terms("ips", rewards[order], mu[order], target[order])
        base = evaluation.estimator_terms("ips", rewards[order], mu[order], mu[order])
        paired = paired_difference(terms, base, students[order], estimator="ips", rng=3)
        return (single.ci_low, single.ci_high), (paired.ci_low, paired.ci_high)

    (single, paired), (single_shuffled, paired_shuffled) = both(np.arange(n)), both(shuffled)
    np.testing.assert_allclose(single_shuffled, single, rtol=1e-12)
    np.testing.assert_allclose(paired_shuffled, paired, rtol=1e-12)
