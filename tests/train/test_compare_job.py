"""``python -m train.evaluate compare``: the champion/challenger gate, driven through Typer.

A small simulated school is written to a temporary folder once; ``train.warmstart`` registers
version 1 (trained on the first 150 events only, with a huge exploration width
``alpha = 20``; the first version, so ``champion`` and ``challenger``) and version 2 (all
events, alias ``trained-all``) in a temporary MLflow store. Every test works on its own copy
of that store's database, so aliases moved by one test never leak into another.
"""

import json
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
import typer
from mlflow import MlflowClient
from typer.testing import CliRunner

from adapters import tracking as tracking_store
from adapters.data.datasets import write_school
from skbandit.ope.gate import DEFAULT_MIN_ESS, PairedDifference, promotion_gate
from skbandit.policy import SERVING_OBJECTIVE
from skbandit.sim.generate import SchoolConfig, simulate_school
from train.evaluate.cli import app
from train.evaluate.compare.job import GATE_TAGS, PLOT_PATH
from train.warmstart.cli import app as warmstart_app

NAME = "skbandit-linucb"
SCHOOL = SchoolConfig(
    n_students=120, seed=4, start_date="2023-09-05", end_date="2023-10-20", attempts_per_student=40
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """School files and a tracking database with versions 1 and 2 (champion -> 1)."""
    root = tmp_path_factory.mktemp("compare")
    school = simulate_school(SCHOOL)
    write_school(school.events, school.items, root / "school")
    data = [
        "--events",
        str(root / "school" / "events.parquet"),
        "--items",
        str(root / "school" / "items.parquet"),
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        for extra in (["--max-events", "150", "--alpha", "20"], ["--alias", "trained-all"]):
            result = CliRunner().invoke(warmstart_app, [*data, *extra])
            assert result.exit_code == 0, result.output
    return root, data


@pytest.fixture
def tracking(store, tmp_path, monkeypatch):
    """This test's own copy of the database (the artifacts stay shared and read-only)."""
    root, data = store
    shutil.copy(root / "mlflow.db", tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("COLUMNS", "160")
    tracking_store.configure_tracking()
    return data


def _aliases():
    aliases = MlflowClient().get_registered_model(NAME).aliases
    return {alias: str(version) for alias, version in aliases.items()}


def _gate_tags(version):
    tags = MlflowClient().get_model_version(NAME, str(version)).tags
    return {key: value for key, value in tags.items() if key.startswith("gate.")}


def _compare(*args):
    return CliRunner().invoke(app, ["compare", *args, "--n-bootstrap", "200"])


def test_compare_without_promote_logs_a_run_and_moves_no_alias(tracking):
    before = _aliases()
    assert before == {"champion": "1", "challenger": "1", "trained-all": "2"}
    result = _compare(
        "--candidate", f"models:/{NAME}/2", "--baseline", f"models:/{NAME}@champion", *tracking
    )
    assert result.exit_code == 0, result.output
    assert "Off-policy comparison" in result.output and "candidate" in result.output
    assert "not promoted (no --promote, so no alias moved)" in result.output
    assert _aliases() == before and _gate_tags(2) == {}
    experiment = mlflow.get_experiment_by_name(tracking_store.EVALUATION_EXPERIMENT)
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["candidate"] == f"{NAME}/2"
    assert run.data.params["baseline"] == f"{NAME}/1"
    assert run.data.params["objective"] == SERVING_OBJECTIVE  # the default: what is served
    assert float(run.data.params["min_ess"]) == DEFAULT_MIN_ESS
    for role in ("candidate", "baseline"):
        low, value, high = (
            run.data.metrics[f"{role}_{key}"] for key in ("ci_low", "value", "ci_high")
        )
        assert low <= value <= high
        assert run.data.metrics[f"{role}_ess"] > 0
    assert run.data.metrics["promoted"] == 0.0
    artifacts = [a.path for a in MlflowClient().list_artifacts(run.info.run_id, "plots")]
    assert PLOT_PATH in artifacts


def test_a_version_never_beats_itself_and_the_refusal_is_tagged(tracking):
    """Against itself the lower bound sits below the estimate, so champion must not move."""
    before = _aliases()
    result = _compare(
        "--candidate",
        f"models:/{NAME}/1",
        "--promote",
        "--exploration",
        "softmax",
        "--temperature",
        "0.1",
        "--min-ess",
        "0",
        "--json",
        *tracking,
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert not payload["promoted"] and "[0.0000, 0.0000] not above 0" in payload["reason"]
    assert _aliases() == before
    tags = _gate_tags(1)
    assert set(tags) == set(GATE_TAGS)
    assert tags["gate.decision"] == "refused" and tags["gate.reason"] == payload["reason"]
    assert float(tags["gate.ci_low"]) == pytest.approx(payload["difference"]["ci_low"], abs=1e-6)
    assert float(tags["gate.ess"]) == pytest.approx(
        payload["difference"]["effective_sample_size"], abs=0.1
    )
    assert tags["gate.reward"] == "correct" and tags["gate.baseline"] == f"{NAME}/1"
    assert tags["gate.run_id"] == payload["run_id"]


# A promotion by the real gate (champion moves, the version is tagged ``promoted`` with the
# estimate, interval and ESS) is shown in tests/train/test_deploy.py
# (test_the_gate_promotes_a_better_challenger_on_its_own): on this rule-logged school no pair
# of versions passes the gate honestly (version 1's effective sample size is 11-18).


def test_low_effective_sample_size_blocks_promotion(tracking):
    result = _compare(
        "--candidate",
        f"models:/{NAME}/2",
        "--promote",
        "--exploration",
        "softmax",
        "--temperature",
        "0.1",
        "--min-ess",
        "1e9",
        *tracking,
    )
    assert result.exit_code == 0, result.output
    assert "is below --min-ess" in result.output
    assert _aliases()["champion"] == "1"
    assert _gate_tags(2)["gate.decision"] == "refused"


def test_promote_without_a_champion_is_refused_before_anything_runs(tracking):
    MlflowClient().delete_registered_model_alias(NAME, "champion")
    before = _aliases()
    result = _compare(
        "--candidate",
        f"models:/{NAME}/2",
        "--baseline",
        f"models:/{NAME}/1",
        "--promote",
        *tracking,
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot --promote: ")
    assert "no 'champion'" in result.output
    assert result.output.count("\n") == 1
    assert _aliases() == before and _gate_tags(2) == {}
    assert mlflow.get_experiment_by_name(tracking_store.EVALUATION_EXPERIMENT) is None


def test_promote_with_an_unreachable_tracking_server_says_so(monkeypatch):
    from tests.support.local_server import free_port

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    try:
        result = _compare("--candidate", f"models:/{NAME}/2", "--promote")
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: cannot reach the tracking server at {uri} ")
    assert "champion" not in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_promote_against_a_baseline_other_than_the_champion_is_refused(tracking):
    before = _aliases()
    result = _compare(
        "--candidate",
        f"models:/{NAME}/2",
        "--baseline",
        f"models:/{NAME}/2",
        "--promote",
        *tracking,
    )
    assert result.exit_code == 1
    assert "decides against the current champion (skbandit-linucb v1)" in result.output
    assert _aliases() == before and _gate_tags(2) == {}


def test_since_evaluates_later_decisions_and_flags_in_sample_versions(tracking):
    events = pd.read_parquet(tracking[1])
    since = events["timestamp"].sort_values().iloc[2000].isoformat()
    result = _compare("--candidate", f"models:/{NAME}/2", "--since", since, "--json", *tracking)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_decisions"] == (events["timestamp"] >= since).sum() < len(events)
    assert [note[:3] for note in payload["notes"]] == ["v2 "]  # v1 learned 150 events only


def test_missing_propensity_is_one_line_and_moves_nothing(tracking, tmp_path):
    events = pd.read_parquet(tracking[1]).drop(columns="propensity")
    events.to_parquet(tmp_path / "no_propensity.parquet")
    before = _aliases()
    result = _compare(
        "--candidate",
        f"models:/{NAME}/2",
        "--promote",
        "--events",
        str(tmp_path / "no_propensity.parquet"),
        "--items",
        tracking[3],
    )
    assert result.exit_code == 1
    assert "has no 'propensity' column" in result.output
    assert "Traceback" not in result.output
    assert _aliases() == before
    assert mlflow.get_experiment_by_name(tracking_store.EVALUATION_EXPERIMENT) is None


@pytest.mark.parametrize("reference", [f"models:/{NAME}/9", f"models:/{NAME}@nobody", "other/1"])
def test_unknown_model_or_alias_is_one_line_exit_1(tracking, reference):
    before = _aliases()
    result = _compare("--candidate", reference, "--promote", *tracking)
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert _aliases() == before


def test_gate_rule_by_hand():
    def difference(low, ess=500.0):
        return PairedDifference("dr", low + 0.02, low, low + 0.04, 0.8, 0.78, 1000, 40, ess, 0.95)

    assert promotion_gate(difference(0.001))[0]
    assert not promotion_gate(difference(-0.001))[0]
    assert not promotion_gate(difference(0.05, ess=99.0), min_ess=100)[0]
    assert not promotion_gate(difference(float("nan")))[0]
    assert not promotion_gate(difference(0.0))[0]  # an interval touching 0 does not win
    passes, reason = promotion_gate(difference(0.05, ess=20.0))
    assert not passes and "effective sample size 20" in reason


def test_help_lists_the_options():
    result = CliRunner().invoke(app, ["compare", "--help"])
    assert result.exit_code == 0
    assert "--promote" in result.output and "--estimator" in result.output


def test_help_states_the_defaults_that_skbandit_defines():
    """The help names the defaults in words, so it must not drift from the constants."""
    command = typer.main.get_command(app).commands["compare"]
    helps = {param.name: param.help for param in command.params}
    assert f"(default: {SERVING_OBJECTIVE}, the objective serving uses)" in helps["objective"]
    assert f"(default: {DEFAULT_MIN_ESS:g})" in helps["min_ess"]


def test_compare_help_does_not_import_the_heavy_libraries(help_in_fresh_interpreter):
    heavy = ("mlflow", "matplotlib", "pandas", "skbandit.ope.targets")
    args = ["compare", "--help"]
    printed, imported = help_in_fresh_interpreter("train.evaluate.cli", args, heavy)
    assert "--min-ess" in printed
    assert imported == [], printed


def test_decisions_log_gives_the_estimates_of_the_same_decisions_rebuilt(tracking, tmp_path):
    """A served log built from the school's later events (same candidates, same logging
    propensities) must give exactly the estimates of those events rebuilt (--since)."""
    from adapters.data.datasets import load_school
    from tests.support.served_log import served_log, write_export

    events, items, _ = load_school(tracking[1], tracking[3])
    events = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    since = events["timestamp"].iloc[len(events) // 2]
    rows = (events["timestamp"] >= since).to_numpy().nonzero()[0]
    decisions, candidates = served_log(events, items, rows)
    folder = write_export(decisions, candidates, tmp_path / "export")
    outcomes = (
        events.iloc[rows]
        .drop(columns="propensity")
        .assign(decision_id=decisions["decision_id"].to_numpy())
    )
    outcomes.to_parquet(tmp_path / "outcomes.parquet", index=False)
    common = ("--candidate", f"models:/{NAME}/2", "--exploration", "softmax", "--json")
    served = _compare(
        *common, "--decisions", str(folder), "--events", str(tmp_path / "outcomes.parquet")
    )
    assert served.exit_code == 0, served.output
    rebuilt = _compare(*common, "--since", since.isoformat(), *tracking)
    assert rebuilt.exit_code == 0, rebuilt.output
    served_json, rebuilt_json = (
        json.loads(r.stdout[r.stdout.index("{") :]) for r in (served, rebuilt)
    )
    assert served_json["n_decisions"] == rebuilt_json["n_decisions"] == len(rows)
    for part in ("candidate", "baseline", "difference"):
        for key in ("value", "effective_sample_size"):
            assert served_json[part][key] == pytest.approx(rebuilt_json[part][key], rel=1e-9)
    assert f"{len(rows):,} of {len(rows):,} outcomes joined" in served.output


def test_decisions_without_events_or_of_another_model_is_one_line(tracking, tmp_path):
    from adapters.data.datasets import load_school
    from tests.support.served_log import served_log, write_export

    events, items, _ = load_school(tracking[1], tracking[3])
    decisions, candidates = served_log(events, items, [10, 11, 12], model_name="other")
    folder = write_export(decisions, candidates, tmp_path / "export")
    for args, message in (
        (("--decisions", str(folder)), "--decisions needs --events"),
        (
            ("--decisions", str(folder), "--events", tracking[1]),
            "no decision of model 'skbandit-linucb'",
        ),
        (
            ("--decisions", str(tmp_path / "nope"), "--events", tracking[1]),
            "no such file or folder",
        ),
    ):
        result = _compare("--candidate", f"models:/{NAME}/2", *args)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("error: ") and message in result.output


def test_decisions_that_fail_verification_are_refused_unless_told(tracking, tmp_path):
    """A log whose hash chain is broken (here: the served item of one decision rewritten in
    the export) is refused, naming the decision; --unverified-log evaluates it anyway."""
    import pandas as pd

    from adapters.data.datasets import load_school
    from tests.support.served_log import served_log, write_export

    events, items, _ = load_school(tracking[1], tracking[3])
    rows = list(range(40, 80))
    decisions, candidates = served_log(events, items, rows)
    folder = write_export(decisions, candidates, tmp_path / "export")
    table = pd.read_parquet(folder / "decisions.parquet")
    rewritten = table["decision_id"].iloc[5]
    table.loc[5, "served_item_id"] = "an item never served"
    table.to_parquet(folder / "decisions.parquet", index=False)
    outcomes = (
        events.iloc[rows]
        .drop(columns="propensity")
        .assign(decision_id=decisions["decision_id"].to_numpy())
    )
    outcomes.to_parquet(tmp_path / "outcomes.parquet", index=False)
    args = (
        "--candidate",
        f"models:/{NAME}/2",
        "--decisions",
        str(folder),
        "--events",
        str(tmp_path / "outcomes.parquet"),
    )
    refused = _compare(*args)
    assert refused.exit_code == 1 and "fails verification" in refused.output
    assert f"decision {rewritten}" in refused.output and "--unverified-log" in refused.output
    used = _compare(*args, "--unverified-log")
    assert "fails verification" not in used.output, used.output


def test_reward_progress_judges_the_delayed_learning_reward_and_is_tagged(tracking):
    """``--reward progress``: only decisions with five later attempts on their topic count,
    the estimates are of the learning reward (logits, not a success rate), and the gate's
    tags and the run say which reward promoted."""
    from adapters.data.datasets import load_school
    from skbandit.context import historical_contexts
    from skbandit.learning_progress import logged_rewards

    common = (
        "--candidate",
        f"models:/{NAME}/2",
        "--promote",
        "--min-ess",
        "0",
        "--estimator",
        "ips",
        "--json",
        *tracking,
    )
    success = json.loads(_compare(*common).stdout)
    result = _compare(*common, "--reward", "progress")
    assert result.exit_code == 0, result.output
    progress = json.loads(result.stdout)
    events, items, _ = load_school(tracking[1], tracking[3])
    events = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    rewards = logged_rewards(events, historical_contexts(events, items))
    known = int(np.isfinite(rewards[events["propensity"].notna().to_numpy()]).sum())
    assert progress["n_decisions"] == known < success["n_decisions"]
    assert progress["difference"]["n_decisions"] == known
    assert progress["baseline"]["value"] != pytest.approx(success["baseline"]["value"])
    tags = _gate_tags(2)
    assert tags["gate.reward"] == "progress"
    run = mlflow.get_run(progress["run_id"])
    assert run.data.params["reward"] == "progress"


def test_reward_progress_on_the_served_log_reads_the_later_attempts(tracking, tmp_path):
    from adapters.data.datasets import load_school
    from tests.support.served_log import served_log, write_export

    events, items, _ = load_school(tracking[1], tracking[3])
    events = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    rows = np.arange(len(events) // 2, len(events))
    decisions, candidates = served_log(events, items, rows)
    folder = write_export(decisions, candidates, tmp_path / "export")
    outcomes = (
        events.iloc[rows]
        .drop(columns="propensity")
        .assign(decision_id=decisions["decision_id"].to_numpy())
    )
    outcomes.to_parquet(tmp_path / "outcomes.parquet", index=False)
    served = (
        "--candidate",
        f"models:/{NAME}/2",
        "--exploration",
        "softmax",
        "--reward",
        "progress",
        "--decisions",
        str(folder),
        "--events",
        str(tmp_path / "outcomes.parquet"),
    )
    refused = _compare(*served)
    assert (
        refused.exit_code == 1
        and "--reward progress with --decisions needs --items" in refused.output
    )
    result = _compare(*served, "--items", tracking[3], "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    by_student = outcomes.groupby(["user_id", "topic"]).cumcount(ascending=False)
    assert payload["n_decisions"] == int((by_student >= 5).sum())  # five later attempts
