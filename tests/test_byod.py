"""The README's "Bring your own data" flow with the default data already trained: the
imported data set gets a model of its own, and ranking it with another data set's version is
said in one line, never silent (issue 23)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from adapters.data import identity as data_identity
from serve.cli import app as cli_app
from train.ingest.cli import app as ingest_app
from train.warmstart.cli import app as warmstart_app

A09 = Path(__file__).parent / "fixtures" / "assistments-2009" / "skill_builder_data.csv"
TRACE = ["trace", "--student-id", "70363", "--topic", "Box and Whisker", "--use-rl"]


@pytest.fixture
def byod_store(tmp_path, monkeypatch, small_school):
    """A fresh store where the default data (the small school) is trained, as after the
    README's quick start; ``data/a09`` ingested from the repository's sample."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("SKBANDIT_EVENTS", str(small_school.events_path))
    monkeypatch.setenv("SKBANDIT_ITEMS", str(small_school.items_path))
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("SKBANDIT_MODEL", raising=False)
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
    result = runner.invoke(warmstart_app, [])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        ingest_app, ["--format", "assistments-2009", str(A09), "--out", "data/a09"]
    )
    assert result.exit_code == 0, result.output
    yield runner
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _versions(name: str) -> list[str]:
    found = mlflow.MlflowClient().search_model_versions(f"name='{name}'")
    return sorted(str(v.version) for v in found)


def test_byod_flow_never_ranks_imported_data_with_another_data_sets_version(byod_store):
    runner = byod_store
    files = ["--events", "data/a09/events.parquet", "--items", "data/a09/items.parquet"]
    result = runner.invoke(warmstart_app, files)
    assert result.exit_code == 0, result.output
    assert "model: skbandit-a09 (skbandit-linucb's champion v1 was trained on" in result.output
    assert _versions("skbandit-linucb") == ["1"]  # the default school's model is untouched
    assert _versions("skbandit-a09") == ["1"]
    tags = mlflow.MlflowClient().get_model_version("skbandit-a09", "1").tags
    assert tags[data_identity.DATA_TAG] == "data/a09/events.parquet + data/a09/items.parquet"

    mixed = runner.invoke(cli_app, [*TRACE, *files])  # the default model on the a09 data
    assert mixed.exit_code == 0, mixed.output
    warning = [line for line in mixed.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, mixed.output
    assert warning[0].startswith("warning: skbandit-linucb v1 was trained on ")
    assert "not on the items given (data/a09/events.parquet + data/a09/items.parquet" in warning[0]
    assert "--model skbandit-a09@champion" in warning[0]

    matched = runner.invoke(cli_app, [*TRACE, *files, "--model", "skbandit-a09@champion"])
    assert matched.exit_code == 0, matched.output
    assert "warning:" not in matched.output


def test_retraining_the_same_data_keeps_its_model(byod_store):
    result = byod_store.invoke(warmstart_app, [])
    assert result.exit_code == 0, result.output
    assert _versions("skbandit-linucb") == ["1", "2"]


def test_default_data_after_another_data_set_took_the_name_is_refused(
    tmp_path, monkeypatch, small_school
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert (
        runner.invoke(
            ingest_app, ["--format", "assistments-2009", str(A09), "--out", "a09"]
        ).exit_code
        == 0
    )
    result = runner.invoke(
        warmstart_app, ["--events", "a09/events.parquet", "--items", "a09/items.parquet"]
    )
    assert result.exit_code == 0, result.output  # the first data set takes the default name
    monkeypatch.setenv("SKBANDIT_EVENTS", str(small_school.events_path))
    monkeypatch.setenv("SKBANDIT_ITEMS", str(small_school.items_path))
    result = runner.invoke(warmstart_app, [])
    assert result.exit_code == 1
    assert (
        "skbandit-linucb's champion v1 was trained on a09/events.parquet + "
        "a09/items.parquet, not on the default data" in result.output
    )
    assert "--model-name NAME" in result.output
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
