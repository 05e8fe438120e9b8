"""Student and item context at a decision time, built from canonical learning events.

A context at time ``t`` uses only events **completed strictly before** ``t``: an event's
completion time is ``timestamp + latency_ms`` (its start when the latency is missing), so an
attempt still in progress at ``t`` (started, not yet submitted) is invisible, and an event
completed at the decision's own timestamp is not "before" it, so a tie never leaks the
outcome being predicted. (:func:`recent_item_ids` is the exception: an attempt in progress
is recent, so it counts by its start.) :func:`student_context` and :func:`item_context`
answer one decision; :func:`historical_contexts` computes the same values at every logged
event at once (sorted prefix sums and lagged windows, no Python loop per event) for
warm-starting a model, and agrees exactly with the per-decision functions.
:func:`candidate_frame` joins one student's context to the eligible items of a topic, one
row per candidate, with the raw columns the feature pipeline reads
(``schema.CANDIDATE_COLUMNS``).

Definitions (``n`` earlier events of the student, ``c`` of them correct):

- ``ability`` and ``ability_sd``: the difficulty-adjusted ability on the topic, a Gaussian
  posterior in logits from the student's earlier attempts and their items' IRT parameters,
  with the student's level on other topics as the prior (:mod:`skbandit.ability`).
- ``mastery``: ``sigmoid(ability)`` (the chance on an item of difficulty 0); an optional
  mastery table (such as SAKT's) overrides it. Without item parameters (a caller that
  passes none) every item counts as difficulty 0.
- ``accuracy``: the raw ``(c + 1) / (n + 2)`` over the student's earlier events on the topic
  when there are at least ``COLD_START_MIN_EVENTS`` of them, else over all their earlier
  events (the mastery of versions before the ability; not a model input).
- ``recent_accuracy``: mean correct of the last ``RECENT_WINDOW`` earlier events.
- ``recent_speed``: median latency (NaN ignored, capped at ``data.LATENCY_CAP_MS``) of the
  last ``RECENT_WINDOW`` earlier events divided by ``RECENT_SPEED_SCALE_MS``, clipped to
  [0, 1]; ``DEFAULT_RECENT_SPEED`` when none of them has a latency.
- ``help_tendency``: mean ``help_requested`` over all earlier events (NaN ignored);
  ``DEFAULT_HELP_TENDENCY`` when none is known.
- ``skill_gap``: ``max(0, SKILL_TARGET - mastery)`` (the seed's definition).
- ``item_attempts``: earlier attempts on the item by anyone; ``item_accuracy``:
  ``(correct + 1) / (attempts + 2)`` over them.
- ``difficulty``, ``discrimination`` and ``guessing`` are the item table's IRT b, a and c; a
  missing discrimination is ``DEFAULT_DISCRIMINATION``, a missing guessing (no column, or a
  blank) is 0 (the 2PL).

A student with fewer than ``COLD_START_MIN_EVENTS`` earlier events (including an unknown
student) is in cold start and gets the ``DEFAULT_*`` values for all student features but the
ability (and so mastery), whose posterior already says how little one attempt tells.
The order of earlier events ("the last ``RECENT_WINDOW``") is by completion time, ties kept
in the events' row order.

For other engines (the Spark job mirrors this): with ``done = timestamp + latency_ms``
(``latency_ms`` missing -> 0), the earlier events of a decision at ``t`` by student ``u``
are ``{e : e.user_id = u and e.done < t}``; topic counts add ``e.topic = topic``; item
counts are ``{e : e.item_id = i and e.done < t}``.
"""

import numpy as np
import pandas as pd

from skbandit import ability as ability_model
from skbandit import schema
from skbandit.cleaning import LATENCY_CAP_MS
from skbandit.exceptions import SkbanditError
from skbandit.irt import guessing_of

