"""DataShop exports as real ones are: each defect of issue 23 on a small export built to show it.

The fixtures in ``tests/fixtures/datashop-quirks/`` (see its README) carry the quirks of real
transaction exports: ``.`` blanks, blank ``Attempt At Step`` on hint rows, ``KC (Default)``
repeated once per KC, a first KC model that is not ``Default``, a blank ``Problem View``, a
``Time Zone`` column and a ``Duration (sec)`` holding milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters import importers
from adapters.importers import ImportOptions
from adapters.importers._read import numbers
from skbandit import schema
from skbandit.cleaning import LATENCY_CAP_MS, validate_events
from skbandit.exceptions import SkbanditError

QUIRKS = Path(__file__).parents[1] / "fixtures" / "datashop-quirks"
TX = QUIRKS / "tx_export.txt"


def _events(path=TX, **options) -> tuple[pd.DataFrame, importers.RawImport]:
    raw = importers.load("datashop", [path], ImportOptions(**options))
    events, _ = validate_events(raw.events, "datashop")
    return events, raw


def _row(events, user, item) -> pd.Series:
    rows = events[(events[schema.USER_ID] == user) & (events[schema.ITEM_ID] == item)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# 1. "." blanks, whatever the dtype pandas gives text (object in pandas 2, str in pandas 3)
@pytest.mark.parametrize("dtype", [object, "str", "string"])
def test_dots_are_blanks_in_object_and_str_columns(dtype):
    values = pd.Series(["5", ".", None, "2.5"], dtype=dtype)
    out = numbers(values, "datashop", "f.txt", "Duration (sec)")
    assert out[0] == 5.0 and out[3] == 2.5
    assert np.isnan(out[1]) and np.isnan(out[2])


@pytest.mark.parametrize("dtype", [object, "str"])
def test_other_text_in_a_number_column_is_still_refused(dtype):
    with pytest.raises(SkbanditError, match=r"f.txt: column 'Duration \(sec\)' must be a number"):
        numbers(pd.Series(["5", "fast"], dtype=dtype), "datashop", "f.txt", "Duration (sec)")


@pytest.mark.parametrize("dtype", [object, "str"])
def test_help_flags_given_as_text_are_read_in_both_dtypes(dtype):
    frame = pd.DataFrame(
        {
            schema.USER_ID: ["a", "a"],
            schema.ITEM_ID: ["i", "j"],
            schema.TOPIC: ["t", "t"],
            schema.TIMESTAMP: ["2020-01-01", "2020-01-02"],
            schema.CORRECT: [1, 0],
            schema.HELP_REQUESTED: pd.Series(["True", "false"], dtype=dtype),
        }
    )
    events, _ = validate_events(frame)
    assert events[schema.HELP_REQUESTED].tolist() == [1.0, 0.0]


def test_a_transaction_export_with_dot_durations_imports():
    events, _ = _events()
    first = _row(events, "Stu_A", "P1 | step1")
    assert np.isnan(first[schema.LATENCY_MS])  # '.' on the first (hint) transaction
    assert _row(events, "Stu_A", "P1 | step2")[schema.LATENCY_MS] == 50_000


# 2. one parser and one set of rules whatever the size; blank Attempt At Step never read
def test_a_file_over_one_megabyte_imports_like_a_small_one(tmp_path):
    lines = TX.read_text().splitlines()
    big = tmp_path / "big.txt"
    with big.open("w") as out:
        out.write(lines[0] + "\n")
        copies = 0
        while out.tell() < 1.2 * (1 << 20):
            for line in lines[1:]:
                out.write(line.replace("Stu_", f"Stu{copies}_") + "\n")
            copies += 1
    small, _ = _events()
    large, _ = _events(big)
    assert len(large) == copies * len(small)
    again = large[large[schema.USER_ID].str.startswith("Stu0_")].copy()
    again[schema.USER_ID] = again[schema.USER_ID].str.replace("Stu0_", "Stu_")
    columns = [schema.USER_ID, schema.ITEM_ID, schema.CORRECT, schema.HELP_REQUESTED]
    pd.testing.assert_frame_equal(
        again[columns].reset_index(drop=True), small[columns].reset_index(drop=True)
    )


# 3. repeated KC (model) columns keep every KC
def test_repeated_kc_columns_keep_every_kc():
    events, raw = _events()
    assert list(_row(events, "Stu_A", "P1 | step1")[schema.SKILL_IDS]) == ["intercept", "slope"]
    assert any("2 repeated KC columns, all kept" in note for note in raw.report.notes)


def test_a_step_export_and_a_transaction_export_give_the_same_topic(tmp_path):
    step = tmp_path / "steps.txt"
    step.write_text(
        "Row\tAnon Student Id\tProblem Name\tProblem View\tStep Name\tStep Start Time\t"
        "First Transaction Time\tFirst Attempt\tHints\tKC (Default)\n"
        "1\tStu_A\tP1\t1\tstep1\t2020-03-01 23:29:50\t2020-03-01 23:30:00\thint\t1\t"
        "slope~~intercept\n"
    )
    steps, _ = _events(step)
    tx, _ = _events()
    assert (
        _row(steps, "Stu_A", "P1 | step1")[schema.TOPIC]
        == _row(tx, "Stu_A", "P1 | step1")[schema.TOPIC]
        == "intercept"
    )


# 4. choosing the KC model, the item granularity, untagged items
def test_the_default_kc_model_is_preferred_and_others_are_named():
    events, raw = _events()
    assert set(events[schema.TOPIC]) == {"intercept", "slope"}
    assert any("other models: Area (choose with --skill)" in n for n in raw.report.notes)


def test_skill_chooses_the_kc_model():
    events, _ = _events(skill="Area")
    assert set(events[schema.TOPIC]) == {"Geometry"}


def test_an_unknown_kc_model_is_one_line_naming_the_models():
    with pytest.raises(
        SkbanditError,
        match=r"no KC model 'Skills' \(--skill\); its KC models "
        r"are: Area, Default; pass one of them",
    ):
        _events(skill="Skills")


def test_item_problem_makes_a_problem_view_one_attempt():
    events, raw = _events(item="problem")
    p1 = _row(events, "Stu_A", "P1")
    assert p1[schema.CORRECT] == 0  # step1 began with a hint
    assert p1[schema.HELP_REQUESTED] == 1.0
    assert list(p1[schema.SKILL_IDS]) == ["intercept", "slope"]
    assert _row(events, "Stu_B", "P2")[schema.CORRECT] == 0
    assert raw.report.steps["steps merged into their problem view (--item problem)"] == 2


def test_item_is_refused_for_formats_without_a_choice():
    with pytest.raises(SkbanditError, match="--item applies to datashop exports only"):
        importers.load("ednet-kt1", [QUIRKS], ImportOptions(item="problem"))


def test_untagged_steps_are_dropped_unless_kept():
    events, _ = _events()
    assert "P1 | done" not in set(events[schema.ITEM_ID])
    kept, raw = _events(keep_untagged=True)
    assert _row(kept, "Stu_A", "P1 | done")[schema.TOPIC] == importers.UNTAGGED
    assert raw.report.steps["attempts without a skill kept under the topic 'untagged'"] == 1


# 5. units and time zones
def test_millisecond_durations_are_detected_and_said():
    events, raw = _events(QUIRKS / "tx_milliseconds.txt")
    assert sorted(events[schema.LATENCY_MS]) == [5887.0, 28004.0, 28333.0, 39846.0]
    assert (events[schema.LATENCY_MS] < LATENCY_CAP_MS).all()
    assert any("'Duration (sec)' read as milliseconds" in n for n in raw.report.notes)


def test_second_durations_are_not_rescaled():
    _, raw = _events()
    assert not any("milliseconds" in n for n in raw.report.notes)


def test_time_zone_column_is_read_not_assumed_utc():
    events, _ = _events()
    sunday_night = _row(events, "Stu_A", "P1 | step1")[schema.TIMESTAMP]
    assert sunday_night == pd.Timestamp("2020-03-02 04:30:00", tz="UTC")  # EST is UTC-5
    assert sunday_night.isocalendar().week == 10  # the local Sunday is in ISO week 9
    assert _row(events, "Stu_B", "P2 | step1")[schema.TIMESTAMP] == pd.Timestamp(
        "2020-03-02 10:01:00", tz="UTC"
    )


def test_an_unknown_time_zone_is_one_line(tmp_path):
    bad = tmp_path / "tz.txt"
    bad.write_text(TX.read_text().replace("US/Eastern", "Mars/Olympus"))
    with pytest.raises(
        SkbanditError,
        match=r"tz.txt: column 'Time Zone' has 'Mars/Olympus' "
        r"\(4 rows\), not a known time zone",
    ):
        _events(bad)


# 6. help is not lost with a blank Problem View
def test_help_is_kept_when_problem_view_is_blank():
    events, _ = _events()
    blank_view = _row(events, "Stu_B", "P1 | step1")
    assert blank_view[schema.CORRECT] == 0
    assert blank_view[schema.HELP_REQUESTED] == 1.0
    assert events[schema.HELP_REQUESTED].notna().all()


# the other formats' topic choices
def test_other_formats_choose_their_topic_source():
    fixtures = QUIRKS.parent
    part = importers.load("ednet-kt1", [fixtures / "ednet-kt1"], ImportOptions(skill="part"))
    assert (
        part.events[schema.SKILL_IDS]
        .map(tuple)
        .isin(
            [
                ("part 3",),
                ("part 5",),
                ("part 1",),
                ("part 2",),
                ("part 4",),
                ("part 6",),
                ("part 7",),
                (),
            ]
        )
        .all()
    )
    described = importers.load(
        "edm-cup-2023", [fixtures / "edm-cup-2023"], ImportOptions(skill="description")
    )
    assert described.events[schema.SKILL_IDS].map(len).max() == 1
    assert (
        described.events[schema.SKILL_IDS]
        .map(lambda s: s[0] if s else "")
        .str.startswith("Compute unit rates")
        .any()
    )
    ids = importers.load(
        "assistments-2009", [fixtures / "assistments-2009"], ImportOptions(skill="skill_id")
    )
    assert "1" in {s for ks in ids.events[schema.SKILL_IDS] for s in ks}


def test_an_unknown_skill_choice_is_one_line():
    with pytest.raises(SkbanditError, match=r"ednet-kt1: --skill 'kc' is not one of tags, part"):
        importers.load("ednet-kt1", [QUIRKS], ImportOptions(skill="kc"))


# a quick first look at a big export, and EdNet's many files read in parallel
def test_max_students_keeps_the_first_students_and_counts_the_rest():
    fixtures = QUIRKS.parent
    ednet = importers.load("ednet-kt1", [fixtures / "ednet-kt1"], ImportOptions(max_students=1))
    assert set(ednet.events[schema.USER_ID]) == {"u1"}  # only u1.csv was read
    a09 = importers.load(
        "assistments-2009", [fixtures / "assistments-2009"], ImportOptions(max_students=1)
    )
    assert a09.events[schema.USER_ID].nunique() == 1
    dropped = a09.report.steps["rows dropped: beyond the first 1 students (--max-students)"]
    assert dropped > 0


def test_ednet_files_read_in_parallel_equal_one_by_one(monkeypatch):
    from adapters.importers import ednet_kt1

    logs = sorted((QUIRKS.parent / "ednet-kt1" / "KT1").glob("u*.csv")) * 3
    one_by_one = ednet_kt1.read_logs(logs)
    monkeypatch.setattr(ednet_kt1, "PARALLEL_FILES", 1)
    monkeypatch.setattr(ednet_kt1, "CHUNK_FILES", 2)
    monkeypatch.setattr(ednet_kt1.os, "cpu_count", lambda: 2)
    pd.testing.assert_frame_equal(ednet_kt1.read_logs(logs), one_by_one)
