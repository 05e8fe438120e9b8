"""The work behind ``trace`` and ``compare-recs``: a student's week, context and recommendations.

Everything here returns plain data (dicts and DataFrames); ``serve.cli`` prints it.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.context import candidate_frame, item_context, student_context
from skbandit.exceptions import SkbanditError
from skbandit.policy import SERVING_OBJECTIVE, rank_linucb, rank_rule_based

RECENT_ITEMS_EXCLUDED = 10
"""Items the student answered in their last this-many attempts are not recommended again."""


@dataclass
class Window:
    """A half-open time window ``[start, end)`` named by an ISO week such as ``2024-W01``."""

    label: str
    start: pd.Timestamp
    end: pd.Timestamp


def parse_week(label: str) -> Window:
    """Parse an ISO week ``YYYY-Www`` into its Monday-to-Monday UTC window.

    >>> parse_week("2024-W01").start.isoformat()
    '2024-01-01T00:00:00+00:00'
    """
    try:
        year, week = label.strip().upper().split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        raise SkbanditError(
            f"cannot read time window {label!r}: expected an ISO week such as 2024-W01"
        ) from None
    start = pd.Timestamp(datetime.combine(monday, time(), tzinfo=UTC))
    return Window(label.strip().upper(), start, start + timedelta(weeks=1))


def whole_history(events: pd.DataFrame) -> Window:
    """A window covering every event (used when no ``--time-window`` is given)."""
    if events.empty:
        now = pd.Timestamp.now(tz="UTC")
        return Window("all", now, now)
    last = events[schema.TIMESTAMP].max()
    return Window("all", events[schema.TIMESTAMP].min(), last + pd.Timedelta(seconds=1))


def check_topic(items: pd.DataFrame, topic: str) -> None:
    """Refuse a topic the items table does not know, naming the closest known topics."""
    known = sorted(items[schema.TOPIC].unique())
    if topic in known:
        return
    close = difflib.get_close_matches(topic, known, n=3, cutoff=0.5) or known[:3]
    raise SkbanditError(f"unknown topic {topic!r}; closest known topics: {', '.join(close)}")


@dataclass
class StudentWeek:
    """A student's attempts on a topic in a window, and their context at the window's end."""

    user_id: str
    topic: str
    window: Window
    attempts: pd.DataFrame
    context: dict
    known_student: bool
    candidates: pd.DataFrame = field(repr=False)


def student_week(events, items, user_id: str, topic: str, window: Window) -> StudentWeek:
    """Gather what ``trace`` shows; the context uses only events before the window's end."""
    check_topic(items, topic)
    mine = events[events[schema.USER_ID] == user_id]
    in_window = mine[
        (mine[schema.TOPIC] == topic)
        & (mine[schema.TIMESTAMP] >= window.start)
        & (mine[schema.TIMESTAMP] < window.end)
    ].sort_values(schema.TIMESTAMP)
    context = student_context(events, user_id, topic, at=window.end)
    before = mine[mine[schema.TIMESTAMP] < window.end].sort_values(schema.TIMESTAMP)
    recent = before[schema.ITEM_ID].tail(RECENT_ITEMS_EXCLUDED).tolist()
    candidates = candidate_frame(
        context, item_context(events, items, at=window.end), topic, recent_item_ids=recent
    )
    if candidates.empty:
        n_items = int((items[schema.TOPIC] == topic).sum())
        raise SkbanditError(
            f"no eligible items for topic {topic!r}: its {n_items} items are drift-flagged or "
            f"among the student's last {RECENT_ITEMS_EXCLUDED} attempts"
        )
    return StudentWeek(user_id, topic, window, in_window, context, not mine.empty, candidates)


@dataclass(frozen=True)
class PolicySettings:
    """How the bandit ranks: exploration mode, objective and their knobs (see skbandit.policy)."""

    exploration: str = "greedy"
    temperature: float = 0.05
    objective: str = SERVING_OBJECTIVE
    target: float = 0.7
    seed: int = 0

    def as_dict(self) -> dict:
        """The settings for ``--json``."""
        return asdict(self)

    def describe(self) -> str | None:
        """One line for people, or None for the default (greedy, the serving objective)."""
        if self == PolicySettings():
            return None
        how = (
            f"softmax exploration (temperature {self.temperature:g}, seed {self.seed})"
            if self.exploration == "softmax"
            else "greedy ranking"
        )
        goal = (
            f"objective target_band (target {self.target:.0%})"
            if self.objective == "target_band"
            else "objective max_success"
        )
        return f"Policy: {how}, {goal}"


def rl_recommendations(
    pipeline, week: StudentWeek, top_k: int, settings: PolicySettings | None = None
) -> pd.DataFrame:
    """LinUCB's top-k for the student's candidates (ties and draws from a seeded generator)."""
    settings = settings or PolicySettings()
    return rank_linucb(
        pipeline,
        week.candidates,
        top_k=top_k,
        rng=np.random.default_rng(settings.seed),
        objective=settings.objective,
        target=settings.target,
        exploration=settings.exploration,
        temperature=settings.temperature,
    )


def rule_recommendations(week: StudentWeek, top_k: int) -> pd.DataFrame:
    """The rule-based baseline's top-k for the same candidates."""
    return rank_rule_based(week.candidates, top_k=top_k)


def comparison(
    rule: pd.DataFrame, rl: pd.DataFrame, settings: PolicySettings | None = None
) -> dict:
    """Overlap of the two lists and, for each RL item the rule lacks, why the bandit chose it."""
    settings = settings or PolicySettings()
    exploited = (
        f"expected success nearer the {settings.target:.0%} target than the rule's picks"
        if settings.objective == "target_band"
        else "higher expected success than the rule's picks"
    )
    rule_items = set(rule[schema.ITEM_ID])
    only_rl = rl[~rl[schema.ITEM_ID].isin(rule_items)]
    why = [
        {
            "item_id": row[schema.ITEM_ID],
            "expected_reward": float(row[schema.EXPECTED_REWARD]),
            "bonus": float(row[schema.UNCERTAINTY]),
            "why": (
                "exploration bonus lifted it into the list"
                if row[schema.IS_EXPLORATION]
                else exploited
            ),
        }
        for row in only_rl.to_dict("records")
    ]
    overlap = sorted(rule_items & set(rl[schema.ITEM_ID]))
    return {"overlap": overlap, "n_overlap": len(overlap), "rl_only": why}