COLD_START_MIN_EVENTS = 3
"""A student with fewer earlier events than this gets the cold-start defaults."""
DEFAULT_MASTERY = 0.5
"""Cold-start mastery (an IRT ability of 0 on the logit scale)."""
DEFAULT_RECENT_ACCURACY = 0.5
"""Cold-start recent accuracy."""
DEFAULT_RECENT_SPEED = 0.5
"""Cold-start recent speed, also used when no recent event has a latency."""
DEFAULT_HELP_TENDENCY = 0.1
"""Cold-start help tendency, also used when no earlier event says whether help was used."""
SKILL_TARGET = 0.8
"""Mastery the student should reach; ``skill_gap = max(0, SKILL_TARGET - mastery)``."""
RECENT_WINDOW = 5
"""Number of latest earlier events behind ``recent_accuracy`` and ``recent_speed``."""
RECENT_SPEED_SCALE_MS = 240_000.0
"""Latency (ms) that maps to ``recent_speed = 1`` (4 minutes)."""
DEFAULT_DISCRIMINATION = 1.0
"""IRT discrimination of an item whose table gives none."""
RECENT_EXCLUDE_N = 10
"""Default number of latest attempts whose items :func:`recent_item_ids` reports."""
ITEM_PARAMETERS = (schema.DIFFICULTY, schema.DISCRIMINATION, schema.GUESSING)
"""The item table's IRT parameters b, a and c, model inputs as they are."""
MASTERY_TABLE_SKILL = "skill"
"""Skill column of an optional mastery table (SAKT's ``user_id, skill, mastery_mean``)."""
MASTERY_TABLE_MEAN = "mastery_mean"
"""Mastery column of an optional mastery table."""
ABILITY = "ability"
"""Context value: the ability posterior mean on the topic (logits; not a model input)."""
ABILITY_SD = "ability_sd"
"""Context value: the ability posterior sd (logits; not a model input)."""
ACCURACY = "accuracy"
"""Context value: the raw smoothed accuracy (the old mastery; not a model input)."""
ABILITY_SUMS = ("score", "info", "info_b", "topic_score", "topic_info", "topic_info_b")
"""Keys of :func:`student_counts` that hold the ability posterior's sums."""

ITEM_CONTEXT_COLUMNS = (
    schema.ITEM_ID,
    schema.TOPIC,
    schema.DIFFICULTY,
    schema.DISCRIMINATION,
    schema.GUESSING,
    schema.DRIFT_FLAG,
    schema.ITEM_ATTEMPTS,
    schema.ITEM_ACCURACY,
)
"""Columns of :func:`item_context`'s result."""


# --- one decision ------------------------------------------------------------------------


def student_context(events, user_id, topic, at=None, mastery_table=None, items=None):
    """The student's context for a decision about ``topic`` at time ``at``.

    Parameters
    ----------
    events : DataFrame
        Canonical events (``user_id, item_id, topic, timestamp, correct`` and optionally
        ``latency_ms``, ``help_requested``).
    user_id : str
        The student; an unknown student gets the cold-start defaults.
    topic : str
        The topic the decision is about (topic-level mastery).
    at : datetime-like, optional
        Decision time; only events completed strictly before it count. ``None`` uses
        every event. A naive time is taken as UTC.
    mastery_table : DataFrame, optional
        Rows ``user_id, skill, mastery_mean``; when it has a non-missing row for
        ``(user_id, topic)`` its (last) ``mastery_mean`` replaces the event-based mastery
        (and so the skill gap).
    items : DataFrame, optional
        Item table whose IRT parameters the ability uses (:func:`event_item_parameters`);
        without it every attempt counts as one on an item of difficulty 0.

    Returns
    -------
    dict
        ``user_id``, ``topic``, the five ``schema.STUDENT_CONTEXT`` values,
        ``ability``, ``ability_sd``, ``accuracy`` and ``n_prior_events``.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["u"] * 4, "item_id": list("abcd"), "topic": "t",
    ...     "timestamp": pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC"),
    ...     "correct": [1, 1, 0, 1]})
    >>> ctx = student_context(ev, "u", "t")
    >>> round(ctx["mastery"], 4), ctx["accuracy"], ctx["recent_accuracy"], ctx["n_prior_events"]
    (0.6453, 0.6666666666666666, 0.75, 4)
    """
    mask = events[schema.USER_ID].to_numpy() == user_id
    done = _done_ns(events)
    if at is not None:
        mask &= done < _utc_ns_scalar(at)
    mine = events.loc[mask]
    mine = mine.iloc[np.argsort(done[mask], kind="stable")]
    correct = mine[schema.CORRECT].to_numpy(dtype=np.float64)
    on_topic = mine[schema.TOPIC].to_numpy() == topic
    n = len(mine)
    latency = _float_column(mine, schema.LATENCY_MS)[-RECENT_WINDOW:] if n else np.empty(0)
    lags = np.full((1, RECENT_WINDOW), np.nan)
    lags[0, : len(latency)] = latency
    b, a, c = event_item_parameters(mine, items)
    fade = ability_model.FORGETTING ** np.arange(n - 1.0, -1.0, -1.0)  # latest attempt: 1
    g, h, hb = (fade * v for v in ability_model.attempt_evidence(correct, b, a, c))
    sums = dict(
        score=[g.sum()],
        info=[h.sum()],
        info_b=[hb.sum()],
        topic_score=[g[on_topic].sum()],
        topic_info=[h[on_topic].sum()],
        topic_info_b=[hb[on_topic].sum()],
    )
    values = student_features(
        **{k: np.array(v) for k, v in sums.items()},
        names=(*schema.STUDENT_CONTEXT, ABILITY, ABILITY_SD, ACCURACY),
        n=np.array([n]),
        n_correct=np.array([correct.sum()]),
        n_topic=np.array([on_topic.sum()]),
        n_topic_correct=np.array([correct[on_topic].sum()]),
        recent_correct=np.array([correct[-RECENT_WINDOW:].sum()]),
        latency_lags=lags,
        help_sum=np.array([np.nansum(_float_column(mine, schema.HELP_REQUESTED))]),
        help_known=np.array([np.sum(~np.isnan(_float_column(mine, schema.HELP_REQUESTED)))]),
    )
    ctx = {schema.USER_ID: user_id, schema.TOPIC: topic}
    ctx.update({name: float(col[0]) for name, col in values.items()})
    ctx[schema.N_PRIOR] = n
    override = _table_mastery(mastery_table, user_id, topic)
    if override is not None:
        ctx[schema.MASTERY] = override
        ctx[schema.SKILL_GAP] = max(0.0, SKILL_TARGET - override)
    return ctx


