"""Contexts count an attempt only once it is completed (start + latency), offline and online."""

import numpy as np
import pandas as pd

from skbandit import context, schema
from skbandit.sim.env import SchoolEnv
from skbandit.sim.running_context import SchoolContext
from skbandit.sim.world import SchoolConfig

ITEMS = pd.DataFrame({"item_id": ["a", "b"], "topic": ["t", "t"], "difficulty": [0.0, 1.0]})


def _events():
    """u starts 'a' at 10:00 and submits at 10:02 (120 s); v starts 'a' at 10:01."""
    return pd.DataFrame(
        {
            "user_id": ["u", "v", "u"],
            "item_id": ["a", "a", "b"],
            "topic": "t",
            "timestamp": pd.to_datetime(
                ["2024-01-08 10:00", "2024-01-08 10:01", "2024-01-08 10:05"], utc=True
            ),
            "correct": [1, 0, 1],
            "latency_ms": [120_000, 30_000, 30_000],
            "help_requested": False,
        }
    )


def test_an_attempt_in_progress_is_invisible_offline():
    events = _events()
    during = pd.Timestamp("2024-01-08 10:01:30", tz="UTC")
    after = pd.Timestamp("2024-01-08 10:02:30", tz="UTC")
    assert context.student_context(events, "u", "t", at=during)[schema.N_PRIOR] == 0
    assert context.student_context(events, "u", "t", at=after)[schema.N_PRIOR] == 1
    items = context.item_context(events, ITEMS, at=during).set_index(schema.ITEM_ID)
    assert items.loc["a", schema.ITEM_ATTEMPTS] == 0  # started at 10:00, not yet submitted
    items = context.item_context(events, ITEMS, at=after).set_index(schema.ITEM_ID)
    assert items.loc["a", schema.ITEM_ATTEMPTS] == 2  # u's and v's (done 10:01:30)
    # an attempt in progress is still "recent" for the repeat filter
    assert context.recent_item_ids(events, "u", at=during) == ("a",)


def test_historical_contexts_count_only_completed_attempts():
    hist = context.historical_contexts(_events(), ITEMS)
    # v starts 'a' at 10:01 while u's attempt on 'a' (10:00-10:02) is in progress
    assert hist[schema.ITEM_ATTEMPTS].tolist() == [0, 0, 0]
    # u's second attempt at 10:05: both earlier attempts are completed by then
    assert hist[schema.N_PRIOR].tolist() == [0, 0, 1]


def test_school_context_releases_item_counts_when_completed():
    ctx = SchoolContext(n_students=1, n_topics=1, n_items=1)
    ctx.update(
        np.array([0]),
        np.array([0]),
        np.array([0]),
        np.array([True]),
        np.array([4000.0]),
        np.array([False]),
        done=np.array([100.0]),
    )
    assert ctx.item_attempts(np.array([0])).tolist() == [0]
    ctx.release(100.0)  # completed at 100: not strictly before 100
    assert ctx.item_attempts(np.array([0])).tolist() == [0]
    ctx.release(100.5)
    assert ctx.item_attempts(np.array([0])).tolist() == [1]
    assert ctx.item_accuracy(np.array([0])).tolist() == [2 / 3]


def test_env_item_counts_are_the_attempts_completed_before_each_decision():
    env = SchoolEnv(
        SchoolConfig(n_students=40, seed=3, start_date="2024-01-08", end_date="2024-01-12")
    )
    started, checked, in_progress = [], 0, 0
    while not env.done:
        cands = env.candidate_arrays(columns=(schema.ITEM_ATTEMPTS,))
        first = np.searchsorted(cands.decision, np.arange(cands.n_decisions))
        out = env.step_indices(cands.item[first])  # out.timestamp: each decision's time
        if started:
            log = pd.DataFrame(started, columns=["item", "start", "done"])
            for decision in range(min(3, cands.n_decisions)):
                rows, at = cands.decision == decision, out.timestamp[decision]
                complete = log[log["done"] < at]
                expected = np.bincount(complete["item"], minlength=len(env.world.item_ids))
                np.testing.assert_array_equal(
                    cands.column(schema.ITEM_ATTEMPTS)[rows], expected[cands.item[rows]]
                )
                in_progress += int(((log["start"] < at) & (log["done"] >= at)).sum())
                checked += 1
        started.extend(
            zip(out.item, out.timestamp, out.timestamp + out.latency_ms / 1000.0, strict=True)
        )
    assert checked > 100 and in_progress > 0  # the check met attempts in progress
