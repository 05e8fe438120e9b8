"""``python -m train.ingest``: every importer on its fixture, the report, and bad input.

The fixtures under ``tests/fixtures/<format>/`` are small hand-written files in each public
layout (headers as documented), with the known quirks: multi-skill rows, duplicated records,
blank skills, negative and huge response times, hints before a correct answer, EdNet
bundles, DataShop's ``.`` for a missing duration, EDM Cup's ungraded problems.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from adapters import importers
from adapters.data.datasets import read_events, read_items
from adapters.data.ingest_output import CLEANING_FILE, read_calibration
from skbandit import schema
from skbandit.cleaning import LATENCY_CAP_MS, unknown_items, validate_events
from train.ingest.cli import app

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _ingest(*args) -> object:
    return CliRunner(env={"COLUMNS": "160", "NO_COLOR": "1"}).invoke(app, [str(a) for a in args])


def _import(fmt: str, *paths) -> tuple[pd.DataFrame, dict]:
    raw = importers.load(fmt, [FIXTURES / fmt / p for p in paths] or [FIXTURES / fmt])
    events, _ = validate_events(raw.events, fmt)
    return events.set_index(schema.ITEM_ID, drop=False), raw.report.steps


def _row(events: pd.DataFrame, user: str, item: str) -> pd.Series:
    rows = events[(events[schema.USER_ID] == user) & (events[schema.ITEM_ID] == item)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# --- each format on its fixture --------------------------------------------------------


def test_assistments_2009_collapses_skills_and_applies_the_tutoring_rule():
    events, steps = _import("assistments-2009")
    multi = _row(events, "70363", "43036")
    assert list(multi[schema.SKILL_IDS]) == [
        "Venn Diagram",
        "Order of Operations +,-,/,* () positive reals",
    ]
    assert multi[schema.TOPIC] == "Venn Diagram"
    assert _row(events, "64525", "51467")[schema.CORRECT] == 0  # logged 1 after 2 hints
    assert "51468" not in events.index  # scaffolding question
    assert "43050" not in events.index  # no skill
    assert np.isnan(_row(events, "96274", "51424")[schema.LATENCY_MS])
    assert _row(events, "96274", "51435")[schema.LATENCY_MS] == LATENCY_CAP_MS
    assert steps["extra skill rows collapsed into their attempt"] == 2
    assert steps["exact duplicate rows dropped"] == 1
    assert steps["correct answers marked wrong: help came first"] == 1
    order = events[events[schema.USER_ID] == "70363"][schema.ITEM_ID].tolist()
    assert order == ["43036", "51444", "51444"]  # by order_id, not by file row


def test_assistments_2012_drops_partial_credit_and_keeps_start_time():
    events, steps = _import("assistments-2012")
    assert steps["rows dropped: partial credit (correct not 0 or 1)"] == 1
    assert set(events[schema.CORRECT]) == {0, 1}
    assert _row(events, "86004", "53169")[schema.CORRECT] == 0  # hint first
    assert _row(events, "96292", "60016")[schema.TOPIC] == "311"  # skill id where no name
    assert "60017" not in events.index  # neither name nor id
    first = _row(events, "86004", "53167")[schema.TIMESTAMP]
    assert first == pd.Timestamp("2012-09-26 10:29:40", tz="UTC")


def test_ednet_scores_answers_and_aligns_bundles_to_when_they_were_given():
    events, steps = _import("ednet-kt1", "KT1", "contents/questions.csv")
    bundle = events[events[schema.ACTION_SEQUENCE_ID] == "u717875-3"]
    assert bundle[schema.ITEM_ID].tolist() == ["q2319", "q2320", "q2321"]
    assert bundle[schema.TIMESTAMP].nunique() == 1
    assert bundle[schema.TIMESTAMP].iloc[0] == pd.Timestamp(1565332085743, unit="ms", tz="UTC")
    assert bundle[schema.CORRECT].tolist() == [1, 1, 0]  # answers a, d, c against a, d, d
    assert list(_row(events, "u1", "q2319")[schema.SKILL_IDS]) == ["179", "53", "183", "184"]
    assert "q6747" not in events.index  # tagged -1: no skill
    assert steps["answers dropped: question not in questions.csv"] == 1
    assert steps["rows dropped: no answer"] == 1


def test_datashop_step_export_uses_first_attempt_and_kc_lists():
    events, _ = _import("datashop", "algebra_2005_2006_train.txt")
    first = _row(events, "0BrbPbwCMz", "EG4-FIXED | 3(x+2) = 15")
    assert first[schema.CORRECT] == 0 and first[schema.HELP_REQUESTED] == 1.0
    assert first[schema.LATENCY_MS] == 14_000  # first transaction 14 s after step start
    assert len(first[schema.SKILL_IDS]) == 2
    assert np.isnan(_row(events, "0BrbPbwCMz", "EG40 | -x = -3")[schema.LATENCY_MS])
    assert "EG40 | DONE" not in events.index  # no KC


def test_datashop_transactions_keep_the_first_attempt_per_step():
    events, steps = _import("datashop", "ds_tx_export.txt")
    hinted = _row(events, "Stu_01", "FracAdd1 | denominator UpdateTextField")
    assert hinted[schema.CORRECT] == 0 and hinted[schema.HELP_REQUESTED] == 1.0
    assert _row(events, "Stu_02", "FracAdd1 | numerator UpdateTextField")[schema.CORRECT] == 0
    lcm = _row(events, "Stu_02", "FracAdd1 | denominator UpdateTextField")
    assert list(lcm[schema.SKILL_IDS]) == ["common-denominator", "lcm"]
    assert steps["later transactions on a step dropped (first attempt counts)"] == 2


def test_edm_cup_first_graded_response_with_help_first_marked_wrong():
    events, steps = _import("edm-cup-2023")
    assert _row(events, "1G6WTNTFKW", "1PB0TLIX3N")[schema.CORRECT] == 1
    hinted = _row(events, "1G6WTNTFKW", "X3K0F2A1ZQ")
    assert hinted[schema.CORRECT] == 0 and hinted[schema.HELP_REQUESTED] == 1.0
    assert _row(events, "1G6WTNTFKW", "7TT3MLQ0VE")[schema.CORRECT] == 0  # wrong, then answer
    assert _row(events, "3JN5MD0UDO", "1PB0TLIX3N")[schema.CORRECT] == 0  # wrong, then right
    started = _row(events, "1G6WTNTFKW", "1PB0TLIX3N")
    assert started[schema.TIMESTAMP] == pd.Timestamp(1599150989.312, unit="s", tz="UTC")
    assert started[schema.LATENCY_MS] == pytest.approx(30_799, abs=1)
    assert steps["problems dropped: started, never graded"] == 1
    assert steps["attempts dropped: assignment not in assignment_details"] == 1


# --- the command ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(importers.FORMATS))
def test_ingest_writes_tables_that_the_loaders_accept(tmp_path, fmt):
    out = tmp_path / "out"
    result = _ingest("--format", fmt, FIXTURES / fmt, "--out", out)
    assert result.exit_code == 0, result.output
    assert "Ingest report" in result.output and "events written" in result.output
    events, event_report = read_events(out / "events.parquet")
    items, _ = read_items(out / "items.parquet")
    assert event_report.n_dropped == 0  # written clean
    assert unknown_items(events, items) == 0
    assert items[schema.DIFFICULTY].notna().all()
    cleaning = json.loads((out / CLEANING_FILE).read_text())
    assert cleaning["output"]["events"] == len(events)
    assert read_calibration(out / "items.parquet")["events"] == cleaning["calibration"]["events"]


def test_ids_of_any_type_become_clean_strings(tmp_path):
    raw = pd.DataFrame(
        {
            "user_id": [7.0, 8.0],
            "item_id": [280.0, 281.0],
            "skill_ids": [280.0, np.nan],
            "topic": [None, "x"],
            "timestamp": ["2024-01-01", "2024-01-02"],
            "correct": [1, 0],
        }
    )
    events, _ = validate_events(raw, "floats")
    assert events[schema.USER_ID].tolist() == ["7", "8"]
    assert events[schema.ITEM_ID].tolist() == ["280", "281"]
    assert events[schema.TOPIC].tolist() == ["280", "x"]
    assert events[schema.SKILL_IDS].tolist() == [["280"], []]


def test_warmstart_reads_numeric_skill_ids_from_csv(tmp_path):
    """The crash of issue 12: a numeric skill_ids column ('float' is not iterable)."""
    path = tmp_path / "events.csv"
    pd.DataFrame(
        {
            "user_id": [1, 2],
            "item_id": [10, 11],
            "skill_ids": [280, None],
            "timestamp": ["2024-01-01", "2024-01-02"],
            "correct": [1, 0],
        }
    ).to_csv(path)
    events, report = read_events(path)
    assert events[schema.TOPIC].tolist() == ["280"] and report.dropped_missing["topic"] == 1


def test_a_rerun_replaces_the_earlier_output(tmp_path):
    out = tmp_path / "out"
    fmt = "assistments-2012"
    assert _ingest("--format", fmt, FIXTURES / fmt, "--out", out).exit_code == 0
    result = _ingest("--format", fmt, FIXTURES / fmt, "--out", out, "--calibrate", "2pl")
    assert result.exit_code == 0, result.output
    assert json.loads((out / CLEANING_FILE).read_text())["calibration"]["method"] == "2pl"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging left behind


# --- bad input: one line, exit 1, nothing written ------------------------------------------


def _fails(tmp_path, *args) -> str:
    out = tmp_path / "out"
    result = _ingest(*args, "--out", out)
    assert result.exit_code == 1, result.output
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def test_wrong_format_names_format_column_and_columns_found(tmp_path):
    message = _fails(tmp_path, "--format", "assistments-2012", FIXTURES / "assistments-2009")
    assert "assistments-2012" in message and "missing column 'start_time'" in message
    assert "found columns: order_id, assignment_id" in message


def test_empty_file(tmp_path):
    empty = tmp_path / "skill_builder_data.csv"
    empty.write_text("")
    message = _fails(tmp_path, "--format", "assistments-2009", empty)
    assert "is empty" in message


def test_wrong_delimiter_is_explained(tmp_path):
    frame = pd.read_csv(FIXTURES / "assistments-2009" / "skill_builder_data.csv")
    tabbed = tmp_path / "tabbed.csv"
    frame.to_csv(tabbed, sep="\t", index=False)
    message = _fails(tmp_path, "--format", "assistments-2009", tabbed)
    assert "missing column 'order_id'" in message and "looks tab-separated" in message


def test_unreadable_timestamp_names_the_column(tmp_path):
    source = FIXTURES / "assistments-2012" / "2012-2013-data-with-predictions-4-final.csv"
    bad = tmp_path / "logs.csv"
    bad.write_text(source.read_text().replace("2012-09-27 13:02:11.0", "last tuesday", 1))
    message = _fails(tmp_path, "--format", "assistments-2012", bad)
    assert "column 'start_time' must be a date and time" in message and "'last tuesday'" in message


def test_unknown_format_and_foreign_out_folder(tmp_path):
    message = _fails(tmp_path, "--format", "kdd", FIXTURES / "datashop")
    assert "unknown --format 'kdd'" in message and "assistments-2009" in message
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    result = _ingest("--format", "datashop", FIXTURES / "datashop", "--out", taken)
    assert result.exit_code == 1 and "already holds other files (notes.txt)" in result.output
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]


def test_help_is_instant(help_in_fresh_interpreter):
    heavy = ("pandas", "numpy", "mlflow", "sklearn", "pyarrow")
    printed, imported = help_in_fresh_interpreter("train.ingest.cli", ["--help"], heavy)
    assert "--format" in printed and "edm-cup-2023" in printed
    assert imported == []
