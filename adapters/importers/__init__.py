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


def load(fmt: str, paths: Sequence[Path]) -> RawImport:
    """Read ``paths`` as format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise SkbanditError(
            f"unknown --format {fmt!r} (expected one of {', '.join(FORMATS)}); "
            "pass for example --format assistments-2009"
        )
    module = importlib.import_module(f"{__name__}.{FORMATS[fmt][0]}")
    return module.load(list(paths))
