"""Counts over every event's earlier events at once: sorted prefix sums, no loop per event.

For other engines (the Spark job mirrors this): with ``done = timestamp + latency_ms``
(``latency_ms`` missing -> 0), the earlier events of a decision at ``t`` by student ``u``
are ``{e : e.user_id = u and e.done < t}``; topic counts add ``e.topic = topic``; item
counts are ``{e : e.item_id = i and e.done < t}``.

These are the counting halves of :func:`skbandit.context.historical_contexts`; engines that
hold whole students (or whole items) but not all events run them per partition.
"""

import numpy as np
import pandas as pd

from skbandit import ability as ability_model
from skbandit import schema
from skbandit.context_features import RECENT_WINDOW
from skbandit.item_table import DEFAULT_DISCRIMINATION


def student_counts(
    user,
    topic,
    ts,
    done,
    correct,
    latency_ms,
    help_requested,
    difficulty=None,
    discrimination=None,
    guessing=None,
):
    """Every event's counts over its student's earlier events (completed before it started).

    The student half of :func:`~skbandit.context.historical_contexts`, for engines that
    hold whole students but not whole items (the Spark engine runs it per partition). All
    arguments are arrays with one entry per event, events in time order (ties in time keep
    this order).

    Parameters
    ----------
    user, topic : array-like of shape (n_events,)
        Keys of the events.
    ts, done : ndarray of int64 of shape (n_events,)
        Start and completion times in nanoseconds (:func:`completion_ns`).
    correct, latency_ms, help_requested : ndarray of shape (n_events,)
        The events' outcomes; NaN where a latency or a help flag is unknown.
    difficulty, discrimination, guessing : ndarray of shape (n_events,), optional
        The IRT parameters of each event's item
        (:func:`~skbandit.item_table.event_item_parameters`); without them every item
        counts as b = 0, a = 1, c = 0.

    Returns
    -------
    dict of str to ndarray
        The keyword arguments of :func:`~skbandit.context_features.student_features`:
        ``n``, ``n_correct``, ``n_topic``, ``n_topic_correct``, ``recent_correct``,
        ``latency_lags``, ``help_sum``, ``help_known`` and the ability's sums
        :data:`~skbandit.context_features.ABILITY_SUMS` (summed
        within each student in time order, so any partition of whole students gives the
        same values to the last bit).

    Examples
    --------
    The second attempt starts before the first is completed, so it sees nothing:

    >>> counts = student_counts(["u", "u", "u"], ["t", "t", "t"], np.array([0, 5, 20]),
    ...                         np.array([10, 15, 25]), np.array([1.0, 0.0, 1.0]),
    ...                         np.full(3, np.nan), np.full(3, np.nan))
    >>> counts["n"].tolist(), counts["n_correct"].tolist()
    ([0.0, 0.0, 2.0], [0.0, 0.0, 1.0])
    """
    user = pd.factorize(np.asarray(user))[0]
    topic = pd.factorize(np.asarray(topic))[0]
    order, start, end = _completed_ranges(user, ts, done)
    csum = _prefix(correct[order])
    help_ = np.asarray(help_requested, dtype=np.float64)[order]
    t_order, t_start, t_end = _completed_ranges(
        user.astype(np.int64) * (topic.max(initial=0) + 1) + topic, ts, done
    )
    tsum = _prefix(correct[t_order])
    n_events = len(correct)
    if difficulty is None:
        difficulty, discrimination, guessing = (
            np.zeros(n_events),
            np.full(n_events, DEFAULT_DISCRIMINATION),
            np.zeros(n_events),
        )
    evidence = ability_model.attempt_evidence(correct, difficulty, discrimination, guessing)
    sums = {}
    clock, n_earlier = ability_model.attempt_clock(order, start, end)
    for prefix, (o, lo, hi) in (("", (order, start, end)), ("topic_", (t_order, t_start, t_end))):
        for name, values in zip(("score", "info", "info_b"), evidence, strict=True):
            sums[prefix + name] = ability_model.faded_prefix_sum(
                lambda v, o=o, lo=lo, hi=hi: _group_prefix_sum(v[o], lo, hi),
                values,
                clock,
                n_earlier,
            )
    return dict(
        **sums,
        n=(end - start).astype(np.float64),
        n_correct=csum[end] - csum[start],
        n_topic=(t_end - t_start).astype(np.float64),
        n_topic_correct=tsum[t_end] - tsum[t_start],
        recent_correct=csum[end] - csum[np.maximum(start, end - RECENT_WINDOW)],
        latency_lags=_lags(np.asarray(latency_ms, dtype=np.float64)[order], start, end),
        help_sum=_window_sum(np.nan_to_num(help_), start, end),
        help_known=_window_sum((~np.isnan(help_)).astype(np.float64), start, end),
    )


