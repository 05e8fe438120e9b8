"""The simulated school: world, online environment, logging policy and history."""

import numpy as np
import pandas as pd
import pytest

from skbandit import schema
from skbandit.cleaning import validate_events, validate_items
from skbandit.context import historical_contexts
from skbandit.exceptions import SkbanditError
from skbandit.logging_policy import logging_policy_probabilities, rule_epsilon_probabilities
from skbandit.sim.env import learning_gain
from skbandit.sim.generate import (
    DECISION_ID,
    P_TRUE,
    TRUTH_COLUMNS,
    SchoolConfig,
    SchoolEnv,
    default_school_config,
    simulate_school,
)
from skbandit.sim.running_context import SchoolContext

# A month around the winter break: quick to simulate, still crosses 2024-W01.
SMALL = SchoolConfig(
    n_students=60, seed=7, start_date="2023-12-11", end_date="2024-01-19", attempts_per_student=30
)


@pytest.fixture(scope="module")
def small_school():
    return simulate_school(SMALL)


@pytest.fixture(scope="module")
def default_school():
    return simulate_school(default_school_config())


def test_same_seed_same_school_other_seed_other_school(small_school):
    again = simulate_school(SMALL)
    pd.testing.assert_frame_equal(small_school.events, again.events)
    pd.testing.assert_frame_equal(small_school.truth, again.truth)
    other = simulate_school(SchoolConfig(**{**SMALL.__dict__, "seed": 8}))
    assert not other.events[schema.ITEM_ID].equals(small_school.events[schema.ITEM_ID])


def test_events_are_canonical_and_hide_the_truth(small_school):
    events = small_school.events
    canonical = {schema.TOPIC, *schema.EVENT_REQUIRED, *schema.EVENT_OPTIONAL}
    assert set(events.columns) == canonical
    assert not set(TRUTH_COLUMNS) & set(events.columns)
    assert list(small_school.items.columns) == [
        schema.ITEM_ID,
        schema.TOPIC,
        schema.DIFFICULTY,
        schema.DISCRIMINATION,
        schema.DRIFT_FLAG,
    ]
    cleaned, report = validate_events(events, "simulated")
    assert report.n_dropped == 0 and report.latency_clipped == 0
    assert cleaned[schema.TIMESTAMP].is_monotonic_increasing
    assert len(small_school.truth) == len(events)
    assert "hidden_effect" in small_school.true_items.columns


def test_published_difficulty_differs_from_the_truth(small_school):
    true = small_school.true_items
    gap = true[schema.DIFFICULTY] - (true["difficulty_true"] + true["hidden_effect"])
    assert gap.std() > 0.3  # the hidden effect is something a learner can discover
    assert true[schema.DRIFT_FLAG].any()
    drifted = true.loc[true[schema.DRIFT_FLAG], schema.ITEM_ID]
    assert not small_school.events[schema.ITEM_ID].isin(drifted).any()


def test_propensity_is_the_logging_policy_probability(small_school):
    events, items = small_school.events, small_school.items
    cfg = small_school.config
    assert events[schema.PROPENSITY].between(0, 1, inclusive="right").all()
    assert (events[schema.POLICY] == "rule+epsilon(0.1)").all()
    # Recompute from the logged data alone: observed mastery -> rule+epsilon probabilities.
    mastery = historical_contexts(events, items)[schema.MASTERY]
    decisions = events[[schema.ITEM_ID, schema.TOPIC]].assign(
        **{DECISION_ID: np.arange(len(events)), schema.MASTERY: mastery.to_numpy()}
    )
    eligible = items.loc[
        ~items[schema.DRIFT_FLAG], [schema.ITEM_ID, schema.TOPIC, schema.DIFFICULTY]
    ]
    cands = decisions.rename(columns={schema.ITEM_ID: "shown"}).merge(eligible, on=schema.TOPIC)
    cands = cands.sort_values([DECISION_ID], kind="stable")
    cands["p"] = logging_policy_probabilities(cands, cfg.epsilon, cfg.top_k)
    logged = cands.loc[cands["shown"] == cands[schema.ITEM_ID]].set_index(DECISION_ID)["p"]
    np.testing.assert_allclose(logged.sort_index().to_numpy(), events[schema.PROPENSITY])


