"""The ``skbandit`` command line (trace, compare-recs, models) on a temporary trained store."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from adapters import registry, tracking
from adapters.data.datasets import load_school
from serve import recommend
from serve.cli import app
from skbandit import schema

STUDENT, TOPIC, WEEK, OTHER_WEEK = "ABC123", "7.RP.A.1", "2024-W01", "2024-W14"
RL_HEADER = ("Rank", "Item", "Difficulty", "Expected", "UCB bonus", "Mode")
FOOTER = re.compile(
    r"^Bandit: (?P<updates>[\d,]+) updates \| Alpha: (?P<alpha>\d+\.\d+) \| Model: LinUCB \| "
    r"(?P<name>[\w-]+) v(?P<version>\d+) \((?P<alias>[\w, ]+)\)$",
    re.MULTILINE,
)


def run(*args: str):
    """Invoke the real Typer app with a pinned terminal width (tables stay on one line)."""
    return CliRunner(env={"COLUMNS": "160", "NO_COLOR": "1"}).invoke(app, list(args))


def ok(*args: str):
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def one_line_error(*args: str, exit_code: int = 1) -> str:
    """Run a failing command; check it printed exactly one ``error:`` line and no traceback."""
    result = run(*args)
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def table_rows(output: str, header: tuple[str, ...]) -> list[list[str]]:
    """Cells of the rich table whose header row is ``header`` (box-drawing borders)."""
    lines = output.splitlines()
    start = next(
        i
        for i, line in enumerate(lines)
        if [c.strip() for c in line.strip("┃").split("┃")] == list(header)
    )
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("│"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("│").split("│")])
    return rows


@pytest.fixture
def expected_rl(store_env):
    """What ``trace --use-rl`` must show, computed in-process from the same store and data."""
    tracking.configure_tracking()
    pipeline, _ = registry.load_model(registry.parse_model_ref("skbandit-linucb"))
    school = store_env.school
    events, items, _ = load_school(school.events_path, school.items_path)
    week = recommend.student_week(events, items, STUDENT, TOPIC, recommend.parse_week(WEEK))
    return pipeline, recommend.rl_recommendations(pipeline, week)  # default top 5


def test_trace_rl_table_matches_the_seed_layout_and_the_model(store_env, expected_rl):
    pipeline, recs = expected_rl
    result = ok(
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--time-window",
        WEEK,
        "--use-rl",
        *store_env.school.options,
    )
    assert "RL-Powered Recommendations (LinUCB Bandit)" in result.output
    rows = table_rows(result.output, RL_HEADER)
    assert len(rows) == 5
    for row, rec in zip(rows, recs.to_dict("records"), strict=True):
        assert row == [
            str(rec[schema.RANK]),
            rec[schema.ITEM_ID],
            f"{rec[schema.DIFFICULTY]:+.2f}",
            f"{rec[schema.EXPECTED_REWARD]:.0%} ("
            f"{rec[schema.SUCCESS_LOW] * 100:.0f}–{rec[schema.SUCCESS_HIGH]:.0%})",
            f"+{rec[schema.UCB_BONUS]:.0%}",
            "Explore" if rec[schema.IS_EXPLORATION] else "Exploit",
        ]
        # a long reason wraps at the pinned width: compare with whitespace collapsed
        assert " ".join(f"{rec[schema.RANK]}. {rec[schema.REASON]}".split()) in " ".join(
            result.output.split()
        )
    footer = FOOTER.search(result.output)
    assert footer is not None, result.output
    assert footer["updates"] == f"{pipeline.estimator.n_updates_:,}"
    assert footer["alpha"] == "1.0"
    assert (footer["name"], footer["version"], footer["alias"]) == (
        "skbandit-linucb",
        "1",
        "champion",
    )


def test_trace_json_has_the_same_recommendations_with_propensities(store_env, expected_rl):
    _, recs = expected_rl
    result = ok(
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--time-window",
        WEEK,
        "--use-rl",
        "--json",
        *store_env.school.options,
    )
    payload = json.loads(result.stdout)
    assert payload["policy"] == "linucb"
    assert payload["model"]["version"] == 1 and payload["model"]["alias"] == "champion"
    got = pd.DataFrame(payload["recommendations"])
    assert list(got[schema.ITEM_ID]) == list(recs[schema.ITEM_ID])
    assert got[schema.EXPECTED_REWARD].to_numpy() == pytest.approx(
        recs[schema.EXPECTED_REWARD].to_numpy(), abs=1e-12
    )
    assert (got[schema.PROPENSITY] == 1.0).all()  # greedy ranking is deterministic
    assert set(payload["context"]) >= set(schema.STUDENT_CONTEXT)


def test_softmax_exploration_shows_its_propensities(store_env):
    args = (
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--use-rl",
        "--json",
        "--exploration",
        "softmax",
        "--temperature",
        "0.2",
        "--objective",
        "target_band",
        "--seed",
        "3",
        *store_env.school.options,
    )
    payload = json.loads(ok(*args).stdout)
    assert payload["policy_settings"]["exploration"] == "softmax"
    assert payload["policy_settings"]["objective"] == "target_band"
    propensity = [rec[schema.PROPENSITY] for rec in payload["recommendations"]]
    assert all(0.0 < p <= 1.0 for p in propensity)
    assert min(propensity) < 1.0
    assert json.loads(ok(*args).stdout) == payload  # --seed: the same draw again
    text = ok(*[a for a in args if a != "--json"]).output
    assert "Policy: softmax exploration (temperature 0.2, seed 3)" in text
    assert "objective target_band (target 70%)" in text


def test_the_time_window_really_filters(store_env):
    events = store_env.school.events
    mine = events[(events[schema.USER_ID] == STUDENT) & (events[schema.TOPIC] == TOPIC)]
    weeks = mine[schema.TIMESTAMP].dt.strftime("%G-W%V")
    assert {WEEK, OTHER_WEEK} <= set(weeks)  # the fixture school is built for this
    shown = {}
    for week in (WEEK, OTHER_WEEK):
        payload = json.loads(
            ok(
                "trace",
                "--student-id",
                STUDENT,
                "--topic",
                TOPIC,
                "--time-window",
                week,
                "--json",
                *store_env.school.options,
            ).stdout
        )
        stamps = pd.to_datetime(
            [a[schema.TIMESTAMP] for a in payload["attempts"]], utc=True, format="ISO8601"
        )
        window = recommend.parse_week(week)
        assert ((stamps >= window.start) & (stamps < window.end)).all()
        assert len(stamps) == int((weeks == week).sum())
        shown[week] = set(stamps)
    assert not shown[WEEK] & shown[OTHER_WEEK]
    table = ok(
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--time-window",
        WEEK,
        *store_env.school.options,
    ).output
    assert f"Attempts in the window ({int((weeks == WEEK).sum())})" in table
    assert "2024-01-0" in table and "2024-04-" not in table


def test_trace_without_rl_shows_the_rule_based_list(store_env):
    result = ok(
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--time-window",
        WEEK,
        *store_env.school.options,
    )
    assert "Rule-based Recommendations" in result.output
    rows = table_rows(result.output, ("Rank", "Item", "Difficulty", "IRT expected"))
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5"]
    assert result.output.count(". Rule: closest difficulty") == 5
    assert "Bandit:" not in result.output


def test_data_from_environment_variables(store_env, monkeypatch):
    monkeypatch.setenv("SKBANDIT_EVENTS", str(store_env.school.events_path))
    monkeypatch.setenv("SKBANDIT_ITEMS", str(store_env.school.items_path))
    payload = json.loads(ok("trace", "--student-id", STUDENT, "--topic", TOPIC, "--json").stdout)
    assert payload["known_student"] is True


def test_compare_recs_overlap_and_why_lines(store_env):
    args = ("compare-recs", "--student-id", STUDENT, "--topic", TOPIC, *store_env.school.options)
    payload = json.loads(ok(*args, "--json").stdout)
    rule = [r[schema.ITEM_ID] for r in payload["rule_based"]]
    rl = [r[schema.ITEM_ID] for r in payload["linucb"]]
    assert payload["overlap"] == sorted(set(rule) & set(rl))
    assert [w["item_id"] for w in payload["rl_only"]] == [i for i in rl if i not in rule]
    text = ok(*args).output
    rows = table_rows(
        text,
        (
            "#",
            "Rule pick",
            "Diff.",
            "IRT est.",
            "LinUCB pick",
            "Diff.",
            "LinUCB est. (80% range)",
            "Mode",
        ),
    )
    assert [row[1] for row in rows] == rule and [row[4] for row in rows] == rl
    assert (
        "IRT est.: success chance from their level (ability) and the item's IRT parameters alone"
    ) in " ".join(text.split())
    assert f"Overlap: {len(payload['overlap'])} of {len(rl)} items" in text
    for why in payload["rl_only"]:
        line = next(line for line in text.splitlines() if line.strip().startswith(why["item_id"]))
        assert why["why"] in line
        assert f"expected {why['expected_reward']:.0%}" in line
        assert f"UCB bonus +{why['ucb_bonus']:.0%}" in line
        assert f"{why['success_low'] * 100:.0f}–{why['success_high']:.0%}" in line
    assert FOOTER.search(text) is not None


def test_default_objective_is_the_serving_target_band(store_env):
    """Unless told otherwise the bandit ranks by closeness to the target success band."""
    args = ("compare-recs", "--student-id", STUDENT, "--topic", TOPIC, "--time-window", WEEK,
            *store_env.school.options, "--json")  # fmt: skip
    default = json.loads(ok(*args).stdout)
    explicit = json.loads(ok(*args, "--objective", "target_band", "--target", "0.7").stdout)
    greedy_max = json.loads(ok(*args, "--objective", "max_success").stdout)
    ids = [[r[schema.ITEM_ID] for r in p["linucb"]] for p in (default, explicit, greedy_max)]
    assert ids[0] == ids[1] and ids[0] != ids[2]

    def scores(payload, score):
        return [score(r[schema.EXPECTED_REWARD], r[schema.UCB_BONUS]) for r in payload["linucb"]]

    band = scores(default, lambda expected, bonus: -abs(expected - 0.7) + bonus)
    assert band == sorted(band, reverse=True)
    ucb = scores(greedy_max, lambda expected, bonus: expected + bonus)
    assert ucb == sorted(ucb, reverse=True)
    exploited = [w["why"] for w in default["rl_only"] if "bonus" not in w["why"]]
    assert all("target" in why for why in exploited)


def test_models_lists_versions_with_aliases(store_env):
    text = ok("models").output
    rows = table_rows(
        text,
        ("Version", "Aliases", "Created", "Events", "Log-loss", "AUC"),
    )
    assert rows[0][:2] == ["1", "challenger, champion"]
    assert rows[0][3] == f"{len(store_env.school.events):,}"
    versions = json.loads(ok("models", "--json").stdout)
    assert versions[0]["aliases"] == ["challenger", "champion"]
    assert "bandit_log_loss" in versions[0]["metrics"]


def test_model_by_version_number(store_env):
    text = ok(
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--use-rl",
        "--model",
        "skbandit-linucb/1",
        *store_env.school.options,
    ).output
    assert FOOTER.search(text)["alias"] == "challenger, champion"


def test_unknown_student_gets_the_cold_start_context(store_env):
    args = ("trace", "--student-id", "NOBODY", "--topic", TOPIC, "--use-rl")
    result = ok(*args, *store_env.school.options)
    assert (
        "note: no attempts by NOBODY yet, so the context is the cold-start default" in result.output
    )
    payload = json.loads(ok(*args, "--json", *store_env.school.options).stdout)
    assert payload["known_student"] is False and payload["attempts"] == []
    assert payload["context"][schema.MASTERY] == 0.5
    assert len(payload["recommendations"]) == 5


def test_unknown_topic_names_the_closest_topics(store_env):
    line = one_line_error(
        "trace", "--student-id", STUDENT, "--topic", "7.RP.A.9", *store_env.school.options
    )
    assert "unknown topic '7.RP.A.9'" in line and "7.RP.A.1" in line


def test_no_eligible_items_is_a_clear_message(store_env, tmp_path):
    items = store_env.school.items.copy()
    items.loc[items[schema.TOPIC] == TOPIC, schema.DRIFT_FLAG] = True
    items_path = tmp_path / "items.parquet"
    items.to_parquet(items_path, index=False)
    line = one_line_error(
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--events",
        str(store_env.school.events_path),
        "--items",
        str(items_path),
    )
    assert f"no eligible items for topic '{TOPIC}'" in line


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("skbandit-linucb@nope", "has no alias 'nope'"),
        ("skbandit-linucb/7", "has no version 7"),
        ("other-model@champion", "no registered model 'other-model'"),
        ("skbandit-linucb/latest", "cannot read model reference"),
    ],
)
def test_missing_model_or_alias_says_to_train(store_env, model, expected):
    line = one_line_error(
        "compare-recs",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--model",
        model,
        *store_env.school.options,
    )
    assert expected in line
    if "reference" not in expected:
        assert "python -m train.warmstart" in line


def test_empty_store_says_to_train(store_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}")
    line = one_line_error(
        "trace", "--student-id", STUDENT, "--topic", TOPIC, "--use-rl", *store_env.school.options
    )
    assert "python -m train.warmstart" in line
    assert "python -m train.warmstart" in one_line_error("models")


@pytest.mark.parametrize("week", ["2024-W99", "last week", "2024-01-01"])
def test_bad_iso_week(store_env, week):
    line = one_line_error(
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--time-window",
        week,
        *store_env.school.options,
    )
    assert "expected an ISO week such as 2024-W01" in line


def test_events_without_items(store_env):
    line = one_line_error(
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--events",
        str(store_env.school.events_path),
    )
    assert "give --events and --items together" in line


def test_missing_file(store_env, tmp_path):
    line = one_line_error(
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--events",
        str(tmp_path / "nope.parquet"),
        "--items",
        str(store_env.school.items_path),
    )
    assert "no such file" in line


def test_softmax_needs_a_positive_temperature(store_env):
    line = one_line_error(
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--use-rl",
        "--exploration",
        "softmax",
        "--temperature",
        "0",
        *store_env.school.options,
    )
    assert "--temperature must be at least 0.01" in line


def test_bad_choice_is_a_usage_error_not_a_traceback(store_env):
    result = run("trace", "--student-id", STUDENT, "--topic", TOPIC, "--exploration", "bogus")
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "bogus" in result.output


@pytest.mark.parametrize("args", [["--help"], ["trace", "--help"], ["compare-recs", "--help"]])
def test_help_does_not_import_mlflow(args, help_in_fresh_interpreter):
    printed, imported = help_in_fresh_interpreter(
        "serve.cli", args, ("mlflow", "sklearn", "pandas")
    )
    assert "Usage:" in printed
    assert imported == [], printed


def test_python_m_serve_help_lists_the_commands():
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for command in ("trace", "compare-recs", "models"):
        assert command in out.stdout
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()}
    assert not any(name.split(".")[0] == "mlflow" for name in imported)
