"""The command line says what it does: flags, help texts, warnings and helpful errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from serve.cli import app
from serve.recommend import parse_week

STUDENT, TOPIC = "ABC123", "7.RP.A.1"


def run(*args: str):
    return CliRunner(env={"COLUMNS": "100", "NO_COLOR": "1"}).invoke(app, list(args))


@pytest.mark.parametrize("flag", ["--use-rl", "--json"])
def test_flags_show_no_value_placeholder_in_help(flag):
    result = run("trace", "--help")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if f" {flag} " in line)
    assert "<bool>" not in line


def test_help_matches_the_defaults_and_bounds():
    text = " ".join(run("trace", "--help").output.replace("│", " ").split())
    assert (
        "greedy: top-k by UCB" not in text and "the --objective plus the uncertainty bonus" in text
    )
    assert "[x>=0.0]" not in text.split("--temperature")[1].split("--objective")[0]
    assert "at least 0.01" in text


def test_model_without_use_rl_warns_that_it_is_unused(store_env):
    result = CliRunner(env={"COLUMNS": "100"}).invoke(
        app,
        [
            "trace",
            "--student-id",
            STUDENT,
            "--topic",
            TOPIC,
            "--model",
            "skbandit-linucb/1",
            *store_env.school.options,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning: --model is only used with --use-rl" in result.stderr
    assert "Rule-based Recommendations" in result.stdout


def test_a_week_outside_the_data_names_the_data_range(store_env):
    events = store_env.school.events["timestamp"]
    result = run(
        "trace",
        "--student-id",
        STUDENT,
        "--topic",
        TOPIC,
        "--time-window",
        "2031-W01",
        *store_env.school.options,
    )
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("error: time window 2031-W01") and "\n" not in line
    assert f"runs from {events.min():%Y-%m-%d}" in line and f"to {events.max():%Y-%m-%d}" in line
    assert parse_week("2031-W01").start.year == 2030  # ISO week 1 of 2031 starts in 2030
