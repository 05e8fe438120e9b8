"""``python -m train.evaluate deploy``: the closed loop, run on a simulated school.

A tiny school (80 students, two days of history, two served days, seeded) is deployed once
per module in process into a temporary MLflow store; the tests read what it left behind: the
decision log, the registry, the MLflow run and the returned figures. The slow tests run the
same deployment through a real ``skbandit serve`` on 127.0.0.1, and a default-size school on
which the gate promotes on its own.
"""

from __future__ import annotations

import io
import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from rich.console import Console
from typer.testing import CliRunner

from adapters import tracking
from adapters.data.deployment_files import default_decision_log_url
from adapters.decision_log import DecisionLog
from adapters.serving.client import serving_champion
from skbandit import schema
from skbandit.ope.gate import DEFAULT_MIN_ESS
from skbandit.policy import action_probabilities
from skbandit.ranking_settings import REST_SETTINGS
from skbandit.sim.world import SchoolConfig
from train.evaluate.cli import app
from train.evaluate.compare.job import GATE_TAGS
from train.evaluate.deploy.job import run_deploy
from train.evaluate.deploy.options import DeployOptions
from train.evaluate.deploy.report import EXPERIMENT, TABLE_ARTIFACT
from train.evaluate.deploy.school import P_TRUE, DeploySchool, request_seeds

NAME = "skbandit-deploy"
TINY = DeployOptions(days=2, students=80, history_days=2, seed=3, n_bootstrap=200)


def _deploy(root, options: DeployOptions):
    """Run ``options`` into the store at ``root``; (result, printed text)."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        result = run_deploy(options, Console(file=printed, width=80))
    return result, printed.getvalue()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    result, printed = _deploy(root, TINY)
    return root, result, printed


@pytest.fixture
def store(deployed, monkeypatch):
    """Point this test at the deployment's store."""
    root, result, printed = deployed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    tracking.configure_tracking()
    return root, result, printed


def _log(root):
    decisions, candidates = DecisionLog(f"{root}/{NAME}-decisions.db").read()
    return decisions, candidates


def _tags(version):
    return MlflowClient().get_model_version(NAME, str(version)).tags


def test_every_served_decision_is_logged_with_the_champion_that_served_it(store):
    root, result, _ = store
    decisions, _ = _log(root)
    assert default_decision_log_url(NAME) == f"sqlite:///{root}/{NAME}-decisions.db"
    served = pd.concat(
        [day.served.decisions.assign(version=day.served.version) for day in result.days],
        ignore_index=True,
    )
    assert len(served) == len(decisions) > 0  # nothing else was logged
    logged = decisions.set_index(schema.DECISION_ID).loc[served[schema.DECISION_ID]]
    assert (logged["model_name"] == NAME).all()
    assert list(logged["model_version"]) == list(served["version"])
    assert list(logged["served_item_id"]) == list(served[schema.ITEM_ID])
    assert list(logged[schema.USER_ID]) == list(served[schema.USER_ID])
    assert logged["seeded"].all()  # --seed: every draw reproducible, and marked so
    settings = json.loads(logged["settings"].iloc[0])
    assert (settings["exploration"], settings["epsilon"]) == ("softmax", 0.1)  # REST defaults


def test_each_days_outcomes_join_back_to_their_decisions(store):
    _, result, _ = store
    for day in result.days:
        join, n = day.night.join, len(day.served.decisions)
        assert join.events == join.matched == join.matched_by_id == n, join.summary()
        outcomes = day.served.outcomes()
        assert set(outcomes[schema.DECISION_ID]) == set(day.served.decisions[schema.DECISION_ID])


def test_a_challenger_is_registered_each_night_from_the_champion(store):
    _, result, _ = store
    assert result.first_version == "1"
    assert [day.night.next_challenger for day in result.days] == ["2", "3"]
    client = MlflowClient()
    assert str(client.get_registered_model(NAME).aliases["challenger"]) == "3"
    trained = [pd.Timestamp(_tags(v)["trained_until"]) for v in (1, 2, 3)]
    assert trained == sorted(trained) and len(set(trained)) == 3
    for day in result.days:  # learned up to the end of the day it was trained after
        until = pd.Timestamp(_tags(day.night.next_challenger)["trained_until"])
        assert until == day.served.decisions[schema.TIMESTAMP].max()


def test_champion_moves_only_when_the_gate_tags_say_promoted(store):
    _, result, _ = store
    checked = [day for day in result.days if day.night.check is not None]
    assert [day.day for day in checked] == [2]  # night 1 has only the champion
    assert result.days[0].night.check is None
    champion = "1"
    for day in checked:
        check = day.night.check
        tags = _tags(check.version)
        assert set(GATE_TAGS) <= set(tags)
        promoted = tags["gate.decision"] == "promoted"
        assert promoted == check.gate.promoted
        champion = check.version if promoted else champion
        assert day.night.champion == champion
    aliases = MlflowClient().get_registered_model(NAME).aliases
    assert str(aliases["champion"]) == champion
    assert not mlflow.search_registered_models(filter_string="name = 'skbandit-linucb'")


