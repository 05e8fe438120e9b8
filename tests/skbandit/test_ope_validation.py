"""Off-policy evaluation on the simulated school, checked against the simulator's truth.

**Which truth.** Off-policy evaluation estimates ``V(pi) = mean_i sum_a pi(a | x_i) p(i, a)``:
the expected reward of the target's action *in the logged contexts* ``x_i``, where
``p(i, a)`` is the true success probability of item ``a`` for the student of decision ``i``
at that moment. The simulator knows it: ``p(i, a) = p_correct_2pl(ability_before_i,
difficulty_true_a + hidden_effect_a, discrimination_true_a)`` (``ability_before`` is the
student's true ability on the decision's topic, from ``SimulatedSchool.truth``). Running
the target online in ``SchoolEnv`` gives a different number, because the target's choices
change what students learn and so every later context; OPE from a log cannot see that.
(For uniform and rule targets on seed 0 the two differ by less than 0.01: 0.662 vs 0.658
online for uniform, 0.622 vs 0.630 for the rule.)

**Design.** A school of 300 students over two months (about 11,600 events) is logged by
the rule+epsilon policy (epsilon = 0.1). A LinUCB pipeline learns the first half of the
events; every target is evaluated on the second half (about 5,800 decisions) with
IPS, SNIPS and DR (that pipeline as reward model), 500 bootstrap resamples, 95% intervals.

**What 30 seeds showed** (seeds 0-29 of this design; seeds 0-5 run here), intervals that
contain the truth per estimator, and the typical effective sample size (ESS):

- uniform random (ESS ~680): IPS 30/30, SNIPS 28/30, DR 28/30;
- rule-based greedy (ESS ~1100): IPS 26/30, SNIPS 27/30, DR 27/30;
- LinUCB target band, softmax T = 0.05 (ESS ~235): IPS 28/30, SNIPS 27/30, DR 27/30;
- LinUCB max success, softmax T = 0.05 (ESS ~30): IPS 29/30, SNIPS 24/30, DR 24/30;
- LinUCB max success, greedy (ESS ~9): IPS 28/30, SNIPS 19/30, DR 18/30.

The estimates are unbiased within noise: the mean error over the 30 seeds is below 0.007
for the first three targets, and the low-overlap IPS means (-0.03 and -0.04) are within
one standard error of their spread (sd 0.14 and 0.24 per seed). With
adequate overlap the intervals cover about 92% (248 of 270). With an effective sample size
of a few dozen the percentile-bootstrap intervals of SNIPS and DR are too narrow (63-80%),
while the wide IPS intervals still cover; the estimators flag those cases with a low-overlap
warning, and the promotion gate (``train.evaluate.compare.job``) refuses them via ``--min-ess``.
"""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chisquare

from skbandit import schema
from skbandit.context import historical_contexts
from skbandit.model import TrainedModel
from skbandit.ope import decisions as logged_decisions
from skbandit.ope import targets as ope_targets
from skbandit.policy import action_probabilities, rank_linucb
from skbandit.ranking_settings import RankingSettings
from skbandit.request_ranking import rank_requests
from skbandit.sim.generate import DECISION_ID, SchoolConfig, simulate_school
from tests.support.simulated_truth import true_success

SEEDS = range(6)
N_BOOTSTRAP = 500
ESTIMATORS = ("ips", "snips", "dr")
DRAWS = 2000


def school_config(seed):
    return SchoolConfig(
        n_students=300,
        seed=seed,
        start_date="2023-09-05",
        end_date="2023-11-10",
        attempts_per_student=40,
    )


def trained_on_first_half(school, contexts):
    half = len(school.events) // 2
    pipeline = TrainedModel()
    pipeline.partial_fit(contexts.iloc[:half], school.events[schema.CORRECT].to_numpy()[:half])
    return pipeline, np.arange(half, len(school.events))


@pytest.fixture(scope="module")
def school():
    school = simulate_school(school_config(0))
    return school, historical_contexts(school.events, school.items)


# --- plain identities on the real simulated history ----------------------------------------


def test_rebuilt_decisions_reproduce_the_logging_policy_exactly(school):
    """Target = logging policy: pi(a_i|x_i) is the logged propensity, so w = 1 everywhere."""
    school, contexts = school
    config = school.config
    inputs = ope_targets.off_policy_inputs(
        school.events,
        school.items,
        ope_targets.logging_policy(config.epsilon, config.top_k),
        contexts=contexts,
    )
    np.testing.assert_allclose(inputs.target_propensity, inputs.logged_propensity, rtol=1e-12)
    logged_mean = school.events[schema.CORRECT].mean()
    assert inputs.estimate("ips", n_bootstrap=0).value == pytest.approx(logged_mean, rel=1e-12)
    assert inputs.estimate("snips", n_bootstrap=0).value == pytest.approx(logged_mean, rel=1e-12)