def item_context(events, items, at=None):
    """Every item's static parameters and its attempt evidence before ``at``.

    Parameters
    ----------
    events : DataFrame
        Canonical events.
    items : DataFrame
        Item table (``item_id, topic, difficulty`` and optionally ``discrimination``,
        ``guessing``, ``drift_flag``); a missing discrimination is
        ``DEFAULT_DISCRIMINATION``, a missing guessing 0 (the 2PL), a missing drift flag
        False.
    at : datetime-like, optional
        Only events completed strictly before it count; ``None`` uses every event.

    Returns
    -------
    DataFrame
        One row per item in ``items`` order, columns ``ITEM_CONTEXT_COLUMNS``.
    """
    if at is not None:
        events = events.loc[_done_ns(events) < _utc_ns_scalar(at)]
    stats = events.groupby(schema.ITEM_ID, sort=False)[schema.CORRECT].agg(["size", "sum"])
    return counted_items(items, stats["size"], stats["sum"])


def event_item_parameters(events, items):
    """The IRT ``(difficulty, discrimination, guessing)`` of every event's item (arrays).

    From :func:`item_table` of ``items``; an item missing from it takes its topic's mean
    difficulty in the table (0 for a topic the table lacks), discrimination
    ``DEFAULT_DISCRIMINATION`` and no guessing. Without ``items`` every item is b = 0, a = 1,
    c = 0.
    """
    n = len(events)
    if items is None:
        return np.zeros(n), np.full(n, DEFAULT_DISCRIMINATION), np.zeros(n)
    static = item_table(items)
    row = pd.Index(static[schema.ITEM_ID]).get_indexer(events[schema.ITEM_ID])
    topic_mean = static.groupby(schema.TOPIC, sort=False)[schema.DIFFICULTY].mean()
    fallback = topic_mean.reindex(events[schema.TOPIC].to_numpy()).fillna(0.0).to_numpy(np.float64)
    known = row >= 0

    def pick(name, default):
        values = static[name].to_numpy(dtype=np.float64)[np.where(known, row, 0)]
        return np.where(known, values, default) if n else np.empty(0)

    return (
        pick(schema.DIFFICULTY, fallback),
        pick(schema.DISCRIMINATION, DEFAULT_DISCRIMINATION),
        pick(schema.GUESSING, 0.0),
    )


def counted_items(items, attempts, correct):
    """:func:`item_table` with ``item_attempts`` and ``item_accuracy`` from per-item counts.

    ``attempts`` and ``correct`` are Series indexed by item id; an item without an entry
    has no attempts. Used by :func:`item_context` and by engines that count elsewhere.
    """
    out = item_table(items)
    attempts = attempts.reindex(out[schema.ITEM_ID]).fillna(0).to_numpy(np.float64)
    correct = correct.reindex(out[schema.ITEM_ID]).fillna(0).to_numpy(np.float64)
    return out.assign(**item_features(attempts, correct))