def item_counts(item, ts, done, correct):
    """Every event's earlier attempts on its item by anyone, and how many were correct.

    The item half of :func:`~skbandit.context.historical_contexts` (arguments as in
    :func:`student_counts`).

    >>> item_counts(["a", "a", "b"], np.array([0, 20, 30]), np.array([10, 25, 35]),
    ...             np.array([1.0, 0.0, 1.0]))
    (array([0., 1., 0.]), array([0., 1., 0.]))
    """
    item = pd.factorize(np.asarray(item))[0]
    order, start, end = _completed_ranges(item, ts, done)
    csum = _prefix(correct[order])
    return (end - start).astype(np.float64), csum[end] - csum[start]


def completion_ns(ts, latency_ms):
    """Completion time of every event (ns): its start plus its latency (0 when missing)."""
    latency = np.nan_to_num(np.asarray(latency_ms, dtype=np.float64), nan=0.0)
    return np.asarray(ts, dtype=np.int64) + np.round(latency * 1e6).astype(np.int64)


def done_ns(events):
    latency = float_column(events, schema.LATENCY_MS)
    return completion_ns(utc_ns(events[schema.TIMESTAMP]), latency)


def float_column(frame, name):
    """A column as float64 with NaN for missing values (all NaN when the column is absent)."""
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def utc_ns(timestamps):
    """Timestamps as int64 nanoseconds since the epoch, naive values taken as UTC."""
    return pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).as_unit("ns").asi8


def utc_ns_scalar(at):
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.as_unit("ns").value


def _completed_ranges(group, ts, done):
    """Rows sorted by (group, completion time); each row's range of earlier-completed rows.

    Returns ``order`` (rows sorted by group, then ``done``, ties in row order) and, for
    every row ``i`` in input order, ``start[i]`` (first sorted position of its group) and
    ``end[i]`` (first sorted position of its group completed at or after ``ts[i]``): the
    rows of its group completed strictly before row ``i`` started are the sorted positions
    ``start[i] .. end[i] - 1``.

    >>> order, start, end = _completed_ranges(np.array([0, 0, 0]), np.array([0, 10, 20]),
    ...                                       np.array([15, 12, 25]))
    >>> order.tolist(), start.tolist(), end.tolist()
    ([1, 0, 2], [0, 0, 0], [0, 0, 2])
    """
    order = np.lexsort((done, group))
    group = np.asarray(group, dtype=np.int64)
    # rank both time arrays jointly so that (group, time) packs into one sortable integer
    _, rank = np.unique(np.concatenate([done[order], ts]), return_inverse=True)
    width = np.int64(rank.max() + 2)
    sorted_key = group[order] * width + rank[: len(order)]
    end = np.searchsorted(sorted_key, group * width + rank[len(order) :], side="left")
    start = np.searchsorted(sorted_key, group * width, side="left")
    return order, start, end


def _group_prefix_sum(sorted_values, start, end):
    """Sum of ``sorted_values[start:end]`` per row, adding from each group's start.

    ``start`` is the first sorted position of the row's group, so the sum restarts at 0 in
    every group: the result does not depend on which other groups share the arrays.
    """
    if len(sorted_values) == 0:
        return np.zeros(len(start))
    group_start = np.zeros(len(sorted_values), dtype=np.int64)
    firsts = np.unique(start)
    group_start[firsts[firsts < len(sorted_values)]] = 1
    label = np.cumsum(group_start)
    running = pd.Series(sorted_values).groupby(label).cumsum().to_numpy(np.float64)
    return np.where(end > start, running[np.maximum(end - 1, 0)], 0.0)


def _prefix(values):
    """``p[k] = values[:k].sum()`` (length ``len(values) + 1``)."""
    return np.concatenate([[0.0], np.cumsum(values)])


def _window_sum(values, lo, hi):
    p = _prefix(values)
    return p[hi] - p[lo]


def _lags(values, start, tie):
    """Matrix of the ``RECENT_WINDOW`` latest earlier values (NaN where there are fewer)."""
    out = np.full((len(values), RECENT_WINDOW), np.nan)
    for k in range(1, RECENT_WINDOW + 1):
        pos = tie - k
        ok = pos >= start
        out[ok, RECENT_WINDOW - k] = values[pos[ok]]
    return out