def test_rule_epsilon_probabilities_by_hand():
    # mastery 0.5 -> logit 0; distances 0.1, 2, 0.3, 1 -> top-2 are items 0 and 2.
    probs = rule_epsilon_probabilities([0.5], [[0.1, 2.0, -0.3, 1.0, np.nan]], 0.2, top_k=2)
    np.testing.assert_allclose(probs, [[0.45, 0.05, 0.45, 0.05, 0.0]])
    few = rule_epsilon_probabilities([0.9], [[0.0, np.nan]], 0.1, top_k=5)
    np.testing.assert_allclose(few, [[1.0, 0.0]])


def _small_env(n_students=1, seed=3):
    return SchoolEnv(
        SchoolConfig(
            n_students=n_students,
            seed=seed,
            start_date="2024-01-08",
            end_date="2024-01-12",
            attempts_per_student=40,
        )
    )


def test_env_context_follows_the_documented_definitions_by_hand():
    env = _small_env()
    first = env.student_context().iloc[0]
    assert (
        first[schema.MASTERY],
        first[schema.RECENT_ACCURACY],
        first[schema.RECENT_SPEED],
        first[schema.HELP_TENDENCY],
    ) == (0.5, 0.5, 0.5, 0.1)
    assert first[schema.SKILL_GAP] == pytest.approx(0.3)
    outcomes = []
    while not env.done and len(outcomes) < 7:
        cands = env.candidates()
        outcomes.append(env.step(cands[schema.ITEM_ID].iloc[[0]]))
    assert len(outcomes) == 7
    ctx = env.student_context().iloc[0]
    seen = pd.concat(outcomes)
    same_topic = (seen[schema.TOPIC] == env.acting()[schema.TOPIC].iloc[0]).to_numpy()
    correct, latency = seen[schema.CORRECT].to_numpy(), seen[schema.LATENCY_MS].to_numpy()
    # mastery: the offline context's ability from the same attempts and published items
    from skbandit.context import student_context

    offline = student_context(
        seen.assign(latency_ms=0.0),
        seen[schema.USER_ID].iloc[0],
        env.acting()[schema.TOPIC].iloc[0],
        items=env.items,
    )
    expected = offline[schema.MASTERY]
    assert ctx[schema.MASTERY] == pytest.approx(expected, rel=1e-12)
    assert 0 < same_topic.sum() <= 7
    assert ctx[schema.RECENT_ACCURACY] == pytest.approx(correct[-5:].mean())
    assert ctx[schema.RECENT_SPEED] == pytest.approx(min(np.median(latency[-5:]) / 240_000, 1))
    assert ctx[schema.HELP_TENDENCY] == pytest.approx(seen[schema.HELP_REQUESTED].mean())
    assert ctx[schema.SKILL_GAP] == pytest.approx(max(0.0, 0.8 - expected))
    item = env.candidates().set_index(schema.ITEM_ID)
    first_item = seen[schema.ITEM_ID].iloc[0]
    n_first = int((seen[schema.ITEM_ID] == first_item).sum())
    if first_item in item.index:
        assert item.loc[first_item, schema.ITEM_ATTEMPTS] == n_first


def test_school_context_counts_by_hand(monkeypatch):
    from skbandit import ability

    monkeypatch.setattr(ability, "FORGETTING", 1.0)  # the Laplace sums by hand, no fading
    ctx = SchoolContext(n_students=2, n_topics=2, n_items=3)
    one = np.array([0])
    latencies = [1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 240_000.0, 480_000.0]
    for m, latency in enumerate(latencies):  # 7 attempts of student 0 at item 2 of topic 1
        ctx.update(
            one, one + 1, one + 2, np.array([m % 2 == 0]), np.array([latency]), np.array([m == 0])
        )
    cols = ctx.student_columns(np.array([0, 0, 1]), np.array([1, 0, 1]))
    # items without parameters are b = 0, a = 1: 4 of 7 correct give G = 1/2, H = 7/4.
    # Topic 1: prior N(0, 1 + 0.7^2), mean G / (1/1.49 + H); topic 0 unseen: the level
    # from topic 1, G / (1 + H)
    expit = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    np.testing.assert_allclose(
        cols[schema.MASTERY], [expit(0.5 / (1 / 1.49 + 1.75)), expit(0.5 / 2.75), 0.5]
    )
    # the last 5 attempts (m = 2..6): correct 1, 0, 1, 0, 1; median latency 5000 ms
    np.testing.assert_allclose(cols[schema.RECENT_ACCURACY], [0.6, 0.6, 0.5])
    np.testing.assert_allclose(cols[schema.RECENT_SPEED], [5000 / 240_000] * 2 + [0.5])
    np.testing.assert_allclose(cols[schema.HELP_TENDENCY], [1 / 7, 1 / 7, 0.1])
    np.testing.assert_array_equal(cols[schema.N_PRIOR], [7, 7, 0])
    # two attempts at item 0 in one step count together; unseen items have accuracy 1/2
    ctx.update(
        np.array([0, 1]),
        np.array([0, 0]),
        np.array([0, 0]),
        np.array([True, False]),
        np.array([1000.0, 1000.0]),
        np.array([False, False]),
    )
    np.testing.assert_array_equal(ctx.item_attempts(np.arange(3)), [2, 0, 7])
    np.testing.assert_allclose(ctx.item_accuracy(np.arange(3)), [2 / 4, 1 / 2, 5 / 9])