def recent_item_ids(events, user_id, n_last=RECENT_EXCLUDE_N, at=None):
    """Items of the student's last ``n_last`` attempts strictly before ``at`` (a tuple)."""
    mask = events[schema.USER_ID].to_numpy() == user_id
    if at is not None:
        mask &= _utc_ns(events[schema.TIMESTAMP]) < _utc_ns_scalar(at)
    mine = events.loc[mask]
    order = np.argsort(_utc_ns(mine[schema.TIMESTAMP]), kind="stable")
    return tuple(
        mine[schema.ITEM_ID].to_numpy()[order][len(order) - n_last :].tolist() if n_last > 0 else ()
    )


def candidate_frame(student_ctx, items_ctx, topic, recent_item_ids=(), exclude_recent=True):
    """One row per eligible item of ``topic`` for one student: the pipeline's raw input.

    Parameters
    ----------
    student_ctx : dict
        From :func:`student_context` (needs ``user_id`` and ``schema.STUDENT_CONTEXT``).
    items_ctx : DataFrame
        From :func:`item_context`.
    topic : str
        Only items of this topic are candidates.
    recent_item_ids : iterable of str, default=()
        Items the student answered recently (see :func:`recent_item_ids`).
    exclude_recent : bool, default=True
        Drop the items in ``recent_item_ids``.

    Returns
    -------
    DataFrame
        Columns ``schema.CANDIDATE_COLUMNS``, index ``0..m-1``; drift-flagged items are
        never candidates. It may be empty: the caller says why (no items in the topic, all
        drift-flagged or recently answered).
    """
    missing = [k for k in (schema.USER_ID, *schema.STUDENT_CONTEXT) if k not in student_ctx]
    if missing:
        raise SkbanditError(
            f"student context is missing {missing} (expected the dict that "
            "skbandit.context.student_context returns)"
        )
    keep = items_ctx[schema.TOPIC].to_numpy() == topic
    if schema.DRIFT_FLAG in items_ctx.columns:
        keep &= ~items_ctx[schema.DRIFT_FLAG].fillna(False).to_numpy(dtype=bool)
    if exclude_recent:
        keep &= ~items_ctx[schema.ITEM_ID].isin(list(recent_item_ids)).to_numpy()
    rows = items_ctx.loc[keep].reset_index(drop=True)
    out = pd.DataFrame(
        {
            schema.USER_ID: student_ctx[schema.USER_ID],
            schema.ITEM_ID: rows[schema.ITEM_ID],
            schema.TOPIC: topic,
        },
        index=rows.index,
    )
    for name in schema.STUDENT_CONTEXT:
        out[name] = float(student_ctx[name])
    for name in schema.ITEM_CONTEXT:
        out[name] = rows[name].to_numpy(dtype=np.float64)
    return out[list(schema.CANDIDATE_COLUMNS)]


# --- every logged event ------------------------------------------------------------------


def historical_contexts(events, items):
    """The model's raw input at every logged event, each from strictly earlier events.

    Row ``i`` equals :func:`student_context` for the event's student and topic at the
    event's time joined to :func:`item_context` for its item at that time, without a
    Python loop per event (about 1.5 s per million events on a 2-core machine).

    Parameters
    ----------
    events : DataFrame of shape (n_events, ...)
        Canonical events; every ``item_id`` must be in ``items``.
    items : DataFrame
        Item table with unique ``item_id``.

    Returns
    -------
    DataFrame of shape (n_events, 11)
        Columns ``schema.MODEL_INPUT`` and ``n_prior_events``, index ``events.index``.
    """
    static = item_table(items)
    if len(events) == 0:
        return pd.DataFrame(
            {name: pd.Series(dtype=np.float64) for name in schema.MODEL_INPUT}
            | {schema.N_PRIOR: pd.Series(dtype=np.int64)},
            index=events.index,
        )
    item_row = pd.Index(static[schema.ITEM_ID]).get_indexer(events[schema.ITEM_ID])
    if (item_row < 0).any():
        unknown = pd.unique(events[schema.ITEM_ID].to_numpy()[item_row < 0])[:5].tolist()
        raise SkbanditError(
            f"events mention {int((item_row < 0).sum())} attempts on items not in the item "
            f"table, e.g. {unknown}; add them to items or drop those events first"
        )
    ts, done = _utc_ns(events[schema.TIMESTAMP]), _done_ns(events)
    correct = events[schema.CORRECT].to_numpy(dtype=np.float64)
    item_parameters = {
        name: static[name].to_numpy(dtype=np.float64)[item_row] for name in ITEM_PARAMETERS
    }
    counts = student_counts(
        events[schema.USER_ID].to_numpy(),
        events[schema.TOPIC].to_numpy(),
        ts,
        done,
        correct,
        _float_column(events, schema.LATENCY_MS),
        _float_column(events, schema.HELP_REQUESTED),
        *(item_parameters[name] for name in ITEM_PARAMETERS),
    )
    attempts, item_correct = item_counts(events[schema.ITEM_ID].to_numpy(), ts, done, correct)
    return model_input(counts, attempts, item_correct, item_parameters, index=events.index)


