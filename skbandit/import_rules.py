"""Pure rules that turn raw tutor-log rows into canonical attempts (frames in, frames out).

The importers in :mod:`adapters.importers` read each public format and call these rules, so
every format gets the same treatment and every change is counted in an :class:`ImportReport`
(nothing is dropped or changed silently):

- :func:`collapse_skill_rows`: one attempt logged as one row per skill (ASSISTments repeats a
  multi-skill problem once per skill) becomes one row whose ``skill_ids`` lists every skill;
  exact duplicate rows are dropped first and counted apart;
- :func:`help_marks_wrong`: a first attempt that came after a hint or an answer request is
  wrong (the ASSISTments rule: "if a student uses the tutoring, the question is marked
  incorrect");
- :func:`first_rows`: keep the first row of each attempt (first response to a problem);
- :func:`items_from_events`: one row per item with its most frequent topic.

Ids of any type become clean strings through :func:`skbandit.cleaning.clean_ids`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.cleaning import clean_ids


@dataclass
class ImportReport:
    """What an importer did to the raw rows, in order.

    Attributes
    ----------
    format : str
        The raw format's name (``assistments-2009``, ...).
    sources : list of str
        The files read.
    rows_read : int
        Raw rows read (all files).
    steps : dict of str to int
        Each change, in the order it was made: what was done -> how many rows.
    notes : list of str
        Facts about the conversion that are not counts (a synthetic clock, the KC model).
    """

    format: str
    sources: list[str] = field(default_factory=list)
    rows_read: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def count(self, label: str, n) -> None:
        """Add ``n`` to the step ``label`` ("scaffolding rows dropped")."""
        self.steps[label] = self.steps.get(label, 0) + int(n)

    def lines(self) -> list[str]:
        """Every non-zero step as ``label: count``.

        >>> r = ImportReport("x"); r.count("scaffolding rows dropped", 3); r.lines()
        ['scaffolding rows dropped: 3']
        """
        return [f"{label}: {n:,}" for label, n in self.steps.items() if n]


def drop_rows(df: pd.DataFrame, mask, report: ImportReport, label: str) -> pd.DataFrame:
    """Drop the rows where ``mask`` is true, counting them under ``label``.

    >>> r = ImportReport("x")
    >>> len(drop_rows(pd.DataFrame({"a": [1, 2, 3]}), [True, False, True], r, "odd rows"))
    1
    """
    mask = np.asarray(mask, dtype=bool)
    report.count(label, mask.sum())
    return df.loc[~mask] if mask.any() else df


def collapse_skill_rows(df: pd.DataFrame, key, skill: str, report: ImportReport) -> pd.DataFrame:
    """One row per attempt: rows sharing ``key`` merge, their skills listed in ``skill_ids``.

    Exact duplicate rows are dropped first (counted as duplicates); then the remaining rows
    of one attempt (one per skill) collapse into the first, with the distinct non-blank
    skills in row order (counted as collapsed). The ``skill`` column is replaced by
    ``skill_ids``.

    >>> raw = pd.DataFrame({"order_id": [1, 2, 2, 2], "skill": ["a", "b", "c", "c"]})
    >>> r = ImportReport("x")
    >>> collapse_skill_rows(raw, "order_id", "skill", r)["skill_ids"].tolist()
    [['a'], ['b', 'c']]
    >>> r.lines()
    ['exact duplicate rows dropped: 1', 'extra skill rows collapsed into their attempt: 1']
    """
    duplicated = df.duplicated().to_numpy()
    df = drop_rows(df, duplicated, report, "exact duplicate rows dropped")
    skills = clean_ids(df[skill]).to_numpy(dtype=object)
    group = df.groupby(key, sort=False, dropna=False).ngroup().to_numpy()
    first = ~pd.Series(group).duplicated().to_numpy()
    lists = [[s] if s else [] for s in skills[first]]
    sizes = np.bincount(group)
    multi = np.flatnonzero(sizes > 1)
    if multi.size:
        rows = np.flatnonzero(np.isin(group, multi))
        rows = rows[np.argsort(group[rows], kind="stable")]
        bounds = np.flatnonzero(np.diff(group[rows])) + 1
        for g, members in zip(multi, np.split(skills[rows], bounds), strict=True):
            lists[g] = list(dict.fromkeys(s for s in members if s))
    report.count("extra skill rows collapsed into their attempt", len(df) - first.sum())
    out = df.loc[first].drop(columns=skill)
    out[schema.SKILL_IDS] = pd.Series(lists, index=out.index, dtype=object)
    return out


def help_marks_wrong(correct, helped, report: ImportReport) -> np.ndarray:
    """Set ``correct`` to 0 where the student had help first; count the changes.

    >>> r = ImportReport("x")
    >>> help_marks_wrong([1, 1, 0], [True, False, True], r).tolist(), r.lines()
    ([0, 1, 0], ['correct answers marked wrong: help came first: 1'])
    """
    correct = np.asarray(correct).copy()
    helped = np.asarray(helped, dtype=bool)
    changed = helped & (correct == 1)
    report.count("correct answers marked wrong: help came first", changed.sum())
    correct[changed] = 0
    return correct


def first_rows(df: pd.DataFrame, key, order, report: ImportReport, label: str) -> pd.DataFrame:
    """Keep the first row (by ``order``, then row order) of each ``key`` group.

    >>> raw = pd.DataFrame({"k": [1, 1, 2], "t": [5, 3, 1], "v": ["late", "early", "x"]})
    >>> first_rows(raw, "k", "t", ImportReport("x"), "later rows")["v"].tolist()
    ['x', 'early']
    """
    ordered = df.sort_values(order, kind="stable")
    later = ordered.duplicated(subset=key, keep="first").to_numpy()
    return drop_rows(ordered, later, report, label)


def items_from_events(events: pd.DataFrame) -> pd.DataFrame:
    """One row per item (``item_id``, ``topic``): the topic its events name most often.

    Ties go to the topic seen first. Items come in order of first appearance.

    >>> ev = pd.DataFrame({"item_id": ["a", "a", "a", "b"], "topic": ["x", "y", "y", "z"]})
    >>> items_from_events(ev).values.tolist()
    [['a', 'y'], ['b', 'z']]
    """
    pairs = events[[schema.ITEM_ID, schema.TOPIC]]
    counts = pairs.groupby([schema.ITEM_ID, schema.TOPIC], sort=False).size()
    counts = counts.reset_index(name="n")
    counts["seen"] = np.arange(len(counts))
    best = counts.sort_values(["n", "seen"], ascending=[False, True], kind="stable")
    best = best.drop_duplicates(schema.ITEM_ID)
    order = pd.Index(pd.unique(events[schema.ITEM_ID]))
    best = best.set_index(schema.ITEM_ID).loc[order].reset_index()
    return best[[schema.ITEM_ID, schema.TOPIC]].reset_index(drop=True)


def synthetic_times(order, origin: str) -> pd.Series:
    """UTC timestamps ``origin + order`` seconds, for logs that only give an order.

    >>> synthetic_times([3, 1], "2009-09-01").dt.strftime("%H:%M:%S").tolist()
    ['00:00:03', '00:00:01']
    """
    order = pd.Series(order)
    seconds = pd.to_numeric(order, errors="coerce").to_numpy(dtype=np.float64)
    times = pd.Timestamp(origin, tz="UTC") + pd.to_timedelta(seconds, unit="s")
    return pd.Series(times, index=order.index)
