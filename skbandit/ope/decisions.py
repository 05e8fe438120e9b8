"""The logged decisions: candidate sets and contexts rebuilt from events, chunk by chunk, and
a target policy's probabilities of the logged actions from its candidate tables.

To evaluate a target policy on a logged event, the estimators need the decision as the
logging policy saw it. :func:`logged_decisions` rebuilds it from the events alone:

- candidates: the non-drift items of the event's topic, in items-table order (what
  :meth:`skbandit.sim.env.SchoolEnv.candidates` and the rule+epsilon logging policy use);
- student context: :func:`skbandit.context.historical_contexts` at the event (events of the
  student strictly before it);
- item context of *every* candidate: attempts and smoothed accuracy of the item by anyone
  strictly before the event's timestamp (for the logged item this equals
  ``historical_contexts``), found by binary search in one sorted key array.

The frame of ``n_events x items_per_topic`` rows can be large, so it comes in chunks of
about ``chunk_rows`` rows, each holding whole decisions.

The way back, from a target policy's choice distribution over each decision's candidates
(a long table of decision, item, probability) to the estimator inputs of the logged
actions: :func:`logged_action_probability` (``pi(a_i | x_i)``) and
:func:`policy_expected_reward` (``sum_a pi(a | x_i) q(x_i, a)``, for doubly robust). For a
target policy given as a callable, :func:`skbandit.ope.targets.off_policy_inputs` computes
both chunk by chunk.

Notes
-----
In the simulated school the environment counts an item's attempts only from earlier
2-minute steps, so the item statistics a policy saw online may lag the rebuilt ones by the
attempts of other students in the same step (a handful at most). The rebuilt context is
the one an off-policy estimate refers to: the value of the target acting on these
contexts. The logging policy's probabilities depend only on mastery and published
difficulty, which the rebuild reproduces exactly (``tests/skbandit/test_ope_validation.py``).
"""

from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.context import DEFAULT_DISCRIMINATION, historical_contexts
from skbandit.exceptions import SkbanditError
from skbandit.irt import guessing_of
from skbandit.ope.estimators import finite_vector

EVENT_ROW = "event_row"
"""Column of a candidate chunk: position of the decision's event in ``events``."""
IS_LOGGED = "is_logged"
"""Column of a candidate chunk: True on the row of the item the logging policy showed."""
CHUNK_ROWS = 2**19
"""Candidate rows per chunk (about 60 MiB of float columns)."""


