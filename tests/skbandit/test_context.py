"""Student and item context: hand-checked values, no leakage, cold start, vectorised path."""

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skbandit import context, schema
from skbandit.cleaning import LATENCY_CAP_MS
from skbandit.context_features import _row_nanmedian
from skbandit.exceptions import SkbanditError

T0 = pd.Timestamp("2024-01-01", tz="UTC")
ITEMS = pd.DataFrame(
    {
        "item_id": ["i0", "i1", "i2", "i3", "i4"],
        "topic": ["t1", "t1", "t1", "t2", "t2"],
        "difficulty": [-1.0, 0.0, 1.0, 0.5, -0.5],
        "discrimination": [1.0, 1.5, np.nan, 1.0, 0.8],
        "drift_flag": [False, True, False, False, None],
    }
)


def _events(rows):
    """rows: (user, item, hour, correct, latency_ms, help)."""
    df = pd.DataFrame(
        rows, columns=["user_id", "item_id", "hour", "correct", "latency_ms", "help_requested"]
    )
    df["topic"] = ITEMS.set_index("item_id").loc[df["item_id"], "topic"].to_numpy()
    df["timestamp"] = T0 + pd.to_timedelta(df.pop("hour"), unit="h")
    df["latency_ms"] = df["latency_ms"].astype(np.float64)
    df["help_requested"] = df["help_requested"].astype(np.float64)
    return df


HAND = _events(
    [
        ("u", "i0", 0, 1, 10_000, 0),
        ("u", "i1", 1, 0, 20_000, 1),
        ("u", "i3", 2, 1, np.nan, np.nan),
        ("u", "i2", 3, 1, 40_000, 0),
        ("u", "i4", 4, 0, 50_000, 0),
        ("v", "i0", 4, 1, 5_000, 0),
    ]
)


@pytest.fixture
def no_forgetting(monkeypatch):
    """The Laplace sums by hand without the attempts' fading (skbandit.ability.FORGETTING)."""
    from skbandit import ability

    monkeypatch.setattr(ability, "FORGETTING", 1.0)


def test_hand_checked_student_context(no_forgetting):
    ctx = context.student_context(HAND, "u", "t1", at=T0 + pd.Timedelta(hours=5))
    # topic t1: 3 earlier events (1, 0, 1) -> raw accuracy (2 + 1) / (3 + 2)
    assert ctx["accuracy"] == pytest.approx(3 / 5)
    # without items every item is b = 0, a = 1: g = +-1/2, h = 1/4 per attempt; t1 has
    # G = 1/2, H = 3/4; the other topic (i3 right, i4 wrong) G = 0, H = 1/2 -> level 0 with
    # variance 1 / 1.5; topic prior variance 1/1.5 + 0.49; mean = 0.5 / (1/var + 0.75)
    prior_var = 1 / 1.5 + 0.49
    assert ctx["ability"] == pytest.approx(0.5 / (1 / prior_var + 0.75))
    assert ctx["ability_sd"] == pytest.approx((1 / prior_var + 0.75) ** -0.5)
    assert ctx["mastery"] == pytest.approx(1 / (1 + np.exp(-ctx["ability"])))
    assert ctx["skill_gap"] == pytest.approx(0.8 - ctx["mastery"])
    assert ctx["recent_accuracy"] == pytest.approx(3 / 5)  # last 5: 1, 0, 1, 1, 0
    # median of 10k, 20k, 40k, 50k (NaN ignored) = 30k, over 240 s
    assert ctx["recent_speed"] == pytest.approx(30_000 / 240_000)
    assert ctx["help_tendency"] == pytest.approx(1 / 4)  # NaN ignored
    assert ctx["n_prior_events"] == 5
    # topic t2 has only 2 earlier events: overall (3 + 1) / (5 + 2)
    assert context.student_context(HAND, "u", "t2", at=T0 + pd.Timedelta(hours=5))[
        "accuracy"
    ] == pytest.approx(4 / 7)