def model_input(counts, attempts, item_correct, item_parameters, index=None):
    """The model input (``schema.MODEL_INPUT`` and ``n_prior_events``) of counted events.

    Parameters
    ----------
    counts : dict of str to ndarray
        :func:`student_counts`.
    attempts, item_correct : ndarray of shape (n_events,)
        :func:`item_counts`.
    item_parameters : mapping of str to array-like
        :data:`ITEM_PARAMETERS` of each event's item (:func:`item_table`).
    index : Index, optional
        The result's index.

    Returns
    -------
    DataFrame of shape (n_events, 11)
    """
    out = pd.DataFrame(student_features(**counts), index=index)
    for name in ITEM_PARAMETERS:
        out[name] = np.asarray(item_parameters[name], dtype=np.float64)
    out = out.assign(**item_features(attempts, item_correct))
    out[schema.N_PRIOR] = counts["n"].astype(np.int64)
    return out[[*schema.MODEL_INPUT, schema.N_PRIOR]]


def item_features(attempts, item_correct):
    """``item_attempts`` and ``item_accuracy`` (smoothed) from an item's earlier attempts.

    >>> item_features(np.array([0.0, 8.0]), np.array([0.0, 6.0]))[schema.ITEM_ACCURACY].tolist()
    [0.5, 0.7]
    """
    attempts = np.asarray(attempts, dtype=np.float64)
    return {
        schema.ITEM_ATTEMPTS: attempts,
        schema.ITEM_ACCURACY: (np.asarray(item_correct, dtype=np.float64) + 1.0) / (attempts + 2.0),
    }


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

    The student half of :func:`historical_contexts`, for engines that hold whole students
    but not whole items (the Spark engine runs it per partition). All arguments are arrays
    with one entry per event, events in time order (ties in time keep this order).

    Parameters
    ----------
    user, topic : array-like of shape (n_events,)
        Keys of the events.
    ts, done : ndarray of int64 of shape (n_events,)
        Start and completion times in nanoseconds (:func:`completion_ns`).
    correct, latency_ms, help_requested : ndarray of shape (n_events,)
        The events' outcomes; NaN where a latency or a help flag is unknown.
    difficulty, discrimination, guessing : ndarray of shape (n_events,), optional
        The IRT parameters of each event's item (:func:`event_item_parameters`); without
        them every item counts as b = 0, a = 1, c = 0.

    Returns
    -------
    dict of str to ndarray
        The keyword arguments of :func:`student_features`: ``n``, ``n_correct``,
        ``n_topic``, ``n_topic_correct``, ``recent_correct``, ``latency_lags``,
        ``help_sum``, ``help_known`` and the ability's sums :data:`ABILITY_SUMS` (summed
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

    The item half of :func:`historical_contexts` (arguments as in :func:`student_counts`).

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


# --- shared arithmetic -------------------------------------------------------------------