def test_env_student_context_equals_the_offline_context_builder():
    env = _small_env(n_students=30, seed=5)
    shown = []
    while not env.done:
        cands = env.candidates()
        first = cands.groupby(DECISION_ID, sort=True).head(1)  # any deterministic policy
        shown.append(first.assign(**{schema.TIMESTAMP: env.acting()[schema.TIMESTAMP].to_numpy()}))
        env.step(first[schema.ITEM_ID].to_numpy())
    online = pd.concat(shown).sort_values(schema.TIMESTAMP, kind="stable")
    events, _ = env.history()
    offline = historical_contexts(events, env.items)
    for col in (*schema.STUDENT_CONTEXT,):
        np.testing.assert_allclose(online[col].to_numpy(), offline[col].to_numpy(), err_msg=col)
    # Item evidence lags by at most one 2-minute slot: never more than offline.
    assert (online[schema.ITEM_ATTEMPTS].to_numpy() <= offline[schema.ITEM_ATTEMPTS]).all()


def test_env_interface_checks_and_truth():
    env = _small_env(n_students=20, seed=2)
    cands = env.candidates()
    assert list(cands.columns) == [DECISION_ID, *schema.CANDIDATE_COLUMNS]
    drifted = env.items.loc[env.items[schema.DRIFT_FLAG], schema.ITEM_ID]
    assert not cands[schema.ITEM_ID].isin(drifted).any()
    assert set(cands[DECISION_ID]) == set(range(env.n_decisions))
    p = env.true_success_probability(cands)
    assert p.shape == (len(cands),) and ((p > 0) & (p < 1)).all()
    with pytest.raises(SkbanditError, match="one item per decision"):
        env.step([])
    other_topic = env.items.loc[~env.items[schema.TOPIC].isin(cands[schema.TOPIC]), "item_id"]
    with pytest.raises(SkbanditError, match="is not a candidate"):
        env.step([other_topic.iloc[0]] * env.n_decisions)
    best = cands.assign(p=p).sort_values("p").groupby(DECISION_ID).tail(1).sort_values(DECISION_ID)
    out = env.step(best[schema.ITEM_ID])
    np.testing.assert_allclose(out["p_true"], best["p"])
    assert (out["ability_after"] > out["ability_before"]).all()


def test_candidate_arrays_can_hold_fewer_columns():
    env = _small_env(n_students=20, seed=2)
    full = env.candidate_arrays()
    some = env.candidate_arrays(columns=(schema.DIFFICULTY, schema.MASTERY))
    assert some.X.shape == (len(full.item), 2)
    np.testing.assert_array_equal(some.column(schema.MASTERY), full.column(schema.MASTERY))
    np.testing.assert_array_equal(some.column(schema.DIFFICULTY), full.column(schema.DIFFICULTY))
    np.testing.assert_array_equal(some.p_true, full.p_true)
    with pytest.raises(SkbanditError, match="no column 'skill_gap'"):
        some.column(schema.SKILL_GAP)
    with pytest.raises(SkbanditError, match="unknown candidate columns"):
        env.candidate_arrays(columns=("grade",))


