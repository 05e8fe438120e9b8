"""The logged decisions rebuilt from events: candidate sets and contexts, chunk by chunk.

To evaluate a target policy on a logged event, the estimators need the decision as the
logging policy saw it. :func:`logged_decisions` rebuilds it from the events alone:

- candidates: the non-drift items of the event's topic, in items-table order (what
  :meth:`skbandit.school_env.SchoolEnv.candidates` and the rule+epsilon logging policy use);
- student context: :func:`skbandit.context.historical_contexts` at the event (events of the
  student strictly before it);
- item context of *every* candidate: attempts and smoothed accuracy of the item by anyone
  strictly before the event's timestamp (for the logged item this equals
  ``historical_contexts``), found by binary search in one sorted key array.

The frame of ``n_events x items_per_topic`` rows can be large, so it comes in chunks of
about ``chunk_rows`` rows, each holding whole decisions.

Notes
-----
In the simulated school the environment counts an item's attempts only from earlier
2-minute steps, so the item statistics a policy saw online may lag the rebuilt ones by the
attempts of other students in the same step (a handful at most). The rebuilt context is
the one an off-policy estimate refers to: the value of the target acting on these
contexts. The logging policy's probabilities depend only on mastery and published
difficulty, which the rebuild reproduces exactly (``tests/test_ope_validation.py``).
"""

from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.context import DEFAULT_DISCRIMINATION, historical_contexts
from skbandit.exceptions import SkbanditError
from skbandit.school_env import DECISION_ID

EVENT_ROW = "event_row"
"""Column of a candidate chunk: position of the decision's event in ``events``."""
IS_LOGGED = "is_logged"
"""Column of a candidate chunk: True on the row of the item the logging policy showed."""
CHUNK_ROWS = 2**19
"""Candidate rows per chunk (about 60 MiB of float columns)."""


def logged_decisions(events, items, *, contexts=None, rows=None, chunk_rows=CHUNK_ROWS
                     ) -> Iterator[pd.DataFrame]:
    """Yield the candidate frames of the logged decisions, chunk by chunk.

    Parameters
    ----------
    events : DataFrame of shape (n_events, ...)
        Canonical events; every ``item_id`` must be in ``items``.
    items : DataFrame
        Item table (``item_id, topic, difficulty`` and optionally ``discrimination``,
        ``drift_flag``).
    contexts : DataFrame of shape (n_events, ...), optional
        :func:`skbandit.context.historical_contexts` of ``events`` (computed if omitted).
    rows : array-like of int or bool, optional
        The decisions to rebuild (positions in ``events`` or a mask); default all. The
        contexts always use every event.
    chunk_rows : int, default=CHUNK_ROWS
        Approximate candidate rows per chunk (a decision is never split).

    Yields
    ------
    DataFrame
        ``decision_id`` (position among the selected decisions), ``event_row``,
        ``schema.CANDIDATE_COLUMNS`` and ``is_logged``; rows grouped by decision.
    """
    table = _TopicTable(items)
    selected = decision_positions(rows, len(events))
    if contexts is None:
        contexts = historical_contexts(events, items)
    if len(contexts) != len(events):
        raise SkbanditError(f"contexts has {len(contexts)} rows but events has {len(events)}; "
                            "pass historical_contexts(events, items)")
    topic = table.topic_codes(events[schema.TOPIC].to_numpy()[selected])
    counts = table.sizes[topic]
    if (counts == 0).any():
        bad = events[schema.TOPIC].to_numpy()[selected][counts == 0][0]
        raise SkbanditError(f"{int((counts == 0).sum())} logged decisions are about topics "
                            f"without eligible items, e.g. {bad!r}; add the topic's items to "
                            "the items table (drift-flagged items are never candidates)")
    stats = _ItemStats(events, table)
    student = {name: contexts[name].to_numpy(np.float64) for name in schema.STUDENT_CONTEXT}
    users = events[schema.USER_ID].to_numpy()
    logged_item = table.index.get_indexer(events[schema.ITEM_ID])
    bounds = _chunk_bounds(counts, chunk_rows)
    for lo, hi in pairwise(bounds):
        padded = table.members[topic[lo:hi]]
        r, c = np.nonzero(padded >= 0)
        item, event = padded[r, c], selected[lo:hi][r]
        attempts, correct = stats.before(item, event)
        frame = {DECISION_ID: lo + r, EVENT_ROW: event, schema.USER_ID: users[event],
                 schema.ITEM_ID: table.item_ids[item], schema.TOPIC: table.topics[item]}
        frame.update({name: values[event] for name, values in student.items()})
        frame[schema.DIFFICULTY] = table.difficulty[item]
        frame[schema.DISCRIMINATION] = table.discrimination[item]
        frame[schema.ITEM_ATTEMPTS] = attempts
        frame[schema.ITEM_ACCURACY] = (correct + 1.0) / (attempts + 2.0)
        frame[IS_LOGGED] = item == logged_item[event]
        yield pd.DataFrame(frame)