def test_rebuilt_logged_rows_match_historical_contexts_and_truth(school):
    school, contexts = school
    truth = true_success(school)
    for chunk in logged_decisions.logged_decisions(
        school.events, school.items, contexts=contexts, chunk_rows=20_000
    ):
        logged = chunk[chunk[logged_decisions.IS_LOGGED]]
        assert logged[logged_decisions.EVENT_ROW].is_unique
        rows = logged[logged_decisions.EVENT_ROW].to_numpy()
        expected = contexts.iloc[rows].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            logged[list(schema.MODEL_INPUT)].reset_index(drop=True),
            expected[list(schema.MODEL_INPUT)],
        )
        np.testing.assert_allclose(truth(logged), school.truth["p_true"].to_numpy()[rows])


def test_every_logged_item_is_a_candidate_and_uniform_is_one_over_k(school):
    school, contexts = school
    inputs = ope_targets.off_policy_inputs(
        school.events, school.items, ope_targets.uniform_policy(), contexts=contexts
    )
    np.testing.assert_allclose(inputs.target_propensity, 1.0 / inputs.n_candidates)
    assert inputs.match is None  # a randomising target has no replay


def test_chunking_does_not_change_the_inputs(school):
    school, contexts = school
    pipeline, rows = trained_on_first_half(school, contexts)
    policy = ope_targets.linucb_policy(pipeline, RankingSettings(exploration="softmax"))
    model = ope_targets.linucb_reward_model(pipeline)
    big, small = (
        ope_targets.off_policy_inputs(
            school.events,
            school.items,
            policy,
            reward_model=model,
            contexts=contexts,
            rows=rows,
            chunk_rows=size,
        )
        for size in (2**19, 20_000)
    )
    for name in ("target_propensity", "reward_model_logged", "reward_model_target"):
        np.testing.assert_allclose(getattr(big, name), getattr(small, name), rtol=1e-12)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"exploration": "softmax"},
        {"objective": "target_band", "exploration": "softmax", "temperature": 0.02},
        {"epsilon": 0.2},
        {"objective": "target_band", "exploration": "softmax", "epsilon": 0.1},
    ],
)
def test_vectorised_target_equals_action_probabilities_per_decision(school, settings):
    school, contexts = school
    pipeline, _ = trained_on_first_half(school, contexts)
    chunk = next(
        logged_decisions.logged_decisions(
            school.events, school.items, contexts=contexts, rows=[10, 500, 2000, 4000, 7000]
        )
    )
    settings = RankingSettings(**settings)
    probs = ope_targets.linucb_policy(pipeline, settings)(chunk)
    for rows in chunk.groupby(DECISION_ID).groups.values():
        one = chunk.loc[rows].reset_index(drop=True)
        np.testing.assert_allclose(
            probs[rows], action_probabilities(pipeline, one, settings), rtol=1e-9, atol=1e-15
        )


def test_deterministic_target_supports_replay(school):
    school, contexts = school
    inputs = ope_targets.off_policy_inputs(
        school.events, school.items, ope_targets.rule_policy(), contexts=contexts
    )
    assert inputs.match is not None
    np.testing.assert_array_equal(inputs.match, inputs.target_propensity == 1.0)
    assert inputs.estimate("replay", n_bootstrap=0).n == len(school.events)


# --- propensities returned by the ranking functions (issue 6, section 2) -------------------


