"""Shared fixtures: a small simulated school and a temporary MLflow store trained on it.

Append new fixtures at the end (several test modules share this file).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from skbandit.sim.generate import SchoolConfig, simulate_school

SMALL_SCHOOL = SchoolConfig(n_students=60, seed=3, attempts_per_student=80, items_per_topic=(8, 15))
"""About 4,300 events over 24 topics; the demo student ABC123 practises 7.RP.A.1 in 2024-W01
and again in 2024-W14."""

MODEL_NAME = "skbandit-linucb"


@dataclass(frozen=True)
class SchoolFiles:
    """A simulated school written as parquet files."""

    events_path: Path
    items_path: Path
    events: pd.DataFrame
    items: pd.DataFrame

    @property
    def options(self) -> list[str]:
        """``--events PATH --items PATH`` for the command lines."""
        return ["--events", str(self.events_path), "--items", str(self.items_path)]


@dataclass(frozen=True)
class TrainedStore:
    """A temporary MLflow store with ``skbandit-linucb`` v1 (aliases champion, challenger)."""

    tracking_uri: str
    school: SchoolFiles

    @property
    def env(self) -> dict[str, str]:
        """Environment for processes that use this store."""
        return {"MLFLOW_TRACKING_URI": self.tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.fixture(scope="session")
def small_school(tmp_path_factory) -> SchoolFiles:
    """The SMALL_SCHOOL config simulated once per session and written to parquet."""
    folder = tmp_path_factory.mktemp("small-school")
    school = simulate_school(SMALL_SCHOOL)
    events_path, items_path = folder / "events.parquet", folder / "items.parquet"
    school.events.to_parquet(events_path, index=False)
    school.items.to_parquet(items_path, index=False)
    return SchoolFiles(events_path, items_path, school.events, school.items)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, small_school) -> TrainedStore:
    """``python -m train.warmstart --events E --items I`` into a temporary SQLite store (the
    first version gets both aliases)."""
    import mlflow

    from train.warmstart.cli import app as warmstart_app

    folder = tmp_path_factory.mktemp("mlflow-store")
    store = TrainedStore(f"sqlite:///{folder / 'mlflow.db'}", small_school)
    result = CliRunner(env=store.env).invoke(warmstart_app, small_school.options)
    assert result.exit_code == 0, result.output
    aliases = mlflow.MlflowClient(store.tracking_uri).get_registered_model(MODEL_NAME).aliases
    assert aliases == {"champion": 1, "challenger": 1}, aliases
    return store


@pytest.fixture
def store_env(monkeypatch, trained_store) -> TrainedStore:
    """Point this test's process at the trained store, with no data-location overrides."""
    for name, value in trained_store.env.items():
        monkeypatch.setenv(name, value)
    for name in ("SKBANDIT_EVENTS", "SKBANDIT_ITEMS", "SKBANDIT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return trained_store


@pytest.fixture
def configured_store(store_env) -> Iterator[TrainedStore]:
    """:func:`store_env`, with this process's mlflow pointed at the store as the entry points
    do (an earlier test's registry URI may linger in mlflow); reset afterwards."""
    import mlflow

    from adapters import tracking

    tracking.configure_tracking(create=False)
    yield store_env
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture
def evaluation_app(monkeypatch, tmp_path):
    """``python -m train.evaluate``'s Typer app, logging to a temporary store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("COLUMNS", "200")
    from train.evaluate.cli import app

    return app


HelpRunner = Callable[[str, list[str], tuple[str, ...]], tuple[str, list[str]]]


@pytest.fixture
def help_in_fresh_interpreter() -> HelpRunner:
    """Run ``<module>.app(args)`` (a ``--help`` call) in a new interpreter.

    Returns what it printed and which of ``heavy`` were imported by then, so a test can
    assert that ``--help`` stays instant (no mlflow, pandas, ... at import time).
    """

    def run(module: str, args: list[str], heavy: tuple[str, ...]) -> tuple[str, list[str]]:
        script = (
            "import sys\n"
            f"from {module} import app\n"
            "try:\n"
            f"    app({args!r})\n"
            "except SystemExit:\n"
            "    pass\n"
            f"print('imported:', ','.join(sorted(m for m in {heavy!r} if m in sys.modules)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
            cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        *printed, last = result.stdout.strip().splitlines()
        imported = last.removeprefix("imported:").strip()
        return "\n".join(printed), imported.split(",") if imported else []

    return run


@pytest.fixture(autouse=True, scope="session")
def decision_log_outside_the_repo(tmp_path_factory):
    """Decisions served by in-process models go to a temporary log, never the repo's mlruns/."""
    import os

    if os.environ.get("SKBANDIT_DECISION_LOG"):
        yield
        return
    folder = tmp_path_factory.mktemp("decision-log")
    os.environ["SKBANDIT_DECISION_LOG"] = str(folder / "decisions.db")
    yield
    os.environ.pop("SKBANDIT_DECISION_LOG", None)