def student_features(
    n,
    n_correct,
    n_topic,
    n_topic_correct,
    recent_correct,
    latency_lags,
    help_sum,
    help_known,
    names=schema.STUDENT_CONTEXT,
    score=None,
    info=None,
    info_b=None,
    topic_score=None,
    topic_info=None,
    topic_info_b=None,
):
    """Student-context features from a student's counts: the one definition of them.

    Used by :func:`student_context`, :func:`historical_contexts` and the simulated school's
    running context (:class:`skbandit.sim.running_context.SchoolContext`). Every argument is
    an array with one entry per decision; the definitions are in the module docstring.

    Parameters
    ----------
    n, n_correct : ndarray of shape (n_decisions,)
        The student's earlier attempts and how many were correct.
    n_topic, n_topic_correct : ndarray of shape (n_decisions,)
        The same on the decision's topic.
    recent_correct : ndarray of shape (n_decisions,)
        Correct attempts among the latest ``min(n, RECENT_WINDOW)``.
    latency_lags : ndarray of shape (n_decisions, RECENT_WINDOW)
        Latencies (ms) of the latest ``RECENT_WINDOW`` attempts in any order, NaN where
        unknown or where there are fewer attempts.
    help_sum, help_known : ndarray of shape (n_decisions,)
        Help requests, and attempts whose help flag is known.
    names : sequence of str, default ``schema.STUDENT_CONTEXT``
        Only these features are computed (also ``ability``, ``ability_sd``, ``accuracy``);
        an input that none of them reads may be None.
    score, info, info_b, topic_score, topic_info, topic_info_b : ndarray, optional
        The ability posterior's sums (:data:`ABILITY_SUMS`, from :func:`student_counts`);
        needed by ``mastery``, ``skill_gap``, ``ability`` and ``ability_sd``.

    Returns
    -------
    dict of str to ndarray of shape (n_decisions,)
        ``names`` in order.

    Examples
    --------
    Ten attempts, 6 correct (2 of 2 on the topic: too few for topic-level mastery):

    >>> one = lambda v: np.array([v], dtype=float)
    >>> sums = dict(score=one(0.5), info=one(2.5), info_b=one(0.0), topic_score=one(1.0),
    ...             topic_info=one(0.5), topic_info_b=one(0.0))
    >>> features = student_features(one(10), one(6), one(2), one(2), one(4),
    ...                             np.full((1, RECENT_WINDOW), 60_000.0), one(1), one(10),
    ...                             **sums)
    >>> {k: round(float(v[0]), 4) for k, v in features.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'mastery': 0.6142, 'recent_accuracy': 0.8, 'recent_speed': 0.25, 'help_tendency': 0.1,
     'skill_gap': 0.1858}
    """
    cold = n < COLD_START_MIN_EVENTS
    posterior = {}

    def ability_posterior():
        if not posterior:
            if score is None:
                raise SkbanditError(
                    "the ability needs the posterior sums "
                    f"{ABILITY_SUMS} (from skbandit.context.student_counts)"
                )
            posterior["mean"], posterior["sd"] = ability_model.posterior(
                score, info, info_b, topic_score, topic_info, topic_info_b
            )
        return posterior

    def mastery():
        return ability_model.mastery_of(ability_posterior()["mean"])

    def accuracy():
        topic_level = n_topic >= COLD_START_MIN_EVENTS
        value = np.where(
            topic_level, (n_topic_correct + 1.0) / (n_topic + 2.0), (n_correct + 1.0) / (n + 2.0)
        )
        return np.where(cold, DEFAULT_MASTERY, value)

    def recent_accuracy():
        n_recent = np.minimum(n, RECENT_WINDOW)
        return np.where(cold, DEFAULT_RECENT_ACCURACY, recent_correct / np.maximum(n_recent, 1))

    def recent_speed():
        median = _row_nanmedian(np.minimum(latency_lags, LATENCY_CAP_MS))
        speed = np.clip(median / RECENT_SPEED_SCALE_MS, 0.0, 1.0)
        return np.where(cold | np.isnan(speed), DEFAULT_RECENT_SPEED, speed)

    def help_tendency():
        return np.where(
            cold | (help_known == 0), DEFAULT_HELP_TENDENCY, help_sum / np.maximum(help_known, 1)
        )

    known = {
        schema.MASTERY: mastery,
        ACCURACY: accuracy,
        ABILITY: lambda: ability_posterior()["mean"],
        ABILITY_SD: lambda: ability_posterior()["sd"],
        schema.RECENT_ACCURACY: recent_accuracy,
        schema.RECENT_SPEED: recent_speed,
        schema.HELP_TENDENCY: help_tendency,
    }
    out = {}
    for name in names:
        if name == schema.SKILL_GAP:
            level = out[schema.MASTERY] if schema.MASTERY in out else mastery()
            out[name] = np.maximum(0.0, SKILL_TARGET - level)
        elif name in known:
            out[name] = known[name]()
        else:
            raise SkbanditError(
                f"unknown student feature {name!r} (expected names from "
                f"schema.STUDENT_CONTEXT: {schema.STUDENT_CONTEXT}, or "
                f"{(ABILITY, ABILITY_SD, ACCURACY)})"
            )
    return out


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