# --- internals -------------------------------------------------------------------------


class _TopicTable:
    """Items by topic: each topic's non-drift items (padded with -1), in table order."""

    def __init__(self, items):
        items = items.reset_index(drop=True)
        if items[schema.ITEM_ID].duplicated().any():
            dup = items.loc[items[schema.ITEM_ID].duplicated(), schema.ITEM_ID].iloc[0]
            raise SkbanditError(f"items has duplicate item_id {dup!r} (expected one row per "
                                "item); drop the duplicates first")
        self.index = pd.Index(items[schema.ITEM_ID])
        self.item_ids = items[schema.ITEM_ID].to_numpy()
        self.topics = items[schema.TOPIC].to_numpy()
        self.difficulty = items[schema.DIFFICULTY].to_numpy(np.float64)
        disc = (items[schema.DISCRIMINATION].to_numpy(np.float64, na_value=np.nan)
                if schema.DISCRIMINATION in items.columns else np.full(len(items), np.nan))
        self.discrimination = np.where(np.isnan(disc), DEFAULT_DISCRIMINATION, disc)
        drift = (items[schema.DRIFT_FLAG].fillna(False).to_numpy(dtype=bool)
                 if schema.DRIFT_FLAG in items.columns else np.zeros(len(items), dtype=bool))
        codes, self.topic_names = pd.factorize(items[schema.TOPIC])
        eligible = np.flatnonzero(~drift)
        self.sizes = np.bincount(codes[eligible], minlength=len(self.topic_names))
        width = max(int(self.sizes.max(initial=0)), 1)
        self.members = np.full((len(self.topic_names) + 1, width), -1, dtype=np.int64)
        slot = pd.Series(codes[eligible]).groupby(codes[eligible]).cumcount().to_numpy()
        self.members[codes[eligible], slot] = eligible
        self.sizes = np.r_[self.sizes, 0]  # the last row: topics the table does not know

    def topic_codes(self, topics):
        codes = pd.Index(self.topic_names).get_indexer(topics)
        return np.where(codes < 0, len(self.topic_names), codes)


class _ItemStats:
    """Attempts and correct answers on an item strictly before a logged event's time."""

    def __init__(self, events, table):
        ts = pd.DatetimeIndex(pd.to_datetime(events[schema.TIMESTAMP], utc=True)).asi8
        self.clock = np.unique(ts, return_inverse=True)[1].astype(np.int64)
        self.width = int(self.clock.max(initial=0)) + 2
        item = table.index.get_indexer(events[schema.ITEM_ID])
        known = item >= 0
        keys = item[known] * self.width + self.clock[known]
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        correct = events[schema.CORRECT].to_numpy(np.float64)[known][order]
        self.correct = np.r_[0.0, np.cumsum(correct)]

    def before(self, item, event):
        """``(attempts, correct)`` on ``item`` strictly before each ``event``'s timestamp."""
        lo = np.searchsorted(self.keys, item * self.width, side="left")
        hi = np.searchsorted(self.keys, item * self.width + self.clock[event], side="left")
        return (hi - lo).astype(np.float64), self.correct[hi] - self.correct[lo]


def decision_positions(rows, n):
    """Positions of the selected decisions, from None (all), a boolean mask or positions."""
    if rows is None:
        chosen = np.arange(n)
    else:
        rows = np.asarray(rows)
        chosen = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
        if rows.dtype == bool and len(rows) != n:
            raise SkbanditError(f"rows mask has {len(rows)} entries, events has {n}")
        if chosen.size and (chosen.min() < 0 or chosen.max() >= n):
            raise SkbanditError(f"rows must be positions in 0..{n - 1}")
    if chosen.size == 0:
        raise SkbanditError("no logged decisions to evaluate (expected at least one event)")
    return chosen


def _chunk_bounds(counts, chunk_rows):
    """Decision boundaries so that each chunk holds about ``chunk_rows`` candidate rows."""
    total = np.cumsum(counts)
    cuts = np.searchsorted(total, np.arange(chunk_rows, total[-1], chunk_rows), side="left")
    return np.unique(np.r_[0, cuts + 1, len(counts)].clip(0, len(counts)))