def test_ranking_propensities_are_the_first_and_later_slot_probabilities(school):
    school, contexts = school
    pipeline, _ = trained_on_first_half(school, contexts)
    chunk = next(
        logged_decisions.logged_decisions(
            school.events, school.items, contexts=contexts, rows=[3000]
        )
    )
    candidates = chunk.drop(columns=[logged_decisions.IS_LOGGED]).reset_index(drop=True)
    settings = RankingSettings(
        exploration="softmax", temperature=0.02, objective="target_band", top_k=2
    )
    first = action_probabilities(pipeline, candidates, settings)
    rng = np.random.default_rng(5)
    position = pd.Series(np.arange(len(candidates)), index=candidates[schema.ITEM_ID])
    counts = np.zeros(len(candidates))
    for _ in range(DRAWS):
        ranked = rank_linucb(pipeline, candidates, settings, rng=rng)
        j, k = position[ranked[schema.ITEM_ID]].to_numpy()
        counts[j] += 1
        assert ranked[schema.PROPENSITY].iloc[0] == pytest.approx(first[j])
        assert ranked[schema.PROPENSITY].iloc[1] == pytest.approx(first[k] / (1 - first[j]))
    big = first * DRAWS >= 5  # chi-square needs expected counts of at least 5 per cell
    observed = np.r_[counts[big], counts[~big].sum()]
    expected = np.r_[first[big], first[~big].sum()] * DRAWS
    assert chisquare(observed, expected).pvalue > 0.001
    served = rank_requests(pipeline, candidates, settings, rng=np.random.default_rng(1))
    top = served[served[schema.RANK] == 1]
    assert top[schema.PROPENSITY].iloc[0] == pytest.approx(first[top.index[0]])


# --- coverage of the simulator's truth ------------------------------------------------------


@pytest.fixture(scope="module")
def coverage():
    """One row per (seed, target, estimator): truth, estimate, interval, ESS, warning."""
    rows = []
    for seed in SEEDS:
        school = simulate_school(school_config(seed))
        contexts = historical_contexts(school.events, school.items)
        pipeline, evaluate = trained_on_first_half(school, contexts)
        targets = {
            "uniform": ope_targets.uniform_policy(),
            "rule": ope_targets.rule_policy(),
            "linucb_band_softmax": ope_targets.linucb_policy(
                pipeline,
                RankingSettings(objective="target_band", exploration="softmax", temperature=0.05),
            ),
            "linucb_softmax": ope_targets.linucb_policy(
                pipeline, RankingSettings(exploration="softmax", temperature=0.05)
            ),
        }
        for name, policy in targets.items():
            inputs = ope_targets.off_policy_inputs(
                school.events,
                school.items,
                policy,
                reward_model=ope_targets.linucb_reward_model(pipeline),
                expectations={"truth": true_success(school)},
                contexts=contexts,
                rows=evaluate,
            )
            truth = inputs.expectations["truth"].mean()
            for estimator in ESTIMATORS:
                est = inputs.estimate(estimator, n_bootstrap=N_BOOTSTRAP, rng=seed)
                rows.append(
                    {
                        "seed": seed,
                        "target": name,
                        "estimator": estimator,
                        "truth": truth,
                        "value": est.value,
                        "low": est.ci_low,
                        "high": est.ci_high,
                        "ess": est.effective_sample_size,
                        "warning": est.warning,
                    }
                )
    frame = pd.DataFrame(rows)
    frame["covered"] = (frame["low"] <= frame["truth"]) & (frame["truth"] <= frame["high"])
    return frame


ADEQUATE = ["uniform", "rule", "linucb_band_softmax"]


@pytest.mark.slow
def test_intervals_cover_the_truth_with_adequate_overlap(coverage):
    """Seeds 0-5 cover 47 of 54 (30 seeds: 92%). Binomial(54, 0.92) falls below 44 with
    probability about 0.3%; each target/estimator pair must cover at least 4 of 6."""
    adequate = coverage[coverage["target"].isin(ADEQUATE)]
    assert (adequate["ess"] > 100).all()
    assert adequate["covered"].sum() >= 44, adequate.loc[~adequate["covered"]]
    per_pair = adequate.groupby(["target", "estimator"])["covered"].sum()
    assert (per_pair >= 4).all(), per_pair


@pytest.mark.slow
def test_estimates_show_no_bias_beyond_noise(coverage):
    """Per target and estimator, the mean error over the 6 seeds is within 4.03 standard
    errors (the two-sided 99% point of Student's t with 5 degrees of freedom)."""
    adequate = coverage[coverage["target"].isin(ADEQUATE)]
    error = (adequate["value"] - adequate["truth"]).groupby(
        [adequate["target"], adequate["estimator"]]
    )
    t = error.mean() / (error.std() / np.sqrt(error.count()))
    assert (t.abs() < 4.03).all(), t


@pytest.mark.slow
def test_low_overlap_is_flagged_and_ips_still_covers(coverage):
    """A sharp softmax (ESS ~30 of ~5,800) warns; its wide IPS interval covers 6 of 6."""
    sharp = coverage[coverage["target"] == "linucb_softmax"]
    assert sharp["warning"].str.contains("effective sample size").all()
    assert (sharp["ess"] < 100).all()
    assert sharp.loc[sharp["estimator"] == "ips", "covered"].sum() >= 5
