"""Calibrated items travel with the version (issue 21, item 5): stored at warm-start, used by
``trace``/``compare-recs`` for items the given file lacks parameters for, one line when the
given file disagrees, and an items table of only ``item_id, topic`` accepted."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from skbandit import schema
from skbandit.cleaning import validate_items
from skbandit.context import missing_difficulty_note
from skbandit.version_items import (
    complete_items,
    disagreement_note,
    items_for_model,
    trained_item_parameters,
)


def _stored():
    return pd.DataFrame(
        {
            schema.ITEM_ID: ["a", "b", "c", "d"],
            schema.TOPIC: ["t", "t", "u", "u"],
            schema.DIFFICULTY: [1.2, -0.4, 0.3, 2.0],
            schema.DISCRIMINATION: [0.8, 1.0, 1.5, 1.0],
            schema.GUESSING: [0.0, 0.0, 0.2, 0.0],
        }
    )


def test_items_without_a_difficulty_column_are_completed_from_the_version():
    given = pd.DataFrame({schema.ITEM_ID: ["a", "b", "c", "z"], schema.TOPIC: list("ttuu")})
    items, seen = complete_items(given, _stored())
    assert items[schema.DIFFICULTY].tolist()[:3] == [1.2, -0.4, 0.3]
    assert np.isnan(items[schema.DIFFICULTY].iloc[3])  # unknown to the version too
    assert items[schema.DISCRIMINATION].tolist()[:3] == [0.8, 1.0, 1.5]
    assert items[schema.GUESSING].tolist()[:3] == [0.0, 0.0, 0.2]
    assert (seen.n_filled, seen.n_differ, seen.n_missing) == (3, 0, 1)
    assert disagreement_note(seen, "m v1") is None


def test_disagreeing_items_are_counted_and_said_in_one_line():
    given = _stored().drop(columns=schema.GUESSING)
    given.loc[0, schema.DIFFICULTY] = 0.0  # published, not calibrated
    given.loc[1, schema.DIFFICULTY] = np.nan  # lacks it: the version's
    given.loc[2, schema.DISCRIMINATION] = 2.5
    given.loc[3, schema.DIFFICULTY] = 2.0 + 1e-9  # a file round trip: agrees
    items, seen = complete_items(given, _stored())
    assert items[schema.DIFFICULTY].tolist()[:3] == [0.0, -0.4, 0.3]  # the file's are used
    assert (seen.n_items, seen.n_filled, seen.n_differ) == (4, 1, 2)
    assert dict(seen.differ_by) == {schema.DIFFICULTY: 1, schema.DISCRIMINATION: 1}
    line = disagreement_note(seen, "skbandit-x v3")
    assert line.startswith("note: 2 of 4 items' parameters in the items file differ")
    assert "skbandit-x v3" in line and "difficulty 1, discrimination 1" in line
    assert "\n" not in line


def test_items_for_model_says_once_which_items_still_lack_a_difficulty():
    given = pd.DataFrame({schema.ITEM_ID: ["a", "z", "y"], schema.TOPIC: list("ttu")})
    _, lines = items_for_model(given, None, "m v1")  # no stored items, no calibration
    assert lines == [missing_difficulty_note(given)]
    assert lines[0].startswith("3 of 3 items have no difficulty")
    _, lines = items_for_model(given, _stored(), "m v1")
    assert len(lines) == 1 and lines[0].startswith("2 of 3 items have no difficulty")
    assert items_for_model(_stored(), _stored(), "m v1")[1] == []


def test_an_items_table_of_only_id_and_topic_is_accepted_and_blank_difficulty_kept():
    items, _ = validate_items(
        pd.DataFrame({schema.ITEM_ID: ["a", "b"], schema.TOPIC: ["t", "u"]}), "items.csv"
    )
    assert items[schema.DIFFICULTY].isna().all()
    stored = trained_item_parameters(items)  # as a version trained on it stores them
    assert stored[schema.DIFFICULTY].tolist() == [0.0, 0.0]  # no topic mean: 0
    assert stored[schema.DISCRIMINATION].tolist() == [1.0, 1.0]


# --- through the commands -----------------------------------------------------------------


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, small_school):
    """``train.warmstart --calibrate rasch`` on an items file of only ``item_id, topic``."""
    from train.warmstart.cli import app

    folder = tmp_path_factory.mktemp("calibrated")
    bare = folder / "items.csv"
    small_school.items[[schema.ITEM_ID, schema.TOPIC]].to_csv(bare, index=False)
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "COLUMNS": "200",
    }
    args = ["--events", str(small_school.events_path), "--items", str(bare)]
    result = CliRunner(env=env).invoke(
        app, [*args, "--calibrate", "rasch", "--model-name", "calibrated"]
    )
    assert result.exit_code == 0, result.output
    assert "items have no difficulty" not in result.output  # calibration gave them one
    return env, args, bare


def _trace(env, small_school, items_path, *extra):
    from serve.cli import app

    row = small_school.events.iloc[0]
    return CliRunner(env=env).invoke(
        app,
        [
            "trace",
            "--student-id",
            row[schema.USER_ID],
            "--topic",
            row[schema.TOPIC],
            "--events",
            str(small_school.events_path),
            "--items",
            str(items_path),
            "--json",
            *extra,
        ],
    )


def test_warmstart_stores_the_calibrated_items_and_trace_uses_them(calibrated, small_school):
    from adapters import registry, tracking

    env, _, bare = calibrated
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
        tracking.configure_tracking()
        model, _ = registry.load_model(registry.parse_model_ref("calibrated@champion"))
    stored = model.item_parameters.set_index(schema.ITEM_ID)[schema.DIFFICULTY]
    assert len(stored) == len(small_school.items) and stored.abs().max() > 0.1

    result = _trace(env, small_school, bare, "--use-rl", "--model", "calibrated@champion")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)["recommendations"]
    assert shown and all(r["difficulty"] == pytest.approx(stored[r["item_id"]]) for r in shown)
    assert any(abs(r["difficulty"]) > 0.01 for r in shown)  # no longer +0.00 everywhere
    assert "have no difficulty" not in result.stderr and "differ" not in result.stderr


def test_trace_says_in_one_line_when_the_items_file_disagrees(calibrated, small_school):
    env, _, _ = calibrated
    result = _trace(
        env, small_school, small_school.items_path, "--use-rl", "--model", "calibrated@champion"
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "differ from the ones" in line]
    assert len(lines) == 1, result.stderr
    n = len(small_school.items)
    assert f"of {n} items' parameters in the items file differ" in lines[0]
    assert "calibrated v1" in lines[0]


def test_trace_without_a_model_says_once_that_items_lack_difficulty(calibrated, small_school):
    env, _, bare = calibrated
    result = _trace(env, small_school, bare)  # the rule: no version, no calibration
    assert result.exit_code == 0, result.output
    n = len(small_school.items)
    assert result.stderr.count(f"{n} of {n} items have no difficulty") == 1, result.stderr