def test_events_at_the_decision_time_are_not_before_it():
    ctx = context.student_context(HAND, "u", "t1", at=T0 + pd.Timedelta(hours=4))
    assert ctx["n_prior_events"] == 4  # the hour-4 event is excluded
    items = context.item_context(HAND, ITEMS, at=T0 + pd.Timedelta(hours=4)).set_index("item_id")
    assert items.loc["i0", "item_attempts"] == 1  # v's hour-4 attempt is not before
    assert items.loc["i0", "item_accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("user, n_events", [("nobody", 0), ("u", 2)])
def test_cold_start_defaults(user, n_events, no_forgetting):
    ctx = context.student_context(HAND, user, "t1", at=T0 + pd.Timedelta(hours=2))
    assert ctx["n_prior_events"] == n_events
    assert ctx["mastery"] == context.DEFAULT_MASTERY
    assert ctx["recent_accuracy"] == context.DEFAULT_RECENT_ACCURACY
    assert ctx["recent_speed"] == context.DEFAULT_RECENT_SPEED
    assert ctx["help_tendency"] == context.DEFAULT_HELP_TENDENCY
    assert ctx["skill_gap"] == pytest.approx(context.SKILL_TARGET - context.DEFAULT_MASTERY)


def test_missing_latency_and_help_give_defaults_not_nan():
    ev = _events([("u", "i0", h, 1, np.nan, np.nan) for h in range(4)])
    ctx = context.student_context(ev, "u", "t1")
    assert ctx["recent_speed"] == context.DEFAULT_RECENT_SPEED
    assert ctx["help_tendency"] == context.DEFAULT_HELP_TENDENCY
    hist = context.historical_contexts(ev.drop(columns=["latency_ms", "help_requested"]), ITEMS)
    assert not hist.isna().any().any()


def test_latency_is_capped_and_speed_clipped():
    ev = _events([("u", "i0", h, 1, 10 * LATENCY_CAP_MS, 0) for h in range(3)])
    assert context.student_context(ev, "u", "t1")["recent_speed"] == 1.0


def test_mastery_table_overrides_mastery():
    table = pd.DataFrame({"user_id": ["u", "u"], "skill": ["t1", "t2"], "mastery_mean": [0.9, 0.1]})
    ctx = context.student_context(HAND, "u", "t1", mastery_table=table)
    assert ctx["mastery"] == 0.9
    assert ctx["skill_gap"] == 0.0
    other = context.student_context(HAND, "v", "t1", mastery_table=table)
    assert other["mastery"] == context.student_context(HAND, "v", "t1")["mastery"]


def test_item_context_fills_defaults_and_counts():
    items = context.item_context(HAND, ITEMS).set_index("item_id")
    assert items.loc["i2", "discrimination"] == context.DEFAULT_DISCRIMINATION
    assert not items.loc["i4", "drift_flag"]
    assert items.loc["i0", "item_attempts"] == 2
    assert items.loc["i0", "item_accuracy"] == pytest.approx(3 / 4)


def test_candidate_frame_filters_topic_drift_and_recent():
    ctx = context.student_context(HAND, "u", "t1")
    items = context.item_context(HAND, ITEMS)
    cands = context.candidate_frame(ctx, items, "t1")
    assert tuple(cands.columns) == schema.CANDIDATE_COLUMNS
    assert cands["item_id"].tolist() == ["i0", "i2"]  # i1 is drift-flagged
    assert (cands["user_id"] == "u").all()
    recent = context.recent_item_ids(HAND, "u", n_last=2)
    assert recent == ("i2", "i4")
    assert context.candidate_frame(ctx, items, "t1", recent)["item_id"].tolist() == ["i0"]
    kept = context.candidate_frame(ctx, items, "t1", recent, exclude_recent=False)
    assert kept["item_id"].tolist() == ["i0", "i2"]
    assert context.candidate_frame(ctx, items, "no-such-topic").empty


def test_every_context_carries_guessing_as_0_where_an_item_has_none():
    """The 3PL c is a model input (issue 12): given, blank (0) or no column at all (0)."""
    at = T0 + pd.Timedelta(hours=5)
    ctx = context.student_context(HAND, "u", "t1", at=at)
    with_c = ITEMS.assign(guessing=[0.25, None, 0.39, np.nan, 0.2])
    for items, expected in ((with_c, [0.25, 0.39]), (ITEMS, [0.0, 0.0])):
        cands = context.candidate_frame(ctx, context.item_context(HAND, items, at=at), "t1")
        assert cands[schema.GUESSING].tolist() == expected  # items i0 and i2
        assert cands[schema.GUESSING].dtype == np.float64
    hist = context.historical_contexts(HAND, with_c)
    assert hist[schema.GUESSING].tolist() == [0.25, 0.0, 0.0, 0.39, 0.2, 0.25]
    assert context.historical_contexts(HAND, ITEMS)[schema.GUESSING].eq(0.0).all()


def test_unknown_item_in_events_is_a_clear_error():
    ev = HAND.assign(item_id=HAND["item_id"].replace({"i4": "ghost"}))
    with pytest.raises(SkbanditError, match="ghost"):
        context.historical_contexts(ev, ITEMS)


# --- the vectorised path agrees with the per-decision functions ---------------------------

event_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(ITEMS["item_id"].tolist()),
        st.integers(0, 6),
        st.integers(0, 1),
        st.one_of(st.just(np.nan), st.floats(0, 3 * LATENCY_CAP_MS)),
        st.sampled_from([0.0, 1.0, np.nan]),
    ),
    min_size=1,
    max_size=40,
)


