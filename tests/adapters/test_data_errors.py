"""Data files that once gave a generic error or trained silently (issue 22, "Errors that name
the problem"): each is now one line naming the file, the column and the value."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from adapters.data.datasets import load_school_reports, read_events, read_items
from skbandit.exceptions import SkbanditError
from train.ingest.cli import app

FIXTURES = Path(__file__).parents[1] / "fixtures"
A09 = FIXTURES / "assistments-2009" / "skill_builder_data.csv"


def _events(**columns) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b"],
            "item_id": ["i", "j"],
            "topic": ["t", "u"],
            "timestamp": ["2020-01-01", "2020-01-02"],
            "correct": [1, 0],
        }
    )
    return frame.assign(**columns)


def _one_line(message: str) -> str:
    assert "\n" not in message.strip() and "Traceback" not in message
    return message


@pytest.mark.parametrize(
    ("column", "values", "kind"),
    [
        ("user_id", [{"x": 1}, {"x": 2}], "dict"),
        ("extra", [{"x": 1}, {"x": 2}], "dict"),
        ("item_id", [[1], [2]], "ndarray"),
    ],
)
def test_nested_parquet_columns_are_named(tmp_path, column, values, kind):
    path = tmp_path / "nested.parquet"
    _events(**{column: values}).to_parquet(path)
    with pytest.raises(SkbanditError) as error:
        read_events(path)
    message = _one_line(str(error.value))
    assert message.startswith(f"{path}: column '{column}' holds nested values ({kind}")
    assert "flatten or drop that column" in message


def test_nested_items_column_is_named(tmp_path):
    path = tmp_path / "items.parquet"
    pd.DataFrame(
        {"item_id": ["i"], "topic": ["t"], "difficulty": [0.0], "meta": [{"a": 1}]}
    ).to_parquet(path)
    with pytest.raises(SkbanditError, match=r"items.parquet: column 'meta' holds nested"):
        read_items(path)


def test_a_monstrous_skill_ids_text_is_named_not_a_memory_error(tmp_path):
    path = tmp_path / "skills.parquet"
    frame = _events(skill_ids=["[" + "-" * 100_000 + "1]", "[1]"]).drop(columns="topic")
    frame.to_parquet(path)
    with pytest.raises(SkbanditError) as error:
        read_events(path)
    message = _one_line(str(error.value))
    assert message.startswith(f"{path}: column 'skill_ids' has '[-----")
    assert "(100,005 characters), not a list of skill ids" in message


def _ingest(tmp_path, frame: pd.DataFrame) -> str:
    raw = tmp_path / "skill_builder_data.csv"
    frame.to_csv(raw, index=False)
    result = CliRunner(env={"COLUMNS": "300", "NO_COLOR": "1"}).invoke(
        app, ["--format", "assistments-2009", str(raw), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 1, result.output
    assert not (tmp_path / "out").exists()
    return _one_line(result.output)


def test_ingest_when_the_import_drops_every_row(tmp_path):
    raw = pd.read_csv(A09, dtype=str).assign(original="0")  # every row a scaffolding question
    message = _ingest(tmp_path, raw)
    assert (
        "skill_builder_data.csv: every row was dropped (scaffolding rows dropped "
        "(original = 0): 14)" in message
    )


def test_ingest_when_cleaning_drops_every_row(tmp_path):
    raw = pd.read_csv(A09, dtype=str).assign(skill_name="", skill_id="")
    message = _ingest(tmp_path, raw)
    assert "no attempts left after cleaning (14 raw rows; 10 without topic" in message
    assert "--keep-untagged" in message


@pytest.mark.parametrize(
    ("value", "shown"), [("1e18", "1e+18"), ("1e308", "1e+308"), ("inf", "inf")]
)
def test_order_ids_beyond_the_synthetic_clock_are_named(tmp_path, value, shown):
    raw = pd.read_csv(A09, dtype=str)
    raw.loc[0, "order_id"] = value
    message = _ingest(tmp_path, raw)
    assert (
        f"skill_builder_data.csv: column 'order_id' has {shown} (1 rows), beyond the "
        "synthetic clock" in message
    )


def _tables(tmp_path, item_topics) -> tuple[Path, Path]:
    events, items = tmp_path / "events.parquet", tmp_path / "items.parquet"
    _events().to_parquet(events)
    pd.DataFrame(
        {"item_id": ["i", "j"], "topic": item_topics, "difficulty": [0.0, 0.5]}
    ).to_parquet(items)
    return events, items


def test_items_sharing_no_topic_with_the_events_are_refused(tmp_path):
    events, items = _tables(tmp_path, ["algebra", "geometry"])
    with pytest.raises(SkbanditError) as error:
        load_school_reports(events, items)
    message = _one_line(str(error.value))
    assert message.startswith(
        f"{events} + {items}: none of the events' 2 topics ('t', 'u') "
        "is among the items' 2 topics ('algebra', 'geometry')"
    )


def test_items_sharing_some_topics_count_the_others(tmp_path):
    events, items = _tables(tmp_path, ["t", "geometry"])
    loaded = load_school_reports(events, items)
    assert loaded.event_report.unknown_topic == 1
    assert "1 events on topics the items table lacks" in loaded.event_report.summary()
