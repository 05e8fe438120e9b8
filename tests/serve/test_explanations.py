"""What people read: reasons, the feature glossary, and golden CLI outputs at 80 columns.

The golden files in ``tests/golden/`` are the exact output of ``skbandit trace`` and
``compare-recs`` on the small fixed school of ``tests/conftest.py`` (``SMALL_SCHOOL``,
trained by the ``trained_store`` fixture) at ``COLUMNS=80``, so any change of wording or
layout shows up in review. After an intended change, regenerate them with::

    SKBANDIT_UPDATE_GOLDEN=1 pytest tests/serve/test_explanations.py -k golden

and read the diff of ``tests/golden/*.txt`` before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from serve.cli import app
from skbandit.explanations import (
    FEATURE_GLOSSARY,
    feature_label,
    feature_meaning,
    level_phrase,
    ranking_reasons,
)
from skbandit.features import DEFAULT_FEATURES, SEED_FEATURES
from skbandit.linucb import STATE_VERSION, LinUCB
from skbandit.model import TrainedModel
from skbandit.policy import rank_linucb, score_candidates
from skbandit.ranking_settings import RankingSettings

GOLDEN = Path(__file__).parents[1] / "golden"
UPDATE = os.environ.get("SKBANDIT_UPDATE_GOLDEN") == "1"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"
STUDENT, TOPIC, WEEK = "ABC123", "7.RP.A.1", "2024-W01"
WIDTH = 80


def _candidates(difficulty, mastery=0.5, attempts=0.0):
    n = len(difficulty)
    return pd.DataFrame(
        {
            "user_id": "u",
            "item_id": [f"i{j}" for j in range(n)],
            "topic": "t",
            "mastery": mastery,
            "recent_accuracy": 0.5,
            "recent_speed": 0.5,
            "help_tendency": 0.1,
            "skill_gap": 0.3,
            "difficulty": np.asarray(difficulty, float),
            "discrimination": 1.0,
            "guessing": 0.0,
            "item_attempts": attempts,
            "item_accuracy": 0.5,
        }
    )


def _seed_model(explore_weight):
    """expected = mastery - 0.2 * difficulty; std = sqrt(w) * |mastery - difficulty|."""
    coef = np.zeros(len(SEED_FEATURES))
    coef[SEED_FEATURES.index("mastery")] = 1.0
    coef[SEED_FEATURES.index("difficulty")] = -0.2
    variance = np.full(len(coef), 1e-12)
    variance[SEED_FEATURES.index("abs_mastery_minus_difficulty")] = explore_weight
    A = np.diag(1.0 / variance)
    model = LinUCB().set_state(
        {
            "A": A,
            "b": A @ coef,
            "A_inv": np.linalg.inv(A),
            "coef": coef,
            "alpha": 1.0,
            "l2": 1.0,
            "forgetting": 1.0,
            "n_updates": 10,
            "n_features_in": len(coef),
            "state_version": STATE_VERSION,
        }
    )
    return TrainedModel.from_state({"feature_set": "seed", "estimator": model.get_state()})


def _reasons(pipe, cands, settings, **kwargs):
    recs = rank_linucb(pipe, cands, settings)
    base = score_candidates(pipe, cands, settings).base
    return recs, ranking_reasons(pipe, cands, recs, base, **kwargs)


def test_explore_says_where_the_item_would_rank_without_its_shown_bonus():
    # expected 0.7, 0.6, 0.5, 0 (clipped); bonus 0.4 * |0.5 - b| = 0.6, 0.4, 0.2, 1.4
    pipe, cands = _seed_model(0.16), _candidates([-1.0, -0.5, 0.0, 4.0], attempts=50.0)
    recs, reasons = _reasons(pipe, cands, RankingSettings(top_k=2))
    assert recs["item_id"].tolist() == ["i3", "i0"] and recs["is_exploration"].tolist() == [
        True,
        False,
    ]
    assert reasons[0].startswith("Explore: 0% expected, would rank 4 without its +140% UCB bonus")
    assert reasons[1].startswith("70% expected success, #1 of the candidates")
    assert "much harder than their level" in reasons[0]
    assert "a bit easier than their level" in reasons[1]  # offset -1 logit
    assert all("tried 50 times" in r for r in reasons)


def test_target_band_reasons_state_the_distance_to_the_target_and_differ_per_item():
    pipe, cands = _seed_model(1e-12), _candidates([-2.0, -1.0, -0.2, 1.0], attempts=5.0)
    settings = RankingSettings(top_k=4, objective="target_band", target=0.7)
    recs, reasons = _reasons(pipe, cands, settings, target=0.7)
    # expected 0.9, 0.7, 0.54, 0.3: ranked by distance to 70 %
    assert recs["item_id"].tolist() == ["i1", "i2", "i0", "i3"]
    assert reasons[0].startswith("70% expected, on the 70% target")
    assert reasons[1].startswith("54% expected, 16 pts below the 70% target")
    assert reasons[2].startswith("90% expected, 20 pts above the 70% target")
    assert len(set(reasons)) == len(reasons)
    assert all("tried only 5 times" in r for r in reasons)
    # the only item-dependent contribution is difficulty's -0.2 * b, against its mean 0.11
    assert reasons[2].endswith("vs others: difficulty +29 pts")  # -0.2 * -2 - 0.11


def test_a_cold_start_student_never_gets_a_confidence_claim():
    pipe, cands = _seed_model(1e-12), _candidates([-1.0, 0.0, 1.0])
    _, reasons = _reasons(pipe, cands, RankingSettings(top_k=3), cold_start=True)
    assert all(r.startswith("Generic (cold start): ") for r in reasons)
    assert not any("confidence" in r.lower() for r in reasons)
    assert all("new item, never tried" in r for r in reasons)


@pytest.mark.parametrize(
    ("offset", "words"), [(0.0, "at their level"), (1.0, "a bit harder"), (-3.0, "much easier")]
)
def test_level_phrase_follows_the_offset(offset, words):
    assert level_phrase(offset).startswith(words)


def test_every_feature_has_a_glossary_line_in_the_docs():
    text = DOCS.read_text()
    for name in {*DEFAULT_FEATURES, *SEED_FEATURES}:
        line = next((line for line in text.splitlines() if line.startswith(f"- `{name}` ")), None)
        assert line is not None, f"docs/features.md has no line for {name}"
        assert feature_meaning(name) in line and feature_label(name) in line
    assert set(FEATURE_GLOSSARY) <= {*DEFAULT_FEATURES, *SEED_FEATURES}


# --- golden outputs of the CLI on the small fixed school -----------------------------------


def _cli(*args: str) -> str:
    result = CliRunner(env={"COLUMNS": str(WIDTH), "NO_COLOR": "1"}).invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with SKBANDIT_UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"{name}: CLI output changed; if intended, regenerate with SKBANDIT_UPDATE_GOLDEN=1 "
        "and review the diff"
    )


GOLDEN_COMMANDS = {
    "trace_rule": ("trace", "--student-id", STUDENT, "--topic", TOPIC, "--time-window", WEEK),
    "trace_rl": (
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--time-window",
        WEEK,
        "--use-rl",
    ),
    "trace_cold_start": ("trace", "--student-id", "abc123", "--topic", TOPIC, "--use-rl"),
    "compare_recs": (
        "compare-recs",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--time-window",
        WEEK,
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_COMMANDS))
def test_golden_cli_output_at_80_columns(store_env, name):
    text = _cli(*GOLDEN_COMMANDS[name], *store_env.school.options)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    _check_golden(name, text)


def test_rl_reasons_are_distinct_and_cold_start_suggests_known_ids(store_env):
    options = store_env.school.options
    payload = json.loads(_cli(*GOLDEN_COMMANDS["trace_rl"], *options, "--json"))
    why = [row["reason"] for row in payload["recommendations"]]
    assert len(why) == 5 and len(set(why)) == 5
    for row in payload["recommendations"]:  # the words repeat the shown numbers
        assert f"{row['expected_reward']:.0%} expected" in row["reason"]
    cold = _cli(*GOLDEN_COMMANDS["trace_cold_start"], *options)
    assert "did you mean: ABC123" in cold and "confidence" not in cold.lower()


def test_models_fits_80_columns_and_wide_shows_everything(store_env):
    narrow = _cli("models")
    assert max(len(line) for line in narrow.splitlines()) <= WIDTH
    assert "…" not in narrow and "champion" in narrow
    wide = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"}).invoke(app, ["models", "--wide"])
    assert wide.exit_code == 0, wide.output
    for column in ("Updates", "Feature set", "Brier", "Run"):
        assert column in wide.output


# --- the 3PL guessing parameter (issue 12) ------------------------------------------------


def test_irt_expected_uses_the_items_guessing_the_issues_79_percent(tmp_path):
    """Issue 12: an item with b = 0.44 and c = 0.39 showed "IRT expected 66%" (the 2PL) where
    the 3PL says about 79%. Mastery 6/8 = 0.75 puts the student where the 2PL says 66%."""
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", *(f"p{k}" for k in range(6))],
            "topic": TOPIC,
            "difficulty": [0.44, 0.44, *[-1.0] * 6],
            "guessing": [0.39, None, *[None] * 6],
        }
    )
    events = pd.DataFrame(
        {
            "user_id": "S1",
            "item_id": [f"p{k}" for k in range(6)],
            "topic": TOPIC,
            "correct": [1, 1, 0, 1, 1, 1],
            "timestamp": pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC"),
        }
    )
    items.to_csv(tmp_path / "items.csv", index=False)
    events.to_csv(tmp_path / "events.csv", index=False)
    text = _cli(
        "trace",
        "--student-id",
        "S1",
        "--topic",
        TOPIC,
        "--events",
        str(tmp_path / "events.csv"),
        "--items",
        str(tmp_path / "items.csv"),
    )
    rows = {
        line.split("│")[2].strip(): line.split("│")[4].strip()
        for line in text.splitlines()
        if line.startswith("│ ") and "+0.44" in line
    }
    # the ability is difficulty-adjusted (5 of 6 on items at -1); the 3PL adds the floor
    from skbandit.context import student_context
    from skbandit.irt import p_correct_3pl

    ability = student_context(events, "S1", TOPIC, items=items)["ability"]
    assert rows == {
        "a": f"{p_correct_3pl(ability, 0.44, 1.0, 0.39):.0%}",
        "b": f"{p_correct_3pl(ability, 0.44):.0%}",
    }
    assert rows["a"] > rows["b"]  # with the guessing floor, and the 2PL twin


def test_the_glossary_says_p_irt_is_the_3pl():
    assert feature_meaning("p_irt").startswith(
        "3PL probability of success, guessing + (1 - guessing) * sigmoid(discrimination * gap)"
    )
    assert "(1 - guessing) * s * (1 - s)" in feature_meaning("info")
