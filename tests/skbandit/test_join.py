"""Outcomes joined back to served decisions (skbandit.ope.join): every event is counted once."""

import numpy as np
import pandas as pd
import pytest

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.ope.join import DEFAULT_WINDOW, join_outcomes

T0 = pd.Timestamp("2024-03-04 09:00", tz="UTC")


def at(minutes):
    return T0 + pd.Timedelta(minutes=minutes)


def decisions(*rows, model="m"):
    """rows: (decision_id, minute, user, served item)."""
    return pd.DataFrame(
        [
            {
                "decision_id": d,
                "logged_at": at(m),
                "user_id": u,
                "served_item_id": i,
                "model_name": model,
            }
            for d, m, u, i in rows
        ]
    )


def events(*rows):
    """rows: (minute, user, item, correct, decision_id or None)."""
    return pd.DataFrame(
        [
            {"timestamp": at(m), "user_id": u, "item_id": i, "correct": c, "decision_id": d}
            for m, u, i, c, d in rows
        ]
    )


def counted(report):
    return (
        report.matched
        + report.duplicated
        + report.unmatched
        + report.unknown_decision
        + report.other_model
        + report.mismatched
        + report.out_of_order
    )


def test_window_match_takes_the_latest_decision_that_served_the_item():
    log = decisions(("d1", 0, "u", "a"), ("d2", 30, "u", "a"), ("d3", 31, "u", "b"))
    joined, report = join_outcomes(log, events((40, "u", "a", 1, None)))
    assert joined["decision_id"].tolist() == ["d2"] and joined["correct"].tolist() == [1]
    assert report.matched_by_window == 1 and report.unanswered == 2
    assert joined["outcome_at"].iloc[0] == at(40)


def test_window_is_inclusive_up_to_24_hours_and_no_further():
    minutes = DEFAULT_WINDOW / pd.Timedelta(minutes=1)
    log = decisions(("d1", 0, "u", "a"), ("d2", 0, "v", "a"))
    _, report = join_outcomes(
        log, events((minutes, "u", "a", 1, None), (minutes + 1, "v", "a", 1, None))
    )
    assert (report.matched_by_window, report.unmatched) == (1, 1)
    _, shorter = join_outcomes(log, events((minutes, "u", "a", 1, None)), window="1h")
    assert shorter.unmatched == 1


def test_an_attempt_before_any_decision_or_at_another_item_is_unmatched():
    log = decisions(("d1", 10, "u", "a"))
    joined, report = join_outcomes(
        log, events((5, "u", "a", 1, None), (12, "u", "b", 1, None), (12, "w", "a", 0, None))
    )
    assert joined.empty and report.unmatched == 3 and counted(report) == 3


def test_decision_id_wins_over_the_window_and_a_second_answer_is_a_duplicate():
    log = decisions(("d1", 0, "u", "a"), ("d2", 5, "u", "a"))
    joined, report = join_outcomes(
        log, events((6, "u", "a", 0, "d1"), (7, "u", "a", 1, None), (8, "u", "a", 1, "d1"))
    )
    assert dict(zip(joined["decision_id"], joined["correct"], strict=True)) == {"d1": 0, "d2": 1}
    assert (report.matched_by_id, report.matched_by_window, report.duplicated) == (1, 1, 1)


def test_bad_decision_ids_are_counted_not_raised():
    log = pd.concat(
        [
            decisions(("d1", 0, "u", "a"), ("d2", 0, "v", "b")),
            decisions(("x1", 0, "u", "a"), model="other"),
        ],
        ignore_index=True,
    )
    joined, report = join_outcomes(
        log,
        events(
            (1, "u", "a", 1, "nope"),  # unknown decision
            (1, "u", "a", 1, "x1"),  # a decision of another model
            (1, "u", "b", 1, "d1"),  # d1 served a, not b
            (1, "w", "b", 1, "d2"),  # d2 was for v
            (-1, "v", "b", 1, "d2"),
        ),  # before d2 was logged
        model_name="m",
    )
    assert joined.empty
    assert (
        report.unknown_decision,
        report.other_model,
        report.mismatched,
        report.out_of_order,
    ) == (1, 1, 2, 1)
    assert report.other_model_decisions == 1 and report.decisions == 2
    assert counted(report) == report.events == 5
    assert "0 of 5 outcomes joined to 2 decisions" in report.summary()


def test_a_log_of_another_model_only_is_a_one_line_error():
    log = decisions(("d1", 0, "u", "a"), model="other")
    with pytest.raises(SkbanditError, match=r"no decision of model 'm' .*decisions of other"):
        join_outcomes(log, events((1, "u", "a", 1, None)), model_name="m")