def test_per_day_metrics_are_logged_to_one_run(store):
    _, result, _ = store
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    (run,) = mlflow.search_runs([experiment.experiment_id], output_format="list")
    assert run.info.status == "FINISHED" and run.info.run_id == result.run_id
    assert run.data.params["seed"] == "3" and run.data.params["via"] == "in-process"
    client = MlflowClient()

    def history(key):
        return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}

    for day in result.days:
        served = day.served
        assert history("success_rate")[day.day] == pytest.approx(served.success_rate)
        assert history("learning_gain")[day.day] == pytest.approx(served.learning_gain)
        assert history("exploration_cost")[day.day] == pytest.approx(served.exploration_cost)
        assert history("decisions")[day.day] == len(served.decisions)
    check = result.days[1].night.check
    assert history("challenger_truth") == {2: pytest.approx(check.truth)}
    assert history("challenger_dr") == {2: pytest.approx(check.estimates["dr"].value)}
    assert history("gate_estimate") == {2: pytest.approx(check.gate.difference.value)}
    assert history("promoted") == {2: float(check.gate.promoted)}
    table = pd.read_csv(
        io.StringIO(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{TABLE_ARTIFACT}"))
    )
    assert list(table["day"]) == [1, 2]


def test_truth_is_the_challengers_expected_success_on_the_logged_decisions(store):
    """Recomputed decision by decision with :func:`skbandit.policy.action_probabilities`."""
    from adapters import registry

    root, result, _ = store
    day = result.days[1]
    check = day.night.check
    _, candidates = _log(root)
    pipeline, _ = registry.load_model(registry.ModelRef(NAME, version=check.version))
    truth = day.served.truth.set_index([schema.DECISION_ID, schema.ITEM_ID])[P_TRUE]
    values = []
    for decision_id in day.served.decisions[schema.DECISION_ID]:
        rows = candidates[candidates[schema.DECISION_ID] == decision_id]
        probs = action_probabilities(pipeline, rows, REST_SETTINGS)
        values.append(float(probs @ truth.loc[decision_id].loc[rows[schema.ITEM_ID]].to_numpy()))
    assert check.truth == pytest.approx(np.mean(values), abs=1e-9)
    assert check.n_decisions == len(values)
    # the DR estimate is the one the gate's comparison made of the same candidate
    assert check.estimates["dr"].value == pytest.approx(check.gate.candidate.value, abs=1e-9)
    assert set(check.estimates) == {"ips", "snips", "dr"}


def test_the_printed_tables_fit_80_columns(store):
    _, result, printed = store
    assert "Served days" in printed and "Nights" in printed
    # only the day-0 line may be longer: it names the decision log, which must stay whole
    assert max(len(line) for line in printed.splitlines() if not line.startswith("day 0:")) <= 80
    assert f"v{result.days[1].night.check.version}" in printed


def test_seeded_days_repeat_exactly_and_unseeded_draws_are_marked(store, tmp_path):
    """Two schools of the same seed served with the same request seeds make the same
    decisions; without seeds the decisions are logged ``seeded = False``."""
    config = SchoolConfig(n_students=TINY.students, seed=TINY.seed)
    url = f"sqlite:///{tmp_path}/log.db"
    days = []
    for seeds in (request_seeds(7), request_seeds(7), None):
        school = DeploySchool(config)
        school.log_history(TINY.history_days)
        with serving_champion("in-process", NAME, url, tmp_path / "server.log") as champion:
            days.append(school.serve_day(champion, seeds))
    columns = [schema.USER_ID, schema.ITEM_ID, schema.CORRECT, schema.PROPENSITY]
    pd.testing.assert_frame_equal(days[0].decisions[columns], days[1].decisions[columns])
    decisions, _ = DecisionLog(url).read()
    seeded = decisions.set_index(schema.DECISION_ID)["seeded"]
    assert seeded.loc[days[1].decisions[schema.DECISION_ID]].all()
    assert not seeded.loc[days[2].decisions[schema.DECISION_ID]].any()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days must be at least 1; got 0"),
        (["--students", "1"], "--students must be at least 10"),
        (["--model-name", "skbandit-linucb"], "must not move its champion"),
        (["--decision-log", "sqlite:///{root}/a-file/log.db"], "is unreachable"),
        (["--decision-log", "nonsense://host/db"], "neither sqlite:/// nor postgresql://"),
    ],
    ids=["days-0", "students-1", "production-model", "unreachable-log", "unknown-url"],
)
def test_bad_input_is_one_line_and_creates_nothing(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    (tmp_path / "a-file").write_text("not a folder")
    args = [arg.format(root=tmp_path) for arg in args]
    result = CliRunner().invoke(app, ["deploy", "--students", "20", *args])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    if (tmp_path / "mlflow.db").exists():  # options are checked before the store is opened
        tracking.configure_tracking()
        assert not mlflow.search_registered_models()
    assert not list(tmp_path.glob("*decisions.db"))


def test_a_named_model_that_has_a_champion_is_refused_and_the_default_moves_on(store):
    from train.evaluate.deploy.job import _free_model_name

    result = CliRunner().invoke(app, ["deploy", "--students", "20", "--model-name", NAME])
    assert result.exit_code == 1, result.output
    assert "already has a champion (v1)" in result.output
    assert len(MlflowClient().search_model_versions(f"name = '{NAME}'")) == 3
    assert _free_model_name() == f"{NAME}-2"  # a second run of the default command


def test_help_lists_the_options_without_heavy_imports(help_in_fresh_interpreter):
    printed, imported = help_in_fresh_interpreter(
        "train.evaluate.cli", ["deploy", "--help"], ("mlflow", "pandas", "sklearn")
    )
    for option in (
        "--days",
        "--students",
        "--seed",
        "--via",
        "--model-name",
        "--decision-log",
        "--out",
        "--history-days",
        "--gate-reward",
    ):
        assert option in printed
    assert imported == []


@pytest.mark.slow
def test_rest_deployment_serves_what_the_in_process_one_serves(deployed, tmp_path_factory):
    """Through a real ``skbandit serve`` on 127.0.0.1: the same seeded decisions, logged with
    the serving version, outcomes joined, a challenger each night."""
    _, in_process, _ = deployed
    root = tmp_path_factory.mktemp("deploy-rest")
    options = DeployOptions(**{**TINY.__dict__, "via": "rest", "out": root / "out"})
    result, _ = _deploy(root, options)
    columns = [schema.USER_ID, schema.ITEM_ID, schema.CORRECT, schema.PROPENSITY]
    for rest_day, local_day in zip(result.days, in_process.days, strict=True):
        pd.testing.assert_frame_equal(
            rest_day.served.decisions[columns], local_day.served.decisions[columns], atol=1e-12
        )
        assert rest_day.night.join.matched == len(rest_day.served.decisions)
    decisions, _ = _log(root)
    served = pd.concat([d.served.decisions.assign(v=d.served.version) for d in result.days])
    logged = decisions.set_index(schema.DECISION_ID).loc[served[schema.DECISION_ID]]
    assert list(logged["model_version"]) == list(served["v"])
    assert [d.night.next_challenger for d in result.days] == ["2", "3"]
    assert (root / "out" / "server-v1.log").read_text().count("serving") >= 1


HONEST = DeployOptions(days=3, students=2000, history_days=5, seed=1)
"""The default school size: a champion trained on five days of rule-logged history, then a
challenger that also learned a served day. Since the LinUCB starts from IRT, the two differ
by about a point of success, which is what one day of 1,200 decisions has to resolve."""


@pytest.mark.slow
def test_the_gate_judges_one_day_as_the_simulator_truth_allows(tmp_path):
    """No verdict is forced: the paired difference's interval covers the simulator's true
    difference between challenger and champion, and the gate promotes exactly when that
    interval lies above 0 (and says why in its tags otherwise)."""
    result, _ = _deploy(tmp_path, HONEST)
    night = result.days[1].night
    check = night.check
    assert check is not None and check.version == "2"
    difference = check.gate.difference
    true_difference = check.truth - check.champion_truth
    assert difference.ci_low <= true_difference <= difference.ci_high, (true_difference, difference)
    assert check.gate.promoted == (difference.ci_low > 0), check.gate.reason
    assert abs(true_difference) < 0.03  # one served day moves a challenger little
    assert difference.effective_sample_size >= 2 * DEFAULT_MIN_ESS
    champion = "2" if check.gate.promoted else "1"
    assert night.champion == champion and result.days[2].served.version == champion
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
        tracking.configure_tracking()
        tags = _tags(2)
        assert str(MlflowClient().get_registered_model(NAME).aliases["champion"]) == champion
        decisions, _ = _log(tmp_path)
    decision = "promoted" if check.gate.promoted else "refused"
    assert tags["gate.decision"] == decision and tags["gate.estimator"] == "dr"
    assert tags["gate.reward"] == "correct" and tags["gate.baseline"] == f"{NAME}/1"
    assert float(tags["gate.estimate"]) == pytest.approx(difference.value, abs=1e-6)
    assert float(tags["gate.ci_low"]) == pytest.approx(difference.ci_low, abs=1e-6)
    day3 = decisions[
        decisions[schema.DECISION_ID].isin(result.days[2].served.decisions[schema.DECISION_ID])
    ]
    assert len(day3) == len(result.days[2].served.decisions)
    assert set(day3["model_version"]) == {champion}