def _per_decision(events, i):
    row = events.loc[i]
    ctx = context.student_context(
        events, row["user_id"], row["topic"], at=row["timestamp"], items=ITEMS
    )
    item = context.item_context(events, ITEMS, at=row["timestamp"]).set_index("item_id")
    values = {name: ctx[name] for name in schema.STUDENT_CONTEXT}
    values.update(item.loc[row["item_id"], list(schema.ITEM_CONTEXT)].to_dict())
    values[schema.N_PRIOR] = ctx[schema.N_PRIOR]
    return values


@settings(max_examples=60, deadline=None)
@given(rows=event_rows)
def test_historical_contexts_equal_per_decision_contexts(rows):
    events = _events(rows)
    events.index = np.arange(len(events))[::-1] * 10  # any index, kept in row order
    hist = context.historical_contexts(events, ITEMS)
    assert hist.index.equals(events.index)
    assert not hist.isna().any().any()
    for i in events.index:
        expected = pd.Series(_per_decision(events, i))[hist.columns]
        np.testing.assert_allclose(
            hist.loc[i].to_numpy(np.float64), expected.to_numpy(np.float64), rtol=0, atol=1e-12
        )


@settings(max_examples=60, deadline=None)
@given(rows=event_rows, data=st.data())
def test_changing_a_later_event_never_changes_an_earlier_context(rows, data):
    events = _events(rows)
    j = data.draw(st.integers(0, len(events) - 1))
    changed = events.copy()
    changed.loc[j, ["correct", "latency_ms", "help_requested"]] = [
        1 - events.loc[j, "correct"],
        1.0,
        1.0,
    ]
    not_after = events["timestamp"] <= events.loc[j, "timestamp"]
    before = context.historical_contexts(events, ITEMS)[not_after]
    after = context.historical_contexts(changed, ITEMS)[not_after]
    pd.testing.assert_frame_equal(before, after)


def test_historical_contexts_of_no_events_is_empty():
    hist = context.historical_contexts(HAND.iloc[:0], ITEMS)
    assert hist.empty
    assert tuple(hist.columns) == (*schema.MODEL_INPUT, schema.N_PRIOR)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(st.just(np.nan), st.floats(0, 1e6)),
            min_size=context.RECENT_WINDOW,
            max_size=context.RECENT_WINDOW,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_row_nanmedian_is_numpys_nanmedian_without_warnings(rows):
    matrix = np.array(rows, dtype=np.float64)
    got = _row_nanmedian(matrix)
    for row, value in zip(matrix, got, strict=True):
        known = row[~np.isnan(row)]
        if known.size == 0:
            assert np.isnan(value)
        else:
            assert value == np.median(known)


