"""The work behind ``trace`` and ``compare-recs``: a student's week, context and recommendations.

Everything here returns plain data (dicts and DataFrames); ``serve.cli`` prints it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.context import ABILITY_SD, candidate_frame, item_context, student_context
from skbandit.exceptions import SkbanditError
from skbandit.explanations import ranking_reasons
from skbandit.policy import rank_linucb, rank_rule_based, resolve_objective, score_candidates
from skbandit.ranking_settings import (
    SERVING_SETTINGS,
    TARGET_OBJECTIVES,
    Exploration,
    Objective,
    RankingSettings,
)

RECENT_ITEMS_EXCLUDED = 10
"""Items the student answered in their last this-many attempts are not recommended again."""
SIMILAR_IDS = 3
"""How many close known student ids an unknown id is answered with."""


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


def check_window(events: pd.DataFrame, window: Window) -> None:
    """Refuse a week that lies wholly outside the events, naming the data's date range."""
    if events.empty:
        return
    first, last = events[schema.TIMESTAMP].min(), events[schema.TIMESTAMP].max()
    if window.end > first and window.start <= last:
        return
    raise SkbanditError(
        f"time window {window.label} ({window.start:%Y-%m-%d} to "
        f"{window.end - timedelta(days=1):%Y-%m-%d}) is outside the data, which runs from "
        f"{first:%Y-%m-%d} ({_iso_week(first)}) to {last:%Y-%m-%d} ({_iso_week(last)}); pick "
        "a week in that range or leave out --time-window"
    )


def _iso_week(stamp: pd.Timestamp) -> str:
    year, week, _ = stamp.isocalendar()
    return f"{year}-W{week:02d}"


def similar_student_ids(events: pd.DataFrame, user_id: str, n: int = SIMILAR_IDS) -> list[str]:
    """Known ids that look like ``user_id``: case-insensitive matches first, then close ones.

    >>> frame = pd.DataFrame({"user_id": ["ABC123", "ABD123", "XYZ999"]})
    >>> similar_student_ids(frame, "abc123")
    ['ABC123', 'ABD123']
    """
    known = pd.unique(events[schema.USER_ID].astype(str))
    same = [k for k in known if k.casefold() == user_id.casefold()]
    folded = {k.casefold(): k for k in known}
    close = difflib.get_close_matches(user_id.casefold(), list(folded), n=n, cutoff=0.6)
    return list(dict.fromkeys(same + [folded[c] for c in close]))[:n]


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
    similar_ids: tuple[str, ...] = ()


def student_week(events, items, user_id: str, topic: str, window: Window) -> StudentWeek:
    """Gather what ``trace`` shows; the context uses only events before the window's end."""
    check_topic(items, topic)
    mine = events[events[schema.USER_ID] == user_id]
    in_window = mine[
        (mine[schema.TOPIC] == topic)
        & (mine[schema.TIMESTAMP] >= window.start)
        & (mine[schema.TIMESTAMP] < window.end)
    ].sort_values(schema.TIMESTAMP)
    context = student_context(events, user_id, topic, at=window.end, items=items)
    before = mine[mine[schema.TIMESTAMP] < window.end].sort_values(schema.TIMESTAMP)
    recent = before[schema.ITEM_ID].tail(RECENT_ITEMS_EXCLUDED).tolist()
    candidates = candidate_frame(
        context, item_context(events, items, at=window.end), topic, recent_item_ids=recent
    )
    candidates[ABILITY_SD] = context[ABILITY_SD]  # the student's own interval (not a model input)
    if candidates.empty:
        n_items = int((items[schema.TOPIC] == topic).sum())
        raise SkbanditError(
            f"no eligible items for topic {topic!r}: its {n_items} items are drift-flagged or "
            f"among the student's last {RECENT_ITEMS_EXCLUDED} attempts"
        )
    similar = () if not mine.empty else tuple(similar_student_ids(events, user_id))
    return StudentWeek(
        user_id, topic, window, in_window, context, not mine.empty, candidates, similar
    )