def test_missing_columns_and_naive_times():
    with pytest.raises(SkbanditError, match="events lacks column"):
        join_outcomes(decisions(("d1", 0, "u", "a")), pd.DataFrame({"user_id": ["u"]}))
    naive = events((1, "u", "a", 1, None)).assign(
        timestamp=lambda e: e["timestamp"].dt.tz_localize(None)
    )
    joined, report = join_outcomes(
        decisions(("d1", 0, "u", "a")), naive.drop(columns="decision_id")
    )
    assert report.matched_by_window == 1 and joined["decision_id"].tolist() == ["d1"]


def test_every_event_is_counted_exactly_once_on_a_random_log():
    rng = np.random.default_rng(3)
    users, items = list("uvwxyz"), list("abcd")
    log = decisions(
        *[
            (f"d{k}", int(rng.integers(0, 3000)), rng.choice(users), rng.choice(items))
            for k in range(200)
        ]
    )
    ids = [*log["decision_id"], "ghost", None, None, None]
    outcomes = events(
        *[
            (
                int(rng.integers(0, 3000)),
                rng.choice(users),
                rng.choice(items),
                int(rng.integers(0, 2)),
                ids[int(rng.integers(0, len(ids)))],
            )
            for _ in range(500)
        ]
    )
    joined, report = join_outcomes(log, outcomes, window="2h")
    assert counted(report) == 500 and report.matched == len(joined)
    assert joined["decision_id"].is_unique
    assert report.unanswered == 200 - len(joined)
    gap = joined["outcome_at"] - joined["logged_at"]
    assert (gap >= pd.Timedelta(0)).all()


# --- evaluation on the served log equals evaluation on the same decisions rebuilt ------------


@pytest.fixture(scope="module")
def school():
    from skbandit.context import historical_contexts
    from skbandit.model import TrainedModel
    from skbandit.sim.generate import SchoolConfig, simulate_school

    school = simulate_school(
        SchoolConfig(
            n_students=60,
            seed=2,
            start_date="2024-01-08",
            end_date="2024-02-02",
            attempts_per_student=30,
        )
    )
    contexts = historical_contexts(school.events, school.items)
    half = len(school.events) // 2
    pipeline = TrainedModel()
    pipeline.partial_fit(contexts.iloc[:half], school.events[schema.CORRECT].to_numpy()[:half])
    return school, pipeline, np.arange(half, len(school.events))


def test_served_inputs_equal_the_rebuilt_inputs_on_the_same_decisions(school):
    from skbandit.ope import targets
    from skbandit.ope.join import served_inputs
    from skbandit.ranking_settings import RankingSettings
    from tests.support.served_log import served_log

    school, pipeline, rows = school
    log, candidates = served_log(school.events, school.items, rows)
    outcomes = school.events.iloc[rows].drop(columns=[schema.PROPENSITY])
    joined, report = join_outcomes(log, outcomes)
    assert report.matched_by_window == len(rows) and report.unanswered == 0
    policy = targets.linucb_policy(pipeline, RankingSettings(exploration="softmax"))
    model = targets.linucb_reward_model(pipeline)
    order = np.argsort(joined["decision_id"].str[1:].astype(int).to_numpy(), kind="stable")
    served = served_inputs(joined, candidates, policy, reward_model=model, chunk_decisions=97)
    rebuilt = targets.off_policy_inputs(
        school.events, school.items, policy, reward_model=model, rows=rows
    )
    for name in (
        "rewards",
        "logged_propensity",
        "target_propensity",
        "reward_model_logged",
        "reward_model_target",
        "n_candidates",
    ):
        np.testing.assert_allclose(
            getattr(served, name)[order], getattr(rebuilt, name), rtol=1e-9, err_msg=name
        )


def test_a_truncated_log_or_a_served_item_missing_from_its_candidates_is_one_line(school):
    from skbandit.ope import targets
    from skbandit.ope.join import served_inputs
    from tests.support.served_log import served_log

    school, _, rows = school
    log, candidates = served_log(school.events, school.items, rows[:20])
    joined, _ = join_outcomes(log, school.events.iloc[rows[:20]])
    policy = targets.uniform_policy()
    truncated = candidates[candidates["decision_id"] != "d" + str(rows[3])]
    with pytest.raises(SkbanditError, match=r"1 answered decision.* no candidates in the log"):
        served_inputs(joined, truncated, policy)
    served_row = candidates["served_rank"].eq(1).fillna(False).astype(bool)
    without = candidates[~(served_row & (candidates["decision_id"] == "d" + str(rows[5])))]
    with pytest.raises(SkbanditError, match=r"1 decision.* lack a propensity"):
        served_inputs(joined, without, policy)


def test_times_of_different_resolutions_still_join():
    """The log's database returns microseconds; parquet events may hold nanoseconds."""
    log = decisions(("d1", 0, "u", "a"))
    log["logged_at"] = log["logged_at"].astype("datetime64[us, UTC]")
    outcomes = events((1, "u", "a", 1, None))
    outcomes["timestamp"] = outcomes["timestamp"].astype("datetime64[ns, UTC]")
    joined, report = join_outcomes(log, outcomes)
    assert report.matched_by_window == 1 and joined["decision_id"].tolist() == ["d1"]
