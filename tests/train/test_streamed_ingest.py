"""A streamed ingest (parts of whole students, bounded memory) keeps the in-memory rules.

Every fixture format that streams is ingested both ways, with the parts forced small so
that the fixtures span several parts and ASSISTments rows several CSV blocks; the events,
the counts of cleaning.json and the items must agree. The partitioned output is then read
back by the loaders warm-start uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.data.datasets import load_school_reports, read_events
from adapters.data.ingest_output import CLEANING_FILE, EVENTS_DIR, part_files
from adapters.importers import streaming
from skbandit import schema
from skbandit.exceptions import SkbanditError
from train.ingest.job import IngestOptions, run_ingest

FIXTURES = Path(__file__).parents[1] / "fixtures"
STREAMED = ("ednet-kt1", "assistments-2009", "assistments-2012")
KEY = [schema.USER_ID, schema.TIMESTAMP, schema.ITEM_ID]


@pytest.fixture
def small_parts(monkeypatch):
    """One EdNet student file a part; ASSISTments split over many buckets and blocks."""
    monkeypatch.setattr(streaming, "EDNET_FILES_PER_PART", 1)
    monkeypatch.setattr(streaming, "BUCKET_BYTES", 200)
    monkeypatch.setattr(streaming, "BLOCK_BYTES", 1024)


def _both(tmp_path, fmt, raw_files, workers=1, **choices):
    outs = {}
    for stream in (False, True):
        out = tmp_path / f"{fmt}-{'streamed' if stream else 'memory'}"
        options = IngestOptions(
            format=fmt,
            raw_files=tuple(raw_files),
            out=out,
            stream=stream,
            workers=workers,
            **choices,
        )
        run_ingest(options)
        outs[stream] = out
    return outs[False], outs[True]


def _sorted(events: pd.DataFrame) -> pd.DataFrame:
    return events.sort_values(KEY, kind="stable").reset_index(drop=True)


def _counts(out: Path) -> dict:
    doc = json.loads((out / CLEANING_FILE).read_text())
    doc["output"] = {k: v for k, v in doc["output"].items() if k not in ("folder", "events_path")}
    doc.pop("streamed", None)
    return doc


@pytest.mark.parametrize("fmt", STREAMED)
@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_ingest_equals_the_in_memory_one(tmp_path, small_parts, fmt, workers):
    memory, streamed = _both(tmp_path, fmt, [FIXTURES / fmt], workers=workers)
    parts = part_files(streamed / EVENTS_DIR)
    assert len(parts) >= 2  # the fixture did span several parts
    whole = pd.read_parquet(memory / "events.parquet")
    pd.testing.assert_frame_equal(
        _sorted(pd.read_parquet(streamed / EVENTS_DIR)), _sorted(whole), check_dtype=False
    )
    students = [set(pd.read_parquet(p)[schema.USER_ID]) for p in parts]
    assert sum(map(len, students)) == len(set().union(*students))  # a student in one part
    a, b = _counts(memory), _counts(streamed)
    assert a.pop("sources") == b.pop("sources")
    assert a == b
    items_a = pd.read_parquet(memory / "items.parquet").set_index(schema.ITEM_ID)
    items_b = pd.read_parquet(streamed / "items.parquet").set_index(schema.ITEM_ID)
    assert list(items_a.index) == list(items_b.index)
    assert items_a[schema.TOPIC].equals(items_b[schema.TOPIC])
    np.testing.assert_allclose(items_b[schema.DIFFICULTY], items_a[schema.DIFFICULTY], atol=1e-4)


@pytest.mark.parametrize(
    "choices", [{"max_students": 2}, {"sample_students": 0.5, "seed": 3}, {"keep_untagged": True}]
)
def test_student_selection_is_the_same_streamed(tmp_path, small_parts, choices):
    memory, streamed = _both(
        tmp_path, "assistments-2009", [FIXTURES / "assistments-2009"], **choices
    )
    whole = pd.read_parquet(memory / "events.parquet")
    assert 0 < len(whole)
    pd.testing.assert_frame_equal(
        _sorted(pd.read_parquet(streamed / EVENTS_DIR)), _sorted(whole), check_dtype=False
    )
    a, b = _counts(memory), _counts(streamed)
    assert a["import"] == b["import"] and a["output"] == b["output"]


def test_sample_students_keeps_whole_students_and_the_same_on_a_rerun(tmp_path):
    source = [FIXTURES / "assistments-2009"]
    every = run_ingest(IngestOptions("assistments-2009", tuple(source), tmp_path / "all"))
    runs = [
        run_ingest(
            IngestOptions(
                "assistments-2009", tuple(source), tmp_path / f"s{i}", sample_students=0.5, seed=1
            )
        )
        for i in range(2)
    ]
    kept = [set(r.events[schema.USER_ID]) for r in runs]
    assert kept[0] == kept[1] and kept[0] < set(every.events[schema.USER_ID])
    for user in kept[0]:  # whole students: every attempt of a kept student is there
        assert (runs[0].events[schema.USER_ID] == user).sum() == (
            every.events[schema.USER_ID] == user
        ).sum()
    with pytest.raises(SkbanditError, match="not in \\(0, 1\\]"):
        run_ingest(
            IngestOptions("assistments-2009", tuple(source), tmp_path / "x", sample_students=2.0)
        )


def test_the_clock_starts_at_the_first_kept_attempt_when_the_rules_drop_the_first_row(
    tmp_path, small_parts
):
    """order_id 5's first row (of two skills) has partial credit: the collapsed attempt is
    dropped, so the clock must start at 8, as in memory, though 5 looked fine row by row."""
    header = "order_id,user_id,problem_id,original,correct,skill_id,skill_name,ms_first_response"
    rows = [
        "5,u1,p1,1,0.5,1,add,1000",
        "5,u1,p1,1,1,2,sub,1000",
        "8,u2,p2,1,1,1,add,2000",
        "9,u1,p3,1,0,2,sub,3000",
        "12,u3,p1,1,1,1,add,1500",
    ]
    csv = tmp_path / "skill_builder.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")
    memory, streamed = _both(tmp_path, "assistments-2009", [csv])
    whole = pd.read_parquet(memory / "events.parquet")
    assert whole[schema.TIMESTAMP].min() == pd.Timestamp("2009-09-01", tz="UTC")
    pd.testing.assert_frame_equal(
        _sorted(pd.read_parquet(streamed / EVENTS_DIR)), _sorted(whole), check_dtype=False
    )


def test_loaders_read_the_parts_as_the_single_file(tmp_path, small_parts):
    memory, streamed = _both(tmp_path, "ednet-kt1", [FIXTURES / "ednet-kt1"])
    from_parts, report = read_events(streamed / EVENTS_DIR)
    from_file, _ = read_events(memory / "events.parquet")
    pd.testing.assert_frame_equal(_sorted(from_parts), _sorted(from_file))
    assert report.n_rows_in == len(from_file) and report.n_dropped == 0
    loaded = load_school_reports(streamed / EVENTS_DIR, streamed / "items.parquet")
    assert len(loaded.events) == len(from_file) and loaded.calibration is not None
    with pytest.raises(SkbanditError, match="holds no parquet parts"):
        read_events(tmp_path)


def test_in_memory_only_formats_refuse_stream(tmp_path):
    with pytest.raises(SkbanditError, match="--stream applies to"):
        run_ingest(IngestOptions("datashop", (FIXTURES / "datashop",), tmp_path / "o", stream=True))