@dataclass(frozen=True)
class PolicySettings:
    """How the bandit ranks for ``trace`` and ``compare-recs``: the settings and their seed.

    ``ranking`` (a :class:`~skbandit.ranking_settings.RankingSettings`) is checked when it
    is built; ``seed`` seeds the tie-breaks and softmax draws (None: unseeded, OS entropy).
    """

    ranking: RankingSettings = SERVING_SETTINGS
    seed: int | None = None

    def for_model(self, pipeline) -> PolicySettings:
        """These settings with the model's learned target (``learning_progress``)."""
        return PolicySettings(resolve_objective(pipeline, self.ranking), self.seed)

    def as_dict(self) -> dict:
        """The settings for ``--json``."""
        ranking = self.ranking
        return {
            "exploration": ranking.exploration.value,
            "temperature": ranking.temperature,
            "objective": ranking.objective.value,
            "target": ranking.target,
            "seed": self.seed,
        }

    def describe(self) -> str | None:
        """One line for people, or None for the default (greedy, the serving objective)."""
        if self.as_dict() == PolicySettings().as_dict():
            return None
        ranking = self.ranking
        how = (
            f"softmax exploration (temperature {ranking.temperature:g}"
            + ("" if self.seed is None else f", seed {self.seed}")
            + ")"
            if ranking.exploration is Exploration.softmax
            else "greedy ranking"
        )
        learned = "learned " if ranking.objective is Objective.learning_progress else ""
        goal = (
            f"objective {ranking.objective.value} ({learned}target {ranking.target:.0%})"
            if ranking.objective in TARGET_OBJECTIVES
            else "objective max_success"
        )
        return f"Policy: {how}, {goal}"


def rl_recommendations(
    pipeline, week: StudentWeek, settings: PolicySettings | None = None
) -> pd.DataFrame:
    """LinUCB's top-k for the student's candidates (ties and draws from a seeded generator).

    Each row also has the item's ``difficulty`` and a ``reason`` saying what sets it apart
    (:func:`skbandit.explanations.ranking_reasons`).
    """
    settings = settings or PolicySettings()
    ranking = resolve_objective(pipeline, settings.ranking)
    recs = rank_linucb(pipeline, week.candidates, ranking, rng=np.random.default_rng(settings.seed))
    base = score_candidates(pipeline, week.candidates, ranking).base
    target = ranking.target if ranking.objective in TARGET_OBJECTIVES else None
    cold = int(week.context.get(schema.N_PRIOR, 0)) == 0
    recs[schema.REASON] = ranking_reasons(
        pipeline, week.candidates, recs, base, target=target, cold_start=cold
    )
    return _with_difficulty(recs, week.candidates)


def rule_recommendations(week: StudentWeek, top_k: int) -> pd.DataFrame:
    """The rule-based baseline's top-k for the same candidates (with each item's difficulty)."""
    return _with_difficulty(rank_rule_based(week.candidates, top_k=top_k), week.candidates)


def _with_difficulty(recs: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
    """``recs`` with the item's IRT ``difficulty`` after ``item_id``."""
    difficulty = candidates.set_index(schema.ITEM_ID)[schema.DIFFICULTY]
    recs.insert(
        recs.columns.get_loc(schema.ITEM_ID) + 1,
        schema.DIFFICULTY,
        recs[schema.ITEM_ID].map(difficulty).to_numpy(np.float64),
    )
    return recs


def comparison(
    rule: pd.DataFrame, rl: pd.DataFrame, settings: PolicySettings | None = None
) -> dict:
    """Overlap of the two lists and, for each RL item the rule lacks, why the bandit chose it."""
    ranking = (settings or PolicySettings()).ranking
    exploited = (
        f"expected success nearer the {ranking.target:.0%} target than the rule's picks"
        if ranking.objective in TARGET_OBJECTIVES
        else "higher expected success than the rule's picks"
    )
    rule_items = set(rule[schema.ITEM_ID])
    only_rl = rl[~rl[schema.ITEM_ID].isin(rule_items)]
    why = [
        {
            "item_id": row[schema.ITEM_ID],
            "expected_reward": float(row[schema.EXPECTED_REWARD]),
            "success_low": float(row[schema.SUCCESS_LOW]),
            "success_high": float(row[schema.SUCCESS_HIGH]),
            "ucb_bonus": float(row[schema.UCB_BONUS]),
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
