"""Where skbandit keeps its files: one rule for the tracking store and the data cache.

The *project folder* is the first of:

1. the nearest folder at or above the current directory whose ``pyproject.toml`` names the
   project ``skbandit`` (working inside a checkout uses that checkout);
2. the source checkout this code runs from (an editable install or ``python -m`` in a
   checkout), never an installed copy in ``site-packages``;
3. ``~/.skbandit`` (an installed package used outside any checkout).

The embedded MLflow store is ``<project folder>/mlruns/mlflow.db`` (artifacts beside it) unless
``MLFLOW_TRACKING_URI`` is set; the default school is cached in
``<project folder>/.cache/default-school`` unless ``SKBANDIT_DATA_DIR`` is set. Nothing is
ever written inside an installed package.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

PROJECT_NAME = "skbandit"
HOME_FOLDER = ".skbandit"
INSTALL_FOLDERS = frozenset({"site-packages", "dist-packages"})
CODE_ROOT = Path(__file__).resolve().parent.parent
"""The folder holding the ``adapters`` package: a checkout, or ``site-packages`` when installed."""


def project_dir() -> Path:
    """The project folder by the rule above (not created here)."""
    try:
        here = find_checkout(Path.cwd())
    except OSError:  # the current directory was deleted
        here = None
    return here or source_checkout() or Path.home() / HOME_FOLDER


def source_checkout() -> Path | None:
    """The skbandit checkout this code runs from, or None for an installed package."""
    if INSTALL_FOLDERS & set(CODE_ROOT.parts):
        return None
    return CODE_ROOT if is_checkout(CODE_ROOT) else None


def find_checkout(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that is a skbandit checkout, else None."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if is_checkout(folder):
            return folder
    return None


def is_checkout(folder: Path) -> bool:
    """Whether ``folder`` holds a ``pyproject.toml`` whose project is named skbandit."""
    try:
        with open(folder / "pyproject.toml", "rb") as handle:
            return tomllib.load(handle).get("project", {}).get("name") == PROJECT_NAME
    except (OSError, tomllib.TOMLDecodeError):
        return False
