"""Training data for the warm-start job: cleaning counts kept, --calibrate, the unscored window."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from skbandit import schema
from skbandit.exceptions import SkbanditError
from train.warmstart.data import load_training_data, run_params, scored_from

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_cleaning_counts_are_kept_not_discarded(tmp_path, small_school):
    events = small_school.events.head(300).copy()
    events.loc[3, schema.LATENCY_MS] = 4e9  # clipped
    events.loc[4, schema.LATENCY_MS] = -5.0  # blanked
    events = pd.concat([events, events.iloc[[7]]])  # an exact duplicate
    path = tmp_path / "events.csv"
    events.to_csv(path, index=False)
    data = load_training_data(path, small_school.items_path)
    assert data.cleaning["events_rows_dropped"] == 1
    assert data.cleaning["events_dropped_duplicates"] == 1
    assert data.cleaning["events_latency_clipped"] == 1
    assert data.cleaning["events_latency_invalid"] == 1
    assert data.calibration is None and data.calibrated_until is None


def test_calibrate_replaces_difficulties_from_the_earliest_events(small_school):
    plain = load_training_data(small_school.events_path, small_school.items_path)
    data = load_training_data(
        small_school.events_path, small_school.items_path, calibrate_method="rasch", fraction=0.4
    )
    assert data.calibration["method"] == "rasch"
    assert not data.items[schema.DIFFICULTY].equals(plain.items[schema.DIFFICULTY])
    assert data.items[schema.ITEM_ID].tolist() == plain.items[schema.ITEM_ID].tolist()
    ordered = data.events.sort_values(schema.TIMESTAMP, kind="stable")
    n = scored_from(ordered, data.calibrated_until)
    assert n == data.calibration["events"]
    assert abs(n - 0.4 * len(ordered)) <= ordered[schema.TIMESTAMP].duplicated().sum() + 1
    assert run_params(data, n)["calibration_window_end"] == data.calibration["window_end"]


def test_a_window_covering_every_event_is_refused(small_school):
    data = load_training_data(
        small_school.events_path, small_school.items_path, calibrate_method="rasch", fraction=1.0
    )
    with pytest.raises(SkbanditError, match="could score none"):
        scored_from(data.events, data.calibrated_until)


def test_ingested_items_carry_their_window_into_training(tmp_path):
    from train.ingest.cli import app

    out = tmp_path / "a12"
    result = CliRunner().invoke(
        app, ["--format", "assistments-2012", str(FIXTURES / "assistments-2012"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = load_training_data(out / "events.parquet", out / "items.parquet")
    assert data.calibration["method"] == "rasch"
    assert scored_from(data.events, data.calibrated_until) == data.calibration["events"]


def test_trace_prints_what_cleaning_dropped(tmp_path, small_school, monkeypatch):
    from serve.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none.db'}")
    events = pd.concat([small_school.events, small_school.events.iloc[[0]]])
    path = tmp_path / "events.parquet"
    events.to_parquet(path)
    row = small_school.events.iloc[0]
    result = CliRunner(env={"COLUMNS": "160"}).invoke(
        app,
        [
            "trace",
            "--student-id",
            row[schema.USER_ID],
            "--topic",
            row[schema.TOPIC],
            "--events",
            str(path),
            "--items",
            str(small_school.items_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "dropped 1 duplicate rows" in result.stderr


@pytest.mark.slow
def test_warmstart_calibrates_and_logs_the_window(tmp_path, small_school):
    import mlflow

    from train.warmstart.cli import app

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "160"}
    result = CliRunner(env=env).invoke(app, [*small_school.options, "--calibrate", "2pl"])
    assert result.exit_code == 0, result.output
    assert "learned but not scored" in result.output
    client = mlflow.MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("skbandit-warmstart").experiment_id])[0]
    params = run.data.params
    assert params["calibration_method"] == "2pl"
    n_unscored = int(params["unscored_events"])
    assert 0 < n_unscored == int(params["calibration_events"])
    assert "final_after_first_batch_bandit_log_loss" not in run.data.metrics  # model had learned
