"""The item parameters a version was trained with, and given items completed from them.

``train.warmstart --calibrate`` re-estimates the items' difficulties (and 2PL
discriminations) from the events; the version keeps the parameters it trained with
(:attr:`skbandit.model.TrainedModel.item_parameters`), so commands that rank with it later
(``trace``, ``compare-recs``, batch scoring, the REST server) do not fall back to the blank
or missing difficulties of the items file they are given. :func:`complete_items` fills the
items a given table lacks parameters for from the version's and counts the items whose
given parameters disagree with the version's (the given values are used for those: the
file states them). :func:`disagreement_note` says that in one line.

An item "lacks" its parameters when its ``difficulty`` is blank (or the table has no
``difficulty`` column): it then takes the version's ``difficulty``, ``discrimination`` and
``guessing`` together (a calibration estimates them together).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.exceptions import SkbanditError

PARAMETERS = (schema.DIFFICULTY, schema.DISCRIMINATION, schema.GUESSING)
"""The item parameters a version stores (with ``item_id`` and ``topic``)."""
COLUMNS = (schema.ITEM_ID, schema.TOPIC, *PARAMETERS)
TOLERANCE = 1e-6
"""Given and stored parameters closer than this agree (a file round trip rounds)."""


def trained_item_parameters(items: pd.DataFrame) -> pd.DataFrame:
    """The parameters of the items a version trains with, as it stores them.

    Blank difficulties are the topic's mean (or 0) as the contexts use them, a blank or
    absent ``discrimination`` 1 and ``guessing`` 0 (:func:`skbandit.context.item_table`).
    """
    from skbandit.context import item_table

    table = item_table(items)
    return table[list(COLUMNS)].reset_index(drop=True)


def items_as_state(items: pd.DataFrame | None) -> dict | None:
    """Plain data (lists) of a stored items table; None for none."""
    if items is None:
        return None
    return {
        schema.ITEM_ID: items[schema.ITEM_ID].tolist(),
        schema.TOPIC: items[schema.TOPIC].tolist(),
        **{name: items[name].to_numpy(np.float64).tolist() for name in PARAMETERS},
    }


def items_from_state(data: dict) -> pd.DataFrame:
    """The table :func:`items_as_state` described; SkbanditError when it is malformed."""
    if not isinstance(data, dict) or any(name not in data for name in COLUMNS):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise SkbanditError(f"expected the lists {list(COLUMNS)}, found {found}")
    lengths = {len(data[name]) for name in COLUMNS}
    if len(lengths) != 1:
        raise SkbanditError(f"its lists {list(COLUMNS)} have different lengths")
    try:
        table = pd.DataFrame(
            {
                schema.ITEM_ID: pd.Series(data[schema.ITEM_ID], dtype=object).astype(str),
                schema.TOPIC: pd.Series(data[schema.TOPIC], dtype=object).astype(str),
                **{name: np.asarray(data[name], dtype=np.float64) for name in PARAMETERS},
            }
        )
    except (TypeError, ValueError) as error:
        raise SkbanditError(f"its parameters are not numbers ({error})") from None
    values = table[list(PARAMETERS)].to_numpy()
    if not np.isfinite(values).all() or table[schema.ITEM_ID].duplicated().any():
        raise SkbanditError("expected finite parameters and one row per item_id")
    return table


@dataclass(frozen=True)
class ItemsComparison:
    """What :func:`complete_items` did: items filled from the version, items that differ."""

    n_items: int
    n_filled: int = 0
    n_differ: int = 0
    differ_by: tuple[tuple[str, int], ...] = ()
    """Per parameter, how many items' given value differs from the version's."""
    n_missing: int = 0
    """Items that lack a difficulty and that the version does not know either."""


def complete_items(given: pd.DataFrame, stored: pd.DataFrame | None):
    """``given`` with the version's parameters for the items it lacks them for.

    Parameters
    ----------
    given : DataFrame
        An items table (``item_id``, ``topic``, optional ``difficulty``,
        ``discrimination``, ``guessing`` and other columns, kept).
    stored : DataFrame or None
        :attr:`skbandit.model.TrainedModel.item_parameters` (None: a version that stored
        none; ``given`` is returned unchanged).

    Returns
    -------
    items : DataFrame
    comparison : ItemsComparison

    Examples
    --------
    >>> given = pd.DataFrame({"item_id": ["a", "b", "c"], "topic": "t",
    ...                       "difficulty": [np.nan, 0.5, 0.0]})
    >>> stored = pd.DataFrame({"item_id": ["a", "b", "c"], "topic": "t",
    ...                        "difficulty": [1.2, 0.5, 0.3], "discrimination": [0.8, 1, 1],
    ...                        "guessing": 0.0})
    >>> items, seen = complete_items(given, stored)
    >>> items["difficulty"].tolist(), seen.n_filled, seen.n_differ
    ([1.2, 0.5, 0.0], 1, 1)
    """
    n = len(given)
    lacks = _lacking(given)
    if stored is None:
        return given, ItemsComparison(n, n_missing=int(lacks.sum()))
    table = stored.set_index(stored[schema.ITEM_ID].astype(str))
    ids = given[schema.ITEM_ID].astype(str)
    known = ids.isin(table.index).to_numpy()
    items = given.copy()
    fill = lacks & known
    for name in PARAMETERS:
        version = ids.map(table[name]).to_numpy(np.float64)
        if name in items.columns:
            current = items[name].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            current = np.full(n, np.nan)
        items[name] = np.where(fill, version, current)
    differ_by = []
    differs = np.zeros(n, dtype=bool)
    for name in PARAMETERS:
        if name not in given.columns:
            continue
        value = given[name].to_numpy(dtype=np.float64, na_value=np.nan)
        version = ids.map(table[name]).to_numpy(np.float64)
        off = known & ~lacks & np.isfinite(value) & (np.abs(value - version) > TOLERANCE)
        if off.any():
            differ_by.append((name, int(off.sum())))
        differs |= off
    comparison = ItemsComparison(
        n, int(fill.sum()), int(differs.sum()), tuple(differ_by), int((lacks & ~known).sum())
    )
    return items, comparison


def _lacking(items: pd.DataFrame) -> np.ndarray:
    if schema.DIFFICULTY not in items.columns:
        return np.ones(len(items), dtype=bool)
    return items[schema.DIFFICULTY].isna().to_numpy()


def disagreement_note(comparison: ItemsComparison, label: str) -> str | None:
    """One line when given items' parameters differ from the version's; else None.

    >>> line = disagreement_note(ItemsComparison(40, 3, 5, (("difficulty", 5),)), "m v2")
    >>> line.startswith("note: 5 of 40 items' parameters"), "(difficulty 5)" in line
    (True, True)
    """
    if not comparison.n_differ:
        return None
    which = ", ".join(f"{name} {count:,}" for name, count in comparison.differ_by)
    filled = (
        f", and the {comparison.n_filled:,} items it gives no difficulty take {label}'s"
        if comparison.n_filled
        else ""
    )
    return (
        f"note: {comparison.n_differ:,} of {comparison.n_items:,} items' parameters in the "
        f"items file differ from the ones {label} was trained with ({which}); the file's "
        f"are used{filled}"
    )


def items_for_model(items: pd.DataFrame, stored: pd.DataFrame | None, label: str):
    """The items to rank with a version, and the lines to tell the user (at most two).

    ``items`` completed from the version's ``stored`` parameters (:func:`complete_items`);
    one line when the given parameters disagree with the version's
    (:func:`disagreement_note`), one when items still lack a difficulty
    (:func:`skbandit.context.missing_difficulty_note`: their topic's mean stands in).
    """
    from skbandit.context import missing_difficulty_note

    completed, comparison = complete_items(items, stored)
    lines = [disagreement_note(comparison, label)]
    if comparison.n_missing:
        lines.append(missing_difficulty_note(completed))
    return completed, [line for line in lines if line]
