"""The ability's tracking: evidence fades per later attempt, so an improving learner is followed."""

import numpy as np
import pandas as pd
import pytest

from skbandit import ability, context

T0 = pd.Timestamp("2024-01-01", tz="UTC")
FLAT = pd.DataFrame({"item_id": [f"i{k}" for k in range(60)], "topic": "t", "difficulty": 0.0})


def _learner(outcomes, user="u"):
    n = len(outcomes)
    return pd.DataFrame(
        {
            "user_id": user,
            "item_id": [f"i{k}" for k in range(n)],
            "topic": "t",
            "correct": outcomes,
            "timestamp": T0 + pd.to_timedelta(np.arange(n), unit="min"),
        }
    )


def test_a_student_who_improves_is_followed(monkeypatch):
    events = _learner([0] * 30 + [1] * 20)  # wrong 30 times, then right 20 times in a row
    tracked = context.student_context(events, "u", "t", items=FLAT)
    monkeypatch.setattr(ability, "FORGETTING", 1.0)
    static = context.student_context(events, "u", "t", items=FLAT)
    # without fading the 30 early failures still dominate; with it the recent run of
    # successes puts the student above an item of difficulty 0
    assert static["ability"] < -0.3
    assert tracked["ability"] > 0.1
    assert tracked["ability_sd"] > static["ability_sd"]  # faded evidence: less certain


def test_the_ability_sd_stops_shrinking_at_the_forgetting_floor():
    events = _learner(list(np.tile([1, 0], 30)))
    sds = [
        context.student_context(events.iloc[:k], "u", "t", items=FLAT)["ability_sd"]
        for k in (0, 10, 30, 60)
    ]
    assert sds[0] > sds[1] > sds[2] > sds[3]
    h = 0.25  # b = 0, a = 1 at the expansion point
    assert sds[3] > np.sqrt((1 - ability.FORGETTING) / h) * 0.9


def test_vectorised_and_per_decision_abilities_agree_with_fading():
    rng = np.random.default_rng(3)
    events = pd.concat(
        [_learner(list(rng.integers(0, 2, 40)), user=u) for u in ("a", "b")], ignore_index=True
    )
    hist = context.historical_contexts(events, FLAT)
    for row in (0, 7, 39, 40, 65, 79):
        one = context.student_context(
            events, events.loc[row, "user_id"], "t", items=FLAT, at=events.loc[row, "timestamp"]
        )
        assert hist.loc[row, "mastery"] == pytest.approx(one["mastery"], abs=1e-12)


@pytest.mark.parametrize("forgetting", [0.5, 0.97, 1.0])
def test_faded_sums_equal_the_recursion_across_chunks(forgetting):
    """Longer than a chunk of the clock (432 attempts at 0.5): no overflow, the same sums."""
    rng = np.random.default_rng(0)
    n = 1_500
    values = rng.normal(size=n)
    clock, n_earlier = np.arange(n, dtype=float), np.arange(n, dtype=float)
    before = lambda v: np.concatenate([[0.0], np.cumsum(v)[:-1]])  # noqa: E731
    faded = ability.faded_prefix_sum(before, values, clock, n_earlier, forgetting=forgetting)
    expected, running = np.zeros(n), 0.0
    for i in range(n):
        expected[i] = running
        running = forgetting * running + values[i]
    assert np.isfinite(faded).all()
    np.testing.assert_allclose(faded, expected, rtol=1e-9, atol=1e-9)
