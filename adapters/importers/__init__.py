"""Importers of public learner-data exports: raw files in, canonical events out.

One module per format; each reads its files (the only I/O), applies the pure rules of
:mod:`skbandit.import_rules` and returns canonical event columns (not yet validated) with an
:class:`~skbandit.import_rules.ImportReport` of every change. :func:`load` picks the module.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from skbandit.exceptions import SkbanditError

if TYPE_CHECKING:  # the format list stays importable without pandas (instant --help)
    import pandas as pd

    from skbandit.import_rules import ImportReport

FORMATS = {
    "assistments-2009": ("assistments_2009", "ASSISTments 2009-2010 skill-builder CSV"),
    "assistments-2012": ("assistments_2012", "ASSISTments 2012-2013 problem logs CSV"),
    "ednet-kt1": ("ednet_kt1", "EdNet-KT1 u*.csv files plus contents/questions.csv"),
    "datashop": ("datashop", "PSLC DataShop / KDD Cup 2010 step or transaction export (tab)"),
    "edm-cup-2023": ("edm_cup_2023", "EDM Cup 2023 action_logs + assignment/problem details"),
}
"""Format name -> (module in this package, one-line description). Importing this package
is light (no pandas), so command-line ``--help`` can list the formats."""


@dataclass(frozen=True)
class ImportOptions:
    """Choices a data scientist makes about a raw export (``train.ingest`` options).

    Attributes
    ----------
    skill : str, optional
        Where skills (topics) come from, per format: DataShop the KC model (``Default``,
        ``Area``, ...; default ``Default`` if present, else the first); EdNet ``tags`` (the
        question's tags, the first is the topic; default) or ``part`` (TOEIC part 1-7);
        EDM Cup ``code`` (Common Core code; default) or ``description``; ASSISTments
        ``skill_name`` (default; the id where the name is blank) or ``skill_id``.
    item : str, optional
        Item granularity, DataShop only: ``step`` (default; one problem step) or ``problem``
        (one problem view: right when every step's first attempt was right).
    keep_untagged : bool
        Keep attempts on items without a skill, under the topic :data:`UNTAGGED` (default:
        dropped by validation and counted as "without topic").
    max_students : int, optional
        A quick first look: keep the first this-many students (in file order; EdNet reads
        only their files), the others' rows dropped and counted.
    sample_students : float, optional
        Keep each student with this probability, decided by a hash of the student id and
        ``seed`` (whole students; the same ones on every run; EdNet reads only their files).
    seed : int
        Seed of ``sample_students``.
    """

    skill: str | None = None
    item: str | None = None
    keep_untagged: bool = False
    max_students: int | None = None
    sample_students: float | None = None
    seed: int = 0


UNTAGGED = "untagged"
"""The topic of items without a skill when :attr:`ImportOptions.keep_untagged` is set."""

SKILL_CHOICES = {
    "assistments-2009": ("skill_name", "skill_id"),
    "assistments-2012": ("skill_name", "skill_id"),
    "ednet-kt1": ("tags", "part"),
    "edm-cup-2023": ("code", "description"),
}
"""The ``--skill`` values of each format (DataShop's are the KC models of the file)."""
ITEM_CHOICES = {"datashop": ("step", "problem")}


def checked_choice(fmt: str, option: str, value: str | None, choices: tuple[str, ...]) -> str:
    """``value`` (default the first choice) if it is one of ``choices``, else a one-line error.

    >>> checked_choice("ednet-kt1", "--skill", None, ("tags", "part"))
    'tags'
    """
    if value is None:
        return choices[0]
    if value not in choices:
        raise SkbanditError(
            f"{fmt}: {option} {value!r} is not one of {', '.join(choices)}; pass one of them "
            "(README: 'Bring your own data')"
        )
    return value


@dataclass
class RawImport:
    """Canonical event columns read from a raw export, before validation.

    Attributes
    ----------
    events : DataFrame
        ``user_id, item_id, skill_ids, timestamp, correct`` and, where the format has them,
        ``latency_ms, help_requested, action_sequence_id``.
    report : ImportReport
    """

    events: pd.DataFrame
    report: ImportReport


def load(fmt: str, paths: Sequence[Path], options: ImportOptions | None = None) -> RawImport:
    """Read ``paths`` as format ``fmt`` (one of :data:`FORMATS`) with ``options``."""
    options = options or ImportOptions()
    check_options(fmt, options)
    module = importlib.import_module(f"{__name__}.{FORMATS[fmt][0]}")
    raw = module.load(list(paths), options)
    if raw.events.empty:
        from adapters.importers._read import refuse_empty

        where = (
            raw.report.sources[0]
            if len(raw.report.sources) == 1
            else (f"{len(raw.report.sources)} files")
        )
        refuse_empty(raw.events, fmt, where, raw.report)
    if fmt not in SELECTS_RAW_STUDENTS:
        raw = _selected_students(raw, options)
    if options.keep_untagged:
        raw = RawImport(keep_untagged(raw.events, raw.report), raw.report)
    return raw


SELECTS_RAW_STUDENTS = ("ednet-kt1", "assistments-2009", "assistments-2012")
"""Formats whose importer applies ``--max-students``/``--sample-students`` to the raw rows
(EdNet to its files) itself, as the streaming ingest does; the others' events are
selected after import."""


def check_options(fmt: str, options: ImportOptions) -> None:
    """Refuse unknown formats and choices (one line each) before anything is read."""
    from adapters.importers._students import check_fraction

    if fmt not in FORMATS:
        raise SkbanditError(
            f"unknown --format {fmt!r} (expected one of {', '.join(FORMATS)}); "
            "pass for example --format assistments-2009"
        )
    if options.item is not None and fmt not in ITEM_CHOICES:
        raise SkbanditError(
            f"{fmt}: --item applies to {', '.join(ITEM_CHOICES)} exports only "
            f"(a {fmt} item is fixed by the format); leave it out"
        )
    if fmt in SKILL_CHOICES:
        checked_choice(fmt, "--skill", options.skill, SKILL_CHOICES[fmt])
    if fmt in ITEM_CHOICES:
        checked_choice(fmt, "--item", options.item, ITEM_CHOICES[fmt])
    check_fraction(options.sample_students)


def _selected_students(raw: RawImport, options: ImportOptions) -> RawImport:
    """The events of the students ``--max-students``/``--sample-students`` keep (counted)."""
    from adapters.importers._students import select_students

    keep = select_students(raw.events["user_id"], options, raw.report)
    return raw if keep is None else RawImport(raw.events.loc[keep], raw.report)


def keep_untagged(events: pd.DataFrame, report: ImportReport) -> pd.DataFrame:
    """Give attempts without a skill the topic :data:`UNTAGGED` (counted)."""
    skills = events["skill_ids"]
    empty = skills.map(lambda s: not isinstance(s, list) or not s).to_numpy(dtype=bool)
    report.count(f"attempts without a skill kept under the topic '{UNTAGGED}'", empty.sum())
    if empty.any():
        events = events.copy()
        events.loc[empty, "skill_ids"] = events.loc[empty, "skill_ids"].map(lambda _: [UNTAGGED])
    return events
