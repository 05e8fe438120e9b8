"""The item table as contexts read it: IRT parameters with their defaults, per item and per event.

``difficulty``, ``discrimination`` and ``guessing`` are the item table's IRT b, a and c; a
missing difficulty takes its topic's mean (0 for a topic without one), a missing
discrimination is ``DEFAULT_DISCRIMINATION``, a missing guessing (no column, or a blank) is
0 (the 2PL), a missing drift flag False.
"""

import numpy as np
import pandas as pd

from skbandit import ability as ability_model
from skbandit import schema
from skbandit.context_features import item_features
from skbandit.exceptions import SkbanditError
from skbandit.irt import guessing_of

DEFAULT_DISCRIMINATION = 1.0
"""IRT discrimination of an item whose table gives none."""
ITEM_PARAMETERS = (schema.DIFFICULTY, schema.DISCRIMINATION, schema.GUESSING)
"""The item table's IRT parameters b, a and c, model inputs as they are."""


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
    has no attempts. Used by :func:`skbandit.context.item_context` and by engines that
    count elsewhere.
    """
    out = item_table(items)
    attempts = attempts.reindex(out[schema.ITEM_ID]).fillna(0).to_numpy(np.float64)
    correct = correct.reindex(out[schema.ITEM_ID]).fillna(0).to_numpy(np.float64)
    return out.assign(**item_features(attempts, correct))