def test_step_indices_is_step_on_item_indices():
    by_id, by_index = _small_env(n_students=20, seed=4), _small_env(n_students=20, seed=4)
    for _ in range(6):
        cands = by_index.candidate_arrays()
        last = np.searchsorted(cands.decision, np.arange(cands.n_decisions), side="right") - 1
        frame = by_id.step(by_id.world.item_ids[cands.item[last]])
        out = by_index.step_indices(cands.item[last])
        np.testing.assert_array_equal(frame[schema.CORRECT], out.correct.astype(np.int64))
        np.testing.assert_array_equal(frame[schema.LATENCY_MS], out.latency_ms)
        np.testing.assert_array_equal(frame[P_TRUE], out.p_true)
        np.testing.assert_array_equal(frame["ability_after"], out.ability_after)
        np.testing.assert_array_equal(by_index.world.user_ids[out.student], frame[schema.USER_ID])
    pd.testing.assert_frame_equal(by_id.history()[0], by_index.history()[0])


def test_step_indices_refuses_an_item_outside_the_candidates():
    env = _small_env(n_students=20, seed=2)
    cands = env.candidate_arrays()
    first = np.searchsorted(cands.decision, np.arange(cands.n_decisions))
    other_topic = np.flatnonzero(env.world.item_topic != env.world.item_topic[cands.item[0]])[0]
    with pytest.raises(SkbanditError, match=r"decision 0: .* is not a candidate"):
        env.step_indices(np.r_[other_topic, cands.item[first][1:]])
    with pytest.raises(SkbanditError, match="item indices must be in"):
        env.step_indices(np.full(cands.n_decisions, len(env.world.item_ids)))
    with pytest.raises(SkbanditError, match="one item per decision"):
        env.step_indices(cands.item[first][:-1] if cands.n_decisions > 1 else [])
    assert env.n_steps == 0  # nothing happened


def test_timetable_plays_every_session_attempt_once_inside_its_slot():
    env = _small_env(n_students=15, seed=3)
    slot, n_attempts = env.config.slot_seconds, 0
    while not env.done:
        start = env.slot_start
        cands = env.candidate_arrays()
        out = env.step_indices(
            cands.item[np.searchsorted(cands.decision, np.arange(cands.n_decisions))]
        )
        assert np.unique(out.student).size == out.student.size  # one attempt per student
        assert ((out.timestamp >= start) & (out.timestamp < start + slot)).all()
        assert env.slot_start >= start + slot
        n_attempts += out.student.size
    assert n_attempts == env.world.session_length.sum() == len(env.history()[0])


def test_learning_is_largest_in_the_moderate_band(small_school):
    cfg = default_school_config()
    assert learning_gain(0.7, cfg) > 4 * learning_gain(0.97, cfg)
    assert learning_gain(0.7, cfg) > 4 * learning_gain(0.2, cfg)
    truth = small_school.truth
    gain = truth["ability_after"] - truth["ability_before"]
    moderate = gain[truth["p_true"].between(0.6, 0.8)].mean()
    easy = gain[truth["p_true"] > 0.95].mean()
    assert moderate > 2 * easy


def test_default_school_marginals(default_school):
    events = default_school.events
    assert 150_000 <= len(events) <= 250_000
    # the logging rule aims at the difficulty-adjusted ability, so it lands nearer 50 % items
    assert 0.55 <= events[schema.CORRECT].mean() <= 0.70
    assert 0.10 <= events[schema.HELP_REQUESTED].mean() <= 0.20
    assert 60_000 <= events[schema.LATENCY_MS].median() <= 120_000
    assert events[schema.LATENCY_MS].quantile(0.99) > 4 * events[schema.LATENCY_MS].median()


def test_default_school_calendar_and_topics(default_school):
    events, items = default_school.events, default_school.items
    iso = events[schema.TIMESTAMP].dt.isocalendar()
    week1 = events[(iso["year"] == 2024) & (iso["week"] == 1)]
    assert len(week1) > 1000
    assert (week1[schema.USER_ID] == "ABC123").any()
    assert (week1[schema.TOPIC] == "7.RP.A.1").any()
    assert events[schema.TIMESTAMP].dt.day_of_week.max() <= 4  # school days only
    per_topic = items.groupby(schema.TOPIC).size()
    assert len(per_topic) >= 20 and {"7.RP.A.1", "7.RP.A.3"} <= set(per_topic.index)
    assert per_topic.between(20, 200).all()
    assert events[schema.TOPIC].nunique() == len(per_topic)
    cleaned, report = validate_items(items, "items")
    assert report.n_dropped == 0 and cleaned[schema.ITEM_ID].str.len().eq(8).all()