def test_student_features_computes_only_what_is_asked_and_the_same_values():
    rng = np.random.default_rng(3)
    n = rng.integers(0, 12, 40).astype(float)
    counts = dict(
        n=n,
        n_correct=np.floor(n * 0.6),
        n_topic=np.floor(n / 2),
        n_topic_correct=np.floor(n / 3),
        recent_correct=np.minimum(n, context.RECENT_WINDOW) // 2,
        latency_lags=rng.uniform(1e3, 4e5, (40, context.RECENT_WINDOW)),
        help_sum=np.floor(n / 4),
        help_known=n,
        **{name: rng.normal(size=40) * n for name in context.ABILITY_SUMS[::3]},
        **{name: 0.25 * n for name in context.ABILITY_SUMS[1::3]},
        **{name: rng.normal(size=40) * n for name in context.ABILITY_SUMS[2::3]},
    )
    every = context.student_features(**counts)
    assert list(every) == list(schema.STUDENT_CONTEXT)
    gap = context.student_features(
        **{**counts, "recent_correct": None, "latency_lags": None}, names=[schema.SKILL_GAP]
    )
    assert list(gap) == [schema.SKILL_GAP]
    np.testing.assert_array_equal(gap[schema.SKILL_GAP], every[schema.SKILL_GAP])
    cold = n < context.COLD_START_MIN_EVENTS
    accuracy = context.student_features(**counts, names=[context.ACCURACY])
    assert (accuracy[context.ACCURACY][cold] == context.DEFAULT_MASTERY).all()
    with pytest.raises(SkbanditError, match="unknown student feature 'n_prior_events'"):
        context.student_features(**counts, names=[schema.N_PRIOR])


# --- the difficulty-adjusted ability -----------------------------------------------------

LADDER = pd.DataFrame(
    {
        "item_id": [f"e{k}" for k in range(6)] + [f"h{k}" for k in range(6)],
        "topic": "t",
        "difficulty": [-2.0] * 6 + [2.0] * 6,
    }
)


def _attempts(user, prefix, outcomes):
    return pd.DataFrame(
        {
            "user_id": user,
            "item_id": [f"{prefix}{k}" for k in range(6)],
            "topic": "t",
            "correct": outcomes,
            "timestamp": T0 + pd.to_timedelta(np.arange(6), unit="h"),
        }
    )


def test_mastery_ranks_half_of_hard_items_above_half_of_easy_ones():
    events = pd.concat(
        [_attempts("hard", "h", [1, 0, 1, 0, 1, 0]), _attempts("easy", "e", [1, 0, 1, 0, 1, 0])],
        ignore_index=True,
    )
    hard = context.student_context(events, "hard", "t", items=LADDER)
    easy = context.student_context(events, "easy", "t", items=LADDER)
    assert hard["accuracy"] == easy["accuracy"]  # raw accuracy cannot tell them apart
    assert hard["mastery"] > 0.7 > 0.3 > easy["mastery"]
    assert hard["ability"] > 1.0 > -1.0 > easy["ability"]
    # the same ranking in the vectorised path, at the last attempt of each
    hist = context.historical_contexts(events, LADDER)
    assert hist.loc[5, "mastery"] > 0.5 > hist.loc[11, "mastery"]


def test_ability_sd_shrinks_with_attempts_and_prior_comes_from_other_topics():
    items = pd.concat(
        [LADDER, pd.DataFrame({"item_id": ["x"], "topic": ["new"], "difficulty": [0.0]})],
        ignore_index=True,
    )
    events = _attempts("u", "h", [1] * 6)
    sds = [
        context.student_context(events.iloc[:k], "u", "t", items=items)["ability_sd"]
        for k in range(7)
    ]
    assert all(a > b for a, b in itertools.pairwise(sds))
    # a topic never practised: the student's level on other topics is the prior mean
    fresh = context.student_context(events, "u", "new", items=items)
    stranger = context.student_context(events, "nobody", "new", items=items)
    assert fresh["ability"] > 0.5 and stranger["ability"] == 0.0
    assert (
        fresh["ability_sd"] > context.student_context(events, "u", "t", items=items)["ability_sd"]
    )


def test_items_without_difficulty_use_their_topics_mean():
    items = LADDER.assign(difficulty=[np.nan] + [-2.0] * 5 + [2.0] * 6)
    table = context.item_table(items)
    assert table.loc[0, "difficulty"] == pytest.approx(np.mean([-2.0] * 5 + [2.0] * 6))
    assert "1 of 12 items have no difficulty" in context.missing_difficulty_note(items)
    assert context.missing_difficulty_note(LADDER) is None
    bare = context.item_table(LADDER.drop(columns="difficulty"))
    assert (bare["difficulty"] == 0.0).all()


@pytest.mark.parametrize(
    "column, value",
    [("difficulty", np.inf), ("discrimination", -1.0), ("discrimination", 50.0), ("guessing", 1.2)],
)
def test_bad_item_parameters_are_refused_in_one_line(column, value):
    items = LADDER.assign(**{column: value})
    with pytest.raises(SkbanditError, match=f"bad {column}") as err:
        context.item_table(items)
    assert "\n" not in str(err.value)
