"""Loaders and validators of the canonical event and item tables (skbandit.cleaning)."""

import numpy as np
import pandas as pd
import pytest

from adapters.data.datasets import read_events, read_items
from skbandit import schema
from skbandit.cleaning import (
    LATENCY_CAP_MS,
    unknown_items,
    validate_events,
    validate_items,
)
from skbandit.exceptions import SkbanditError


def _events(**overrides):
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "item_id": ["a", "b", "a"],
            "topic": ["7.RP.A.1", "7.RP.A.1", "7.RP.A.3"],
            "timestamp": ["2024-01-02T10:00:00Z", "2024-01-02T10:02:00Z", "2024-01-03T09:00:00Z"],
            "correct": [1, 0, 1],
            "latency_ms": [60_000, 90_000, 30_000],
            "help_requested": [False, True, False],
        }
    )
    return frame.assign(**overrides)


def _items(**overrides):
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b"],
            "topic": ["7.RP.A.1", "7.RP.A.1"],
            "difficulty": [-0.5, 0.7],
        }
    )
    return frame.assign(**overrides)


def test_clean_events_get_canonical_types():
    events, report = validate_events(_events(), "ev.csv")
    assert str(events[schema.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert events[schema.CORRECT].dtype == np.int64
    assert events[schema.USER_ID].tolist() == ["u1", "u1", "u2"]
    assert events[schema.HELP_REQUESTED].tolist() == [0.0, 1.0, 0.0]
    assert (report.n_rows_in, report.n_rows_out, report.n_dropped) == (3, 3, 0)
    assert report.summary() == "ev.csv: kept 3 of 3 rows"


def test_missing_column_names_file_column_and_schema():
    with pytest.raises(SkbanditError, match=r"events\.parquet: missing column 'correct'") as err:
        validate_events(_events().drop(columns="correct"), "events.parquet")
    assert "user_id" in str(err.value) and "\n" not in str(err.value)


def test_topic_or_skill_ids_is_required():
    with pytest.raises(SkbanditError, match="missing column 'topic'"):
        validate_events(_events().drop(columns="topic"), "ev")


def test_correct_outside_0_1_is_an_error_with_counts():
    with pytest.raises(SkbanditError) as err:
        validate_events(_events(correct=[2, 1, 2]), "events.parquet")
    assert str(err.value) == "events.parquet: column 'correct' must be 0 or 1; found 2 (2 rows)"


def test_correct_accepts_booleans_and_rejects_nan():
    events, _ = validate_events(_events(correct=[True, False, True]), "ev")
    assert events[schema.CORRECT].tolist() == [1, 0, 1]
    with pytest.raises(SkbanditError, match="must be 0 or 1; found NaN"):
        validate_events(_events(correct=[1, np.nan, 0]), "ev")


def test_huge_latency_is_clipped_and_counted():
    events, report = validate_events(_events(latency_ms=[1e9, 5_000, 4e6]), "ev")
    assert events[schema.LATENCY_MS].tolist() == [LATENCY_CAP_MS, 5_000, LATENCY_CAP_MS]
    assert report.latency_clipped == 2
    assert "clipped 2 latencies" in report.summary()


def test_nan_latency_and_help_are_kept_as_nan_and_counted():
    events, report = validate_events(
        _events(latency_ms=[np.nan, 10, -5], help_requested=[None, True, False]), "ev"
    )
    assert events[schema.LATENCY_MS].isna().tolist() == [True, False, True]
    assert events[schema.HELP_REQUESTED].isna().tolist() == [True, False, False]
    assert (report.latency_missing, report.latency_invalid, report.help_missing) == (2, 1, 1)
    assert report.n_rows_out == 3


def test_rows_without_ids_and_duplicates_are_dropped_and_counted():
    frame = pd.concat([_events(), _events().iloc[[0]]], ignore_index=True)
    frame.loc[1, "user_id"] = None
    events, report = validate_events(frame, "ev")
    assert len(events) == 2
    assert report.dropped_missing[schema.USER_ID] == 1
    assert report.dropped_duplicates == 1
    assert report.n_dropped == 2
    assert "dropped 1 without user_id" in report.summary()


def test_skill_ids_give_the_topic():
    skills = [["7.RP.A.1", "7.RP.A.2"], np.array(["6.NS.A.1"]), '["8.EE.A.1", "x"]']
    events, _ = validate_events(_events(skill_ids=skills).drop(columns="topic"), "ev")
    assert events[schema.TOPIC].tolist() == ["7.RP.A.1", "6.NS.A.1", "8.EE.A.1"]
    assert events[schema.SKILL_IDS].iloc[0] == ["7.RP.A.1", "7.RP.A.2"]


def test_timestamps_become_utc_and_events_are_sorted():
    stamps = ["2024-01-03T10:00:00+01:00", "2024-01-02 08:00", "2024-01-01T00:00:00Z"]
    events, _ = validate_events(_events(timestamp=stamps), "ev")
    assert events[schema.TIMESTAMP].tolist() == [
        pd.Timestamp("2024-01-01T00:00Z"),
        pd.Timestamp("2024-01-02T08:00Z"),
        pd.Timestamp("2024-01-03T09:00Z"),
    ]
    with pytest.raises(SkbanditError, match="column 'timestamp' must be a datetime"):
        validate_events(_events(timestamp=["yesterday", "2024-01-02", "2024-01-02"]), "ev")


@pytest.mark.parametrize("bad", [0.0, 1.5, np.nan])
def test_propensity_must_be_in_0_1(bad):
    expected = r"column 'propensity' must be a probability in \(0, 1\]"
    with pytest.raises(SkbanditError, match=expected):
        validate_events(_events(propensity=[0.5, bad, 1.0]), "ev")
    events, _ = validate_events(_events(propensity=[0.5, 0.25, 1.0]), "ev")
    assert events[schema.PROPENSITY].tolist() == [0.5, 0.25, 1.0]


def test_items_defaults_and_checks():
    items, report = validate_items(_items(), "items.csv")
    assert items[schema.DISCRIMINATION].tolist() == [1.0, 1.0]
    assert items[schema.DRIFT_FLAG].tolist() == [False, False]
    assert report.filled_defaults == {schema.DISCRIMINATION: 2, schema.DRIFT_FLAG: 2}
    bare, _ = validate_items(_items().drop(columns="difficulty"), "items.csv")  # --calibrate
    assert bare[schema.DIFFICULTY].isna().all()
    with pytest.raises(SkbanditError, match=r"items\.csv: missing column 'topic'"):
        validate_items(_items().drop(columns="topic"), "items.csv")
    with pytest.raises(SkbanditError, match=r"column 'difficulty' must be a number in \[-10"):
        validate_items(_items(difficulty=[0.1, np.inf]), "items.csv")
    unique = r"column 'item_id' must be unique \(one row per item\); found 'a' \(2 rows\)"
    with pytest.raises(SkbanditError, match=unique):
        validate_items(_items(item_id=["a", "a"]), "items.csv")
    with pytest.raises(SkbanditError, match=r"column 'discrimination' must be a number in \(0"):
        validate_items(_items(discrimination=[1.0, -1.0]), "items.csv")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_round_trip(tmp_path, suffix):
    raw = _events(latency_ms=[1e9, np.nan, 3.0], user_id=["1", "u1", "u2"])
    path = tmp_path / f"events{suffix}"
    if suffix == ".csv":
        raw.to_csv(path, index=False)
        _items().to_csv(tmp_path / "items.csv", index=False)
    else:
        raw.to_parquet(path, index=False)
        _items().to_parquet(tmp_path / "items.parquet", index=False)
    events, report = read_events(path)
    direct, _ = validate_events(raw, "frame")
    pd.testing.assert_frame_equal(events, direct)
    assert report.source == str(path) and report.latency_clipped == 1
    items, _ = read_items(tmp_path / f"items{suffix}")
    assert items[schema.ITEM_ID].tolist() == ["a", "b"]


def test_unsupported_format_and_missing_file(tmp_path):
    path = tmp_path / "events.json"
    path.write_text("{}")
    with pytest.raises(
        SkbanditError,
        match=r"events\.json: unsupported file format '\.json' "
        r"\(expected one of \.parquet, \.pq, \.csv\)",
    ):
        read_events(path)
    with pytest.raises(SkbanditError, match="no such file"):
        read_items(tmp_path / "nope.parquet")


def test_unknown_items_counts_events():
    events, _ = validate_events(_events(item_id=["a", "zz", "zz"]), "ev")
    items, _ = validate_items(_items(), "items")
    assert unknown_items(events, items) == 2
