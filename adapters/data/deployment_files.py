"""Where a simulated deployment (``python -m train.evaluate deploy``) keeps its files.

- Its decision log: by default ``<model name>-decisions.db`` beside the MLflow store, never
  the production ``decisions.db`` (:func:`default_decision_log_url`).
- Its working folder (``--out``, else a temporary folder removed at the end): the school's
  ``items.parquet``, each night's ``day-NN/events.parquet`` (every attempt so far, in
  simulated time: what warm-start reads), ``day-NN/outcomes.parquet`` (that day's attempts
  with their ``decision_id``, stamped when they came back: what the gate joins to the log),
  ``day-NN/truth.parquet`` (the simulator's success probability of every logged candidate)
  and the model servers' logs.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from skbandit.exceptions import SkbanditError

ITEMS_FILE = "items.parquet"
EVENTS_FILE = "events.parquet"
OUTCOMES_FILE = "outcomes.parquet"
TRUTH_FILE = "truth.parquet"


def default_decision_log_url(model_name: str) -> str:
    """``sqlite:///<store folder>/<model_name>-decisions.db`` (the store MLflow points at,
    else the project's embedded one)."""
    import mlflow

    from adapters import tracking

    store = tracking.sqlite_path(mlflow.get_tracking_uri())
    if store is None:
        store = tracking.sqlite_path(tracking.embedded_tracking_uri())
    assert store is not None  # the embedded store is always a sqlite:/// file
    return f"sqlite:///{store.parent / f'{model_name}-decisions.db'}"


def check_decision_log(url: str) -> str:
    """Connect to the decision log at ``url`` once (creating a SQLite file's folder); return
    its display URL, or raise a one-line SkbanditError before the deployment starts."""
    from sqlalchemy.exc import SQLAlchemyError

    from adapters.decision_log import BUSY_TIMEOUT_S, DecisionLog
    from adapters.decision_log import tables as decision_tables

    log = DecisionLog(url)
    try:
        if log.sqlite_file is not None:
            log.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        engine = decision_tables.make_engine(log.url, BUSY_TIMEOUT_S)
        with engine.connect():
            pass
        engine.dispose()
    except (OSError, SQLAlchemyError) as error:
        reason = (str(getattr(error, "orig", None) or error).strip().splitlines() or ["?"])[0]
        raise SkbanditError(
            f"--decision-log {log.display_url} is unreachable ({reason[:200]}); pass a "
            "writable sqlite:/// path or a running PostgreSQL URL"
        ) from None
    return log.display_url


class DeploymentFolder:
    """The deployment's working folder (``out``, else a temporary one removed by
    :meth:`close`)."""

    def __init__(self, out: Path | None):
        self.keep = out is not None
        self.path = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="deploy-"))
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SkbanditError(
                f"--out {out}: cannot create the folder ({error.strerror}); pass a writable folder"
            ) from None

    @property
    def items_path(self) -> Path:
        return self.path / ITEMS_FILE

    def write_history(self, events: pd.DataFrame, items: pd.DataFrame) -> Path:
        """Write the items and the history (day 0); return the history's path."""
        items.to_parquet(self.items_path, index=False)
        folder = self.day_folder(0)
        folder.mkdir(parents=True, exist_ok=True)
        events.to_parquet(folder / EVENTS_FILE, index=False)
        return folder / EVENTS_FILE

    def write_night(
        self, day: int, events: pd.DataFrame, outcomes: pd.DataFrame, truth: pd.DataFrame
    ) -> tuple[Path, Path, Path]:
        """Write the night's files; return the paths of the events, items and outcomes."""
        folder = self.day_folder(day)
        folder.mkdir(parents=True, exist_ok=True)
        events.to_parquet(folder / EVENTS_FILE, index=False)
        outcomes.to_parquet(folder / OUTCOMES_FILE, index=False)
        truth.to_parquet(folder / TRUTH_FILE, index=False)
        return folder / EVENTS_FILE, self.items_path, folder / OUTCOMES_FILE

    def day_folder(self, day: int) -> Path:
        return self.path / f"day-{day:02d}"

    def server_log(self, version: str) -> Path:
        return self.path / f"server-v{version}.log"

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
