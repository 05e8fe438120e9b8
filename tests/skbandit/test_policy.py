"""Ranking policies: subsets, exploration flags, propensities, rule order, explanations."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skbandit import irt, policy, request_ranking, schema
from skbandit.exceptions import SkbanditError
from skbandit.explanations import explain
from skbandit.features import SEED_FEATURES
from skbandit.learning_progress import ProgressBands
from skbandit.linucb import STATE_VERSION, LinUCB
from skbandit.model import TrainedModel
from skbandit.ranking_settings import (
    SERVING_OBJECTIVE,
    SERVING_SETTINGS,
    Objective,
    RankingSettings,
)


def _candidates(difficulty, mastery=0.5, **extra):
    difficulty = np.asarray(difficulty, dtype=np.float64)
    n = len(difficulty)
    frame = pd.DataFrame(
        {
            "user_id": "u",
            "item_id": [f"i{j}" for j in range(n)],
            "topic": "t",
            "mastery": mastery,
            "recent_accuracy": 0.5,
            "recent_speed": 0.5,
            "help_tendency": 0.1,
            "skill_gap": np.maximum(0.0, 0.8 - np.asarray(mastery)),
            "difficulty": difficulty,
            "discrimination": 1.0,
            "guessing": 0.0,
            "item_attempts": 0.0,
            "item_accuracy": 0.5,
        },
        index=np.arange(n) + 100,
    )
    for name, value in extra.items():
        frame[name] = value
    return frame


def _hand_model(coef, variance, alpha=1.0):
    """A seed-feature pipeline whose LinUCB has the given coef and diagonal A^-1."""
    coef = np.asarray(coef, dtype=np.float64)
    A = np.diag(1.0 / np.asarray(variance, dtype=np.float64))
    model = LinUCB().set_state(
        {
            "A": A,
            "b": A @ coef,
            "A_inv": np.linalg.inv(A),
            "coef": coef,
            "alpha": alpha,
            "l2": 1.0,
            "forgetting": 1.0,
            "n_updates": 10,
            "n_features_in": len(coef),
            "state_version": STATE_VERSION,
        }
    )
    return TrainedModel.from_state({"feature_set": "seed", "estimator": model.get_state()})


def _seed_index(name):
    return SEED_FEATURES.index(name)


def _expected_model(alpha=1.0, explore_weight=0.0):
    """expected = mastery - 0.2 * difficulty; std = sqrt(w) * |mastery - difficulty|."""
    coef = np.zeros(8)
    coef[_seed_index("mastery")] = 1.0
    coef[_seed_index("difficulty")] = -0.2
    variance = np.full(8, 1e-12)
    variance[_seed_index("abs_mastery_minus_difficulty")] = max(explore_weight, 1e-12)
    return _hand_model(coef, variance, alpha)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(3)
    raw = _candidates(
        rng.normal(0, 1, 300),
        mastery=rng.uniform(0.05, 0.95, 300),
        item_attempts=rng.integers(0, 50, 300).astype(float),
        item_accuracy=rng.uniform(0.2, 0.8, 300),
    )
    y = (
        rng.random(300) < irt.p_correct_2pl(irt.mastery_to_logit(raw["mastery"]), raw["difficulty"])
    ).astype(float)
    pipe = TrainedModel("default", alpha=0.5).partial_fit(raw, y)
    pipe.progress_bands = _bands_preferring(0.6)  # for objective learning_progress
    return pipe


def _bands_preferring(target):
    bands = ProgressBands()
    bands.update(np.flatnonzero(np.isclose(bands.targets, target)), np.array([1.0]))
    return bands


@settings(max_examples=40, deadline=None)
@given(
    difficulty=st.lists(st.floats(-3, 3), min_size=1, max_size=15),
    mastery=st.floats(0.01, 0.99),
    top_k=st.integers(1, 20),
    seed=st.integers(0, 10),
    objective=st.sampled_from(policy.OBJECTIVES),
    exploration=st.sampled_from(policy.EXPLORATIONS),
)
def test_ranking_is_a_subset_permutation_of_the_candidates(
    trained, difficulty, mastery, top_k, seed, objective, exploration
):
    cands = _candidates(difficulty, mastery)
    ranking = RankingSettings(
        top_k=top_k, objective=objective, exploration=exploration, temperature=0.1
    )
    recs = policy.rank_linucb(trained, cands, ranking, rng=np.random.default_rng(seed))
    assert tuple(recs.columns) == schema.RECOMMENDATION_COLUMNS
    assert len(recs) == min(top_k, len(cands))
    assert recs["item_id"].is_unique and recs["item_id"].isin(cands["item_id"]).all()
    assert recs["rank"].tolist() == list(range(1, len(recs) + 1))
    assert recs["expected_reward"].between(0, 1).all()
    assert (recs["ucb_bonus"] >= 0).all() and recs["propensity"].between(0, 1).all()
    np.testing.assert_allclose(recs["ucb"], recs["expected_reward"] + recs["ucb_bonus"])
    low, high = recs["success_low"], recs["success_high"]
    assert ((low >= 0) & (low <= recs["expected_reward"])).all()
    assert ((high >= recs["expected_reward"]) & (high <= 1)).all()
    np.testing.assert_allclose(recs["uncertainty"], (high - low) / 2)
    rules = policy.rank_rule_based(cands, top_k=top_k)
    assert sorted(rules["item_id"]) == sorted(
        cands["item_id"].iloc[
            np.argsort(irt.rule_distance(mastery, cands["difficulty"]), kind="stable")[:top_k]
        ]
    )


def test_is_exploration_only_when_the_bonus_put_the_item_in_the_top_k():
    # expected 0.7, 0.6, 0.5, 0 (clipped); bonus 0.4 * |0.5 - b| = 0.6, 0.4, 0.2, 1.4
    pipe = _expected_model(alpha=1.0, explore_weight=0.16)
    cands = _candidates([-1.0, -0.5, 0.0, 4.0])
    recs = policy.rank_linucb(pipe, cands, RankingSettings(top_k=2))
    assert recs["item_id"].tolist() == ["i3", "i0"]
    assert recs["is_exploration"].tolist() == [True, False]
    np.testing.assert_allclose(recs["expected_reward"], [0.0, 0.7])
    np.testing.assert_allclose(recs["ucb_bonus"], [1.4, 0.6])
    assert (
        recs["reason"]
        .iloc[0]
        .startswith("Exploring: in the list only because of its +140% UCB bonus")
    )
    low, high = recs["success_low"].iloc[1], recs["success_high"].iloc[1]
    assert recs["reason"].iloc[1].startswith(f"70% ({low * 100:.0f}–{high:.0%}) expected success")
    assert recs["reason"].iloc[1].endswith("good difficulty match")  # 70 % expected success
    # without a bonus nothing is exploration and the order is by expected success
    greedy = policy.rank_linucb(pipe, cands, RankingSettings(top_k=2, alpha=0.0))
    assert greedy["item_id"].tolist() == ["i0", "i1"]
    assert not greedy["is_exploration"].any()
    assert greedy["reason"].iloc[0] == (  # the interval does not depend on alpha
        f"70% ({low * 100:.0f}–{high:.0%}) expected success; good difficulty match"
    )


def test_target_band_prefers_items_near_the_target():
    pipe = _expected_model(alpha=0.0)
    cands = _candidates([-2.0, -1.0, -0.2, 1.0])  # expected 0.9, 0.7, 0.54, 0.3
    band = policy.rank_linucb(
        pipe, cands, RankingSettings(top_k=4, objective="target_band", target=0.7)
    )
    assert band["item_id"].tolist() == ["i1", "i2", "i0", "i3"]
    best = policy.rank_linucb(pipe, cands, RankingSettings(top_k=1, objective="max_success"))
    assert best["item_id"].tolist() == ["i0"]


def test_greedy_ties_are_broken_at_random_with_exact_propensities():
    pipe = _expected_model(alpha=0.0)
    cands = _candidates([0.0, 0.0, 0.0, 1.0])
    firsts = set()
    for seed in range(20):
        recs = policy.rank_linucb(
            pipe, cands, RankingSettings(top_k=4), rng=np.random.default_rng(seed)
        )
        np.testing.assert_allclose(recs["propensity"], [1 / 3, 1 / 2, 1.0, 1.0])
        assert recs["item_id"].iloc[3] == "i3"
        firsts.add(recs["item_id"].iloc[0])
    assert firsts == {"i0", "i1", "i2"}
    np.testing.assert_allclose(policy.action_probabilities(pipe, cands), [1 / 3, 1 / 3, 1 / 3, 0.0])
    unseeded = {policy.rank_linucb(pipe, cands)["item_id"].iloc[0] for _ in range(30)}
    assert len(unseeded) > 1  # no fixed seed by default: P(one item 30 times) = 3 / 3**30
    seeded = [
        policy.rank_linucb(pipe, cands, rng=np.random.default_rng(4))["item_id"].tolist()
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]


SOFTMAX = RankingSettings(exploration="softmax", temperature=0.1)


def test_softmax_propensities_match_probabilities_and_frequencies(trained):
    cands = _candidates([-1.5, -0.5, 0.0, 0.5, 2.0], mastery=0.6)
    probs = policy.action_probabilities(trained, cands, SOFTMAX)
    assert probs.shape == (5,) and probs.sum() == pytest.approx(1.0)
    assert (probs > 0.01).sum() >= 3  # a spread distribution, not a near-argmax
    rng = np.random.default_rng(11)
    n = 1500
    counts = pd.Series(0, index=cands["item_id"])
    for _ in range(n):
        recs = policy.rank_linucb(trained, cands, replace(SOFTMAX, top_k=2), rng=rng)
        first = recs["item_id"].iloc[0]
        counts[first] += 1
        assert recs["propensity"].iloc[0] == pytest.approx(probs[int(first[1:])])
    freq = counts.to_numpy() / n
    se = np.sqrt(probs * (1 - probs) / n)
    assert np.all(np.abs(freq - probs) <= 4.5 * se + 1e-9), (freq, probs)


def test_softmax_second_slot_propensity_is_conditional_on_the_first(trained):
    cands = _candidates([-1.0, 0.0, 1.0], mastery=0.6)
    probs = policy.action_probabilities(trained, cands, SOFTMAX)
    recs = policy.rank_linucb(
        trained, cands, replace(SOFTMAX, top_k=2), rng=np.random.default_rng(5)
    )
    first, second = (int(i[1:]) for i in recs["item_id"])
    assert recs["propensity"].iloc[1] == pytest.approx(probs[second] / (1 - probs[first]))


def test_rule_based_orders_by_logit_distance_and_drops_drift():
    cands = _candidates([2.0, 0.3, -0.1, 1.0], mastery=0.6, drift_flag=[False, False, True, False])
    recs = policy.rank_rule_based(cands, top_k=5)
    assert tuple(recs.columns) == schema.RECOMMENDATION_COLUMNS
    assert recs["item_id"].tolist() == ["i1", "i3", "i0"]  # ability logit(0.6) = 0.405
    ability = irt.mastery_to_logit(0.6)
    np.testing.assert_allclose(recs["expected_reward"], irt.p_correct_2pl(ability, [0.3, 1.0, 2.0]))
    assert (
        recs[["success_low", "success_high", "uncertainty", "ucb_bonus", "ucb"]]
        .isna()
        .all(axis=None)
    )
    assert not recs["is_exploration"].any() and (recs["propensity"] == 1.0).all()
    assert "good difficulty match" in recs["reason"].iloc[0]


def test_explain_contributions_sum_to_the_prediction(trained):
    cands = _candidates([-1.0, 0.0, 1.5], mastery=0.7, item_attempts=30.0, item_accuracy=0.6)
    table = explain(trained, cands)
    names = list(trained.feature_names())
    assert list(table.columns) == ["item_id", *names, "prediction", "bonus", "ucb"]
    assert table.index.equals(cands.index)
    np.testing.assert_allclose(table[names].sum(axis=1), table["prediction"], atol=1e-12)
    np.testing.assert_allclose(table["prediction"], trained.predict(cands), atol=1e-12)
    recs = policy.rank_linucb(trained, cands, RankingSettings(top_k=3)).set_index("item_id")
    np.testing.assert_allclose(table.set_index("item_id").loc[recs.index, "ucb"], recs["ucb"])
    np.testing.assert_allclose(
        table.set_index("item_id").loc[recs.index, "bonus"], recs["ucb_bonus"]
    )


def test_bad_input_is_a_clear_error(trained):
    with pytest.raises(SkbanditError, match="no candidate items to rank"):
        policy.rank_linucb(trained, _candidates([]))
    with pytest.raises(SkbanditError, match="no candidate items to rank"):
        policy.rank_rule_based(_candidates([]))
    with pytest.raises(SkbanditError, match="not been trained"):
        policy.rank_linucb(TrainedModel(), _candidates([0.0]))
    with pytest.raises(SkbanditError, match="unknown objective"):
        policy.rank_linucb(trained, _candidates([0.0]), RankingSettings(objective="fun"))
    with pytest.raises(SkbanditError, match="top_k"):
        policy.rank_linucb(trained, _candidates([0.0]), RankingSettings(top_k=0))
    with pytest.raises(SkbanditError, match=r"settings must be a .*RankingSettings, got dict"):
        policy.rank_linucb(trained, _candidates([0.0]), {"top_k": 2})
    with pytest.raises(SkbanditError, match="missing columns"):
        explain(trained, _candidates([0.0]).drop(columns="mastery"))


@pytest.mark.parametrize("exploration", policy.EXPLORATIONS)
def test_rank_requests_ranks_each_student_like_rank_linucb(trained, exploration):
    a = _candidates([-1.0, 0.0, 1.0, 2.0], mastery=0.3)
    b = _candidates([-0.5, 0.5, 1.5], mastery=0.8).assign(user_id="w")
    frame = pd.concat([a, b]).sample(frac=1.0, random_state=0)
    frame.index = np.arange(len(frame)) * 3
    ranking = RankingSettings(top_k=2, exploration=exploration, temperature=0.1)
    out = request_ranking.rank_requests(trained, frame, ranking, rng=np.random.default_rng(4))
    assert out.index.equals(frame.index)
    assert out["item_id"].tolist() == frame["item_id"].tolist()
    for _user, rows in out.groupby("user_id"):
        assert sorted(rows["rank"]) == list(range(1, len(rows) + 1))
        assert rows["recommended"].sum() == 2
        assert rows["propensity"].between(0, 1).all()
    if exploration == "greedy":  # deterministic here: no ties
        alone = policy.rank_linucb(
            trained, frame[frame["user_id"] == "w"], RankingSettings(top_k=2)
        )
        top = out[(out["user_id"] == "w") & out["recommended"]].sort_values("rank")
        assert top["item_id"].tolist() == alone["item_id"].tolist()
        np.testing.assert_allclose(top["ucb"], alone["ucb"])
        assert top["is_exploration"].tolist() == alone["is_exploration"].tolist()


@pytest.mark.parametrize("exploration", policy.EXPLORATIONS)
def test_rank_requests_for_one_student_is_rank_linucb_of_every_row(trained, exploration):
    cands = _candidates([-1.5, -0.5, 0.0, 0.5, 2.0, 0.0], mastery=0.6)
    ranking = RankingSettings(top_k=2, exploration=exploration, temperature=0.1)
    out = request_ranking.rank_requests(trained, cands, ranking, rng=np.random.default_rng(8))
    full = policy.rank_linucb(
        trained, cands, replace(ranking, top_k=len(cands)), rng=np.random.default_rng(8)
    )
    ranked = out.sort_values("rank")
    assert ranked["item_id"].tolist() == full["item_id"].tolist()
    np.testing.assert_array_equal(ranked["propensity"], full["propensity"])
    np.testing.assert_array_equal(ranked["ucb"], full["ucb"])
    assert ranked["recommended"].tolist() == [True, True, False, False, False, False]


# --- one formula: serving, the study's online policy and the off-policy targets ------------


@pytest.mark.parametrize("objective", policy.OBJECTIVES)
def test_serving_study_and_off_policy_targets_score_alike(objective):
    from skbandit.ope.targets import linucb_policy
    from skbandit.sim.env import CandidateArrays
    from skbandit.study.policies import LinUCBPolicy

    rng = np.random.default_rng(7)
    frame = _candidates(
        rng.normal(0, 1, 12),
        mastery=np.repeat([0.3, 0.6, 0.9], 4),
        item_attempts=rng.integers(0, 40, 12).astype(float),
        item_accuracy=rng.uniform(0.2, 0.8, 12),
        decision_id=np.repeat([0, 1, 2], 4),
    ).reset_index(drop=True)
    X = frame[list(schema.MODEL_INPUT)].to_numpy(np.float64)
    cands = CandidateArrays(
        decision=np.repeat([0, 1, 2], 4),
        item=np.arange(12),
        X=X,
        p_true=np.zeros(12),
        n_decisions=3,
    )
    study = LinUCBPolicy("default", alpha=0.8, objective=objective, target=0.6)
    for seed in range(3):  # learn online from its own choices, as in the study
        rows = study.choose(cands, np.random.default_rng(seed))
        study.update(cands, rows, (rng.random(rows.size) < 0.6).astype(float))
    study.model.progress_bands = _bands_preferring(0.6)  # served: the version's learned 0.6
    ranking = RankingSettings(
        objective=objective, target=0.6, exploration="softmax", temperature=0.2
    )
    studied = study.score(cands, rng)
    served = policy.score_candidates(study.model, frame, ranking).score
    np.testing.assert_array_equal(served, studied)
    targeted = linucb_policy(study.model, ranking)(frame)
    for d in range(3):
        z = np.exp((studied[4 * d : 4 * d + 4] - studied[4 * d : 4 * d + 4].max()) / 0.2)
        np.testing.assert_allclose(targeted[4 * d : 4 * d + 4], z / z.sum(), rtol=1e-12)
    greedy = linucb_policy(study.model, replace(ranking, exploration="greedy"))(frame)
    best = [4 * d + int(np.argmax(studied[4 * d : 4 * d + 4])) for d in range(3)]
    assert np.flatnonzero(greedy == 1.0).tolist() == best


def test_the_prior_scores_like_a_model_that_has_seen_nothing():
    X = np.random.default_rng(2).normal(size=(6, 3))
    ranking = RankingSettings(objective="target_band", target=0.3)
    prior = policy.linucb_scores(LinUCB(alpha=1.5, l2=2.0), X, ranking)
    almost_nothing = LinUCB(alpha=1.5, l2=2.0).partial_fit(X[:1], [1.0], sample_weight=[1e-12])
    seen = policy.linucb_scores(almost_nothing, X, ranking)
    np.testing.assert_allclose(prior.bonus, seen.bonus, rtol=1e-9)
    np.testing.assert_allclose(prior.expected, seen.expected, atol=1e-9)
    np.testing.assert_allclose(prior.score, -0.3 + prior.bonus)  # expected 0: |0 - 0.3|
    np.testing.assert_allclose(prior.bonus, 1.5 * np.sqrt((X**2).sum(axis=1) / 2.0))


# --- the settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"objective": "fun"}, r"unknown objective 'fun' \(expected one of \('max_success'"),
        ({"exploration": "boltzmann"}, "unknown exploration 'boltzmann'"),
        ({"alpha": -0.5}, r"alpha must lie in \[0.0, 100.0\], got -0.5"),
        ({"alpha": float("nan")}, "alpha must lie in"),
        ({"alpha": "wide"}, "alpha must be a number, got 'wide'"),
        ({"target": 1.5}, r"target must lie in \[0.0, 1.0\], got 1.5"),
        ({"temperature": 0.0}, r"temperature must be at least 0.01 \(.*\), got 0.0"),
        ({"top_k": 0}, "top_k must be a positive integer, got 0"),
        ({"top_k": True}, "top_k must be a positive integer, got True"),
        ({"top_k": 2.0}, "top_k must be a positive integer, got 2.0"),
    ],
)
def test_ranking_settings_refuse_bad_values_in_one_line(change, message):
    with pytest.raises(SkbanditError, match=message) as caught:
        RankingSettings(**change)
    assert "\n" not in str(caught.value)
    (name,) = change
    with pytest.raises(SkbanditError) as labelled:
        RankingSettings.from_values(change, label="param {}")
    assert str(labelled.value) == str(caught.value).replace(name, f"param {name}", 1)


def test_ranking_settings_normalise_are_frozen_and_keep_the_served_defaults():
    settings = RankingSettings(alpha=1, objective="target_band", top_k=np.int64(3))
    assert settings.objective is Objective.target_band
    assert settings.alpha == 1.0 and isinstance(settings.alpha, float)
    assert settings.top_k == 3 and type(settings.top_k) is int
    with pytest.raises(AttributeError):
        settings.top_k = 4
    with pytest.raises(SkbanditError, match="top_k"):
        replace(settings, top_k=-1)
    assert RankingSettings().objective == "max_success"  # rank_linucb's classic default
    served = RankingSettings.from_values({"top_k": 2, "seed": 9}, base=SERVING_SETTINGS)
    assert served == replace(SERVING_SETTINGS, top_k=2)
    assert served.objective == SERVING_OBJECTIVE == policy.SERVING_OBJECTIVE == "target_band"
