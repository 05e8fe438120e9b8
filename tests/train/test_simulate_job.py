"""``python -m train.simulate`` driven through its Typer app."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from adapters.data.datasets import read_events, read_items
from skbandit import schema
from train.simulate import app


@pytest.fixture(autouse=True)
def _quiet_mlflow(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("COLUMNS", "200")


def test_simulate_writes_canonical_parquet(tmp_path):
    result = CliRunner().invoke(app, ["--out", str(tmp_path), "--students", "25", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "events" in result.output and "accuracy" in result.output
    events, report = read_events(tmp_path / "events.parquet")
    items, _ = read_items(tmp_path / "items.parquet")
    assert report.n_dropped == 0
    assert events[schema.USER_ID].nunique() == 25
    assert events[schema.ITEM_ID].isin(items[schema.ITEM_ID]).all()
    assert events[schema.PROPENSITY].between(0, 1, inclusive="right").all()
    assert f"{len(events):,} events" in result.output
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary files


def test_same_seed_writes_the_same_events(tmp_path):
    for name in ("a", "b"):
        args = ["--out", str(tmp_path / name), "--students", "10", "--seed", "5"]
        assert CliRunner().invoke(app, args).exit_code == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "a" / "events.parquet"),
        pd.read_parquet(tmp_path / "b" / "events.parquet"),
    )


def test_bad_student_count_is_one_line_exit_1(tmp_path):
    result = CliRunner().invoke(app, ["--out", str(tmp_path), "--students", "0"])
    assert result.exit_code == 1
    assert "--students must be at least 1; found 0" in result.output
    assert "Traceback" not in result.output