def logged_decisions(
    events, items, *, contexts=None, rows=None, chunk_rows=CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Yield the candidate frames of the logged decisions, chunk by chunk.

    Parameters
    ----------
    events : DataFrame of shape (n_events, ...)
        Canonical events; every ``item_id`` must be in ``items``.
    items : DataFrame
        Item table (``item_id, topic, difficulty`` and optionally ``discrimination``,
        ``guessing``, ``drift_flag``).
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
        raise SkbanditError(
            f"contexts has {len(contexts)} rows but events has {len(events)}; "
            "pass historical_contexts(events, items)"
        )
    topic = table.topic_codes(events[schema.TOPIC].to_numpy()[selected])
    counts = table.sizes[topic]
    if (counts == 0).any():
        bad = events[schema.TOPIC].to_numpy()[selected][counts == 0][0]
        raise SkbanditError(
            f"{int((counts == 0).sum())} logged decisions are about topics "
            f"without eligible items, e.g. {bad!r}; add the topic's items to "
            "the items table (drift-flagged items are never candidates)"
        )
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
        frame = {
            schema.DECISION_ID: lo + r,
            EVENT_ROW: event,
            schema.USER_ID: users[event],
            schema.ITEM_ID: table.item_ids[item],
            schema.TOPIC: table.topics[item],
        }
        frame.update({name: values[event] for name, values in student.items()})
        frame[schema.DIFFICULTY] = table.difficulty[item]
        frame[schema.DISCRIMINATION] = table.discrimination[item]
        frame[schema.GUESSING] = table.guessing[item]
        frame[schema.ITEM_ATTEMPTS] = attempts
        frame[schema.ITEM_ACCURACY] = (correct + 1.0) / (attempts + 2.0)
        frame[IS_LOGGED] = item == logged_item[event]
        yield pd.DataFrame(frame)


# --- the target's probabilities of logged actions, from candidate tables ------------


def logged_action_probability(
    candidate_decision_ids,
    candidate_item_ids,
    candidate_probs,
    logged_decision_ids,
    logged_item_ids,
):
    """The target policy's probability of each logged action, from per-decision tables.

    Parameters
    ----------
    candidate_decision_ids, candidate_item_ids, candidate_probs : array-like of shape (m,)
        The target policy's choice distribution, one row per (decision, candidate item).
        Each (decision, item) pair appears once and each decision's probabilities sum
        to at most 1.
    logged_decision_ids, logged_item_ids : array-like of shape (n,)
        The logged decision and the item the logging policy chose.

    Returns
    -------
    ndarray of shape (n,)
        ``pi(a_i | x_i)``; 0 where the logged item is not among the target's candidates.

    Examples
    --------
    >>> logged_action_probability([1, 1, 2, 2], ["a", "b", "a", "c"], [0.9, 0.1, 0.5, 0.5],
    ...                           [2, 1], ["c", "d"]).tolist()
    [0.5, 0.0]
    """
    table = _candidate_table(candidate_decision_ids, candidate_item_ids, candidate_probs)
    logged = _logged_table(logged_decision_ids, logged_item_ids, table)
    merged = logged.merge(table, on=["decision", "item"], how="left", validate="many_to_one")
    return merged["prob"].fillna(0.0).to_numpy(dtype=np.float64)


def policy_expected_reward(
    candidate_decision_ids, candidate_probs, candidate_rewards, logged_decision_ids
):
    """``sum_a pi(a | x) q(x, a)`` for each logged decision (the DR model term).

    Parameters
    ----------
    candidate_decision_ids, candidate_probs : array-like of shape (m,)
        The target's choice distribution, as in :func:`logged_action_probability`.
    candidate_rewards : array-like of shape (m,)
        The reward model ``q(x, a)`` for each candidate row.
    logged_decision_ids : array-like of shape (n,)
        The logged decisions, in the order of the other estimator inputs.

    Returns
    -------
    ndarray of shape (n,)

    Examples
    --------
    >>> policy_expected_reward([1, 1, 2], [0.5, 0.5, 1.0], [0.2, 0.6, 0.9], [2, 1]).tolist()
    [0.9, 0.4]
    """
    table = _candidate_table(
        candidate_decision_ids, np.arange(len(candidate_probs)), candidate_probs
    )
    table["value"] = table["prob"] * finite_vector(
        "candidate_rewards", candidate_rewards, len(table), rows="the candidate table has {n} rows"
    )
    per_decision = table.groupby("decision", sort=False)["value"].sum().rename("expected")
    logged = _logged_table(logged_decision_ids, None, table)
    merged = logged.join(per_decision, on="decision")
    return merged["expected"].to_numpy(dtype=np.float64)


# --- internals -------------------------------------------------------------------------


class _TopicTable:
    """Items by topic: each topic's non-drift items (padded with -1), in table order."""

    def __init__(self, items):
        items = items.reset_index(drop=True)
        if items[schema.ITEM_ID].duplicated().any():
            dup = items.loc[items[schema.ITEM_ID].duplicated(), schema.ITEM_ID].iloc[0]
            raise SkbanditError(
                f"items has duplicate item_id {dup!r} (expected one row per "
                "item); drop the duplicates first"
            )
        self.index = pd.Index(items[schema.ITEM_ID])
        self.item_ids = items[schema.ITEM_ID].to_numpy()
        self.topics = items[schema.TOPIC].to_numpy()
        self.difficulty = items[schema.DIFFICULTY].to_numpy(np.float64)
        disc = (
            items[schema.DISCRIMINATION].to_numpy(np.float64, na_value=np.nan)
            if schema.DISCRIMINATION in items.columns
            else np.full(len(items), np.nan)
        )
        self.discrimination = np.where(np.isnan(disc), DEFAULT_DISCRIMINATION, disc)
        self.guessing = guessing_of(items)
        drift = (
            items[schema.DRIFT_FLAG].fillna(False).to_numpy(dtype=bool)
            if schema.DRIFT_FLAG in items.columns
            else np.zeros(len(items), dtype=bool)
        )
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
    """Attempts and correct answers on an item completed strictly before a logged event's time.

    An attempt is completed at ``timestamp + latency_ms`` (its start when the latency is
    missing), as in :mod:`skbandit.context`.
    """

    def __init__(self, events, table):
        ts = pd.DatetimeIndex(pd.to_datetime(events[schema.TIMESTAMP], utc=True)).asi8
        latency = (
            events[schema.LATENCY_MS].to_numpy(np.float64, na_value=np.nan)
            if schema.LATENCY_MS in events.columns
            else np.zeros(len(events))
        )
        done = ts + np.round(np.nan_to_num(latency, nan=0.0) * 1e6).astype(np.int64)
        rank = np.unique(np.concatenate([done, ts]), return_inverse=True)[1].astype(np.int64)
        done_clock, self.clock = rank[: len(ts)], rank[len(ts) :]
        self.width = int(rank.max(initial=0)) + 2
        item = table.index.get_indexer(events[schema.ITEM_ID])
        known = item >= 0
        keys = item[known] * self.width + done_clock[known]
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        correct = events[schema.CORRECT].to_numpy(np.float64)[known][order]
        self.correct = np.r_[0.0, np.cumsum(correct)]

    def before(self, item, event):
        """``(attempts, correct)`` on ``item`` completed strictly before each ``event``'s time."""
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


def _candidate_table(decision_ids, item_ids, probs):
    """Validated long table ``decision, item, prob`` of a policy's choice distribution."""
    probs = finite_vector("candidate_probs", probs)
    table = pd.DataFrame(
        {
            "decision": _column("candidate_decision_ids", decision_ids, len(probs)),
            "item": _column("candidate_item_ids", item_ids, len(probs)),
            "prob": probs,
        }
    )
    outside = (probs < 0.0) | (probs > 1.0)
    if outside.any():
        first = np.flatnonzero(outside)[0]
        raise SkbanditError(
            f"candidate_probs must lie in [0, 1] (a probability of choosing the candidate); "
            f"{outside.sum()} values are outside, first {probs[first]!r} at row {first}"
        )
    duplicated = table.duplicated(["decision", "item"])
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise SkbanditError(
            f"candidate item {row['item']!r} appears twice in decision "
            f"{row['decision']!r}; give each (decision, item) pair once"
        )
    sums = table.groupby("decision", sort=False)["prob"].sum()
    if (sums > 1.0 + 1e-9).any():
        raise SkbanditError(
            f"candidate probabilities of decision {sums.idxmax()!r} sum to {sums.max():.6g}, "
            "expected at most 1 (one chosen action per decision, not top-k marginals)"
        )
    return table


def _logged_table(decision_ids, item_ids, table):
    """Logged ``decision`` (and ``item``) columns; every decision must have candidates."""
    decisions = np.atleast_1d(np.asarray(decision_ids))
    n = len(decisions)
    if n == 0:
        raise SkbanditError("logged_decision_ids is empty; off-policy evaluation needs logged rows")
    logged = pd.DataFrame({"decision": _column("logged_decision_ids", decisions, n)})
    if item_ids is not None:
        logged["item"] = _column("logged_item_ids", item_ids, n)
    unknown = ~logged["decision"].isin(table["decision"])
    if unknown.any():
        raise SkbanditError(
            f"{unknown.sum()} logged decisions have no candidate table, e.g. "
            f"{logged['decision'][unknown].iloc[0]!r}; score the target policy on every "
            "logged decision"
        )
    return logged


def _column(name, values, n):
    """A one-dimensional id column of length ``n`` without missing values."""
    array = np.asarray(values)
    if array.ndim != 1 or len(array) != n:
        raise SkbanditError(
            f"{name} has shape {array.shape}, expected ({n},) "
            "(one entry per row of the table it belongs to)"
        )
    column = pd.Series(array)
    if column.isna().any():
        raise SkbanditError(f"{name} has {column.isna().sum()} missing ids; drop those rows")
    return column