def _done_ns(events):
    latency = _float_column(events, schema.LATENCY_MS)
    return completion_ns(_utc_ns(events[schema.TIMESTAMP]), latency)


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


def _row_nanmedian(matrix):
    """Median of each row ignoring NaN (NaN for an all-NaN row), without warnings."""
    srt = np.sort(matrix, axis=1)  # NaN sorts last
    count = (~np.isnan(srt)).sum(axis=1)
    lo = np.clip((count - 1) // 2, 0, None)
    hi = np.clip(count // 2, 0, matrix.shape[1] - 1)
    rows = np.arange(len(srt))
    median = (srt[rows, lo] + srt[rows, hi]) / 2.0
    return np.where(count > 0, median, np.nan)


def _float_column(frame, name):
    """A column as float64 with NaN for missing values (all NaN when the column is absent)."""
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _utc_ns(timestamps):
    """Timestamps as int64 nanoseconds since the epoch, naive values taken as UTC."""
    return pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).as_unit("ns").asi8


def _utc_ns_scalar(at):
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.as_unit("ns").value


def item_table(items):
    """The item columns contexts use (``item_id``, ``topic``, the IRT parameters, the drift
    flag) with the defaults of the module docstring filled; checks that ids are unique."""
    if items[schema.ITEM_ID].duplicated().any():
        dup = items.loc[items[schema.ITEM_ID].duplicated(), schema.ITEM_ID].iloc[0]
        raise SkbanditError(
            f"items has duplicate item_id {dup!r} (expected one row per "
            "item); drop the duplicates before building contexts"
        )
    out = items[[schema.ITEM_ID, schema.TOPIC]].reset_index(drop=True)
    out[schema.DIFFICULTY] = difficulty_or_topic_mean(items)
    disc = (
        items[schema.DISCRIMINATION].to_numpy(dtype=np.float64, na_value=np.nan)
        if schema.DISCRIMINATION in items.columns
        else np.full(len(items), np.nan)
    )
    out[schema.DISCRIMINATION] = np.where(np.isnan(disc), DEFAULT_DISCRIMINATION, disc)
    drift = (
        items[schema.DRIFT_FLAG].fillna(False).to_numpy(dtype=bool)
        if schema.DRIFT_FLAG in items.columns
        else np.zeros(len(items), dtype=bool)
    )
    out[schema.DRIFT_FLAG] = drift
    out[schema.GUESSING] = guessing_of(items)  # blank or absent: 0, the 2PL
    ability_model.check_item_parameters(
        out[schema.DIFFICULTY], out[schema.DISCRIMINATION], out[schema.GUESSING]
    )
    return out


def difficulty_or_topic_mean(items):
    """Each item's difficulty; a blank (or no column) takes its topic's mean, else 0.

    :func:`missing_difficulty_note` says in one line how many items this filled.
    """
    if schema.DIFFICULTY not in items.columns:
        return np.zeros(len(items))
    values = pd.Series(items[schema.DIFFICULTY].to_numpy(dtype=np.float64, na_value=np.nan))
    if values.isna().any():
        topic = pd.Series(items[schema.TOPIC].to_numpy())
        values = values.fillna(values.groupby(topic).transform("mean")).fillna(0.0)
    return values.to_numpy(np.float64)


def missing_difficulty_note(items):
    """One line saying how many items have no difficulty (None when all have one)."""
    if schema.DIFFICULTY in items.columns:
        missing = int(items[schema.DIFFICULTY].isna().sum())
    else:
        missing = len(items)
    if missing == 0:
        return None
    return (
        f"{missing} of {len(items)} items have no difficulty: their topic's mean difficulty "
        "stands in (0 where a topic has none); calibrate them with --calibrate rasch"
    )


def _table_mastery(table, user_id, topic):
    """The mastery table's last non-missing value for (user, topic), or None."""
    if table is None:
        return None
    rows = table.loc[
        (table[schema.USER_ID].to_numpy() == user_id)
        & (table[MASTERY_TABLE_SKILL].to_numpy() == topic),
        MASTERY_TABLE_MEAN,
    ]
    rows = rows.dropna()
    return None if rows.empty else float(np.clip(rows.iloc[-1], 0.0, 1.0))
