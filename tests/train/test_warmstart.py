"""``python -m train.warmstart`` driven through its Typer app against temporary MLflow stores.

One store per module (creating an MLflow SQLite store costs seconds): the default school
(shrunk to a few weeks) is trained twice into it, and the failure tests run against it and
check that the registry is exactly as before (versions 1 and 2, ``champion`` on 1 since the
first run, ``challenger`` on 2). Tests
that register something use their own model name.
"""

import re

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from adapters import registry, tracking
from adapters.data import datasets
from skbandit import schema
from skbandit.sim.generate import SchoolConfig, simulate_school
from train.warmstart import job as job
from train.warmstart.cli import app

NAME = registry.DEFAULT_MODEL_NAME
TINY = SchoolConfig(
    n_students=40, seed=1, start_date="2024-01-02", end_date="2024-02-12", attempts_per_student=40
)
PLOTS = {
    "progressive_validation.png",
    "calibration.png",
    "uncertainty_decay.png",
    "coefficients.png",
}
PREDICTORS = ("bandit", "global_rate", "irt")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def error_lines(result):
    return [line for line in result.output.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small school as parquet: all events, the earlier half (A), the later half (B)."""
    folder = tmp_path_factory.mktemp("school")
    school = simulate_school(TINY)
    events = school.events
    cutoff = events[schema.TIMESTAMP].quantile(0.5)
    paths = {
        "items": folder / "items.parquet",
        "all": folder / "events.parquet",
        "a": folder / "events_a.parquet",
        "b": folder / "events_b.parquet",
    }
    school.items.to_parquet(paths["items"], index=False)
    events.to_parquet(paths["all"], index=False)
    events[events[schema.TIMESTAMP] <= cutoff].to_parquet(paths["a"], index=False)
    events[events[schema.TIMESTAMP] > cutoff].to_parquet(paths["b"], index=False)
    return paths


@pytest.fixture(scope="module")
def store(tmp_path_factory, files):
    """A temporary store where the default (tiny) school was trained twice: v1, then v2."""
    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("COLUMNS", "200")
        mp.setenv(datasets.ENV_DATA_DIR, str(folder / "cache"))
        mp.delenv(datasets.ENV_EVENTS, raising=False)
        mp.delenv(datasets.ENV_ITEMS, raising=False)
        mp.setattr(datasets, "default_school_config", lambda: TINY)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        first, second = invoke(), invoke()
        reset_mlflow_uris()
    return {"uri": uri, "folder": folder, "first": first, "second": second}


def reset_mlflow_uris():
    """Forget the URIs ``configure_tracking`` set globally (the environment is restored by
    monkeypatch), so later tests see only their own ``MLFLOW_TRACKING_URI``."""
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture
def env(monkeypatch, store):
    """Point the job at the module's store; pin the terminal width."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)  # mlflow sets it; restore after
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv(datasets.ENV_EVENTS, raising=False)
    monkeypatch.delenv(datasets.ENV_ITEMS, raising=False)
    tracking.configure_tracking()
    yield MlflowClient(tracking_uri=store["uri"], registry_uri=store["uri"])
    reset_mlflow_uris()


def runs(client):
    experiment = client.get_experiment_by_name(tracking.WARMSTART_EXPERIMENT)
    return {run.info.run_id: run for run in client.search_runs([experiment.experiment_id])}


def registry_state(client, name=NAME):
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    return versions, client.get_registered_model(name).aliases


def version_of(client, name, alias="champion"):
    return client.get_model_version_by_alias(name, alias)


def pipeline_of(name, alias="champion"):
    return registry.load_model(registry.ModelRef(name, alias=alias))[0]


# --- the default run -------------------------------------------------------------------------


def test_default_runs_register_challengers_and_only_the_first_becomes_champion(env, store):
    first, second = store["first"], store["second"]
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "skbandit-linucb v1 (alias challenger)" in first.output
    assert "skbandit-linucb v2 (alias challenger)" in second.output
    said = "had no champion, so v1 is also 'champion' (first run)"
    assert said in " ".join(first.output.split())
    assert "also 'champion'" not in " ".join(second.output.split())
    assert f"cached in {store['folder'] / 'cache'}" in first.output
    assert "mlflow ui --backend-store-uri" in first.output
    assert registry_state(env) == ([1, 2], {"champion": 1, "challenger": 2})


def test_version_tags_identify_the_version_and_the_run_holds_the_rest(env, store):
    version = version_of(env, NAME)
    tags = version.tags
    run = env.get_run(version.run_id)
    identifying = {"data_hash", "trained_until", "data", "data_items", registry.CHECKSUM_TAG}
    assert set(tags) == identifying  # the UI's version row: what identifies it, no more
    events = int(run.data.params["event_count"])
    assert (
        re.fullmatch(r"[0-9a-f]{64}", tags["data_hash"])
        and tags["data_hash"] == run.data.params["data_hash"]
    )
    school = simulate_school(TINY).events
    assert pd.Timestamp(tags["trained_until"]) == school[schema.TIMESTAMP].max()
    params, metrics = run.data.params, run.data.metrics
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", params["git_commit"])
    assert params["state_format"] and params["skbandit_version"]
    assert int(metrics["n_updates"]) == events == int(metrics["events_trained"])
    details = registry.version_details(version)
    assert details["n_updates"] == events and details["feature_set"] == "default"
    assert details["run_id"] == run.info.run_id
    assert details["metrics"]["bandit_log_loss"] == run.data.metrics["final_bandit_log_loss"]


def test_run_params_and_stepped_and_final_metrics(env, store):
    run = env.get_run(version_of(env, NAME).run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["alpha"] == "1.0" and params["l2"] == str(job.PRIOR_L2)
    assert params["feature_set"] == "default" and params["batch_size"] == "10000"
    assert params["data_source"] == "default-school(seed=1)"
    assert params["skipped_unknown_items"] == "0" and params["context_only_events"] == "0"
    events = int(params["event_count"])
    for predictor in PREDICTORS:
        for metric in ("log_loss", "brier", "auc"):
            steps = [
                m.step
                for m in env.get_metric_history(run.info.run_id, f"batch_{predictor}_{metric}")
            ]
            assert steps == sorted(steps) and steps[-1] == events and steps[0] > 100
            if metric == "log_loss":  # the untrained first batch, apart from the chart
                assert f"first_batch_{predictor}_{metric}" in run.data.metrics
            assert f"final_{predictor}_{metric}" in run.data.metrics
    assert 0 < run.data.metrics["final_mean_uncertainty"]
    assert run.data.metrics["final_bandit_brier"] < 0.3


def test_plots_and_dataset_are_logged(env, store):
    run = env.get_run(version_of(env, NAME).run_id)
    # at the top level: MLflow's run comparison shows only top-level files side by side
    plots = {a.path for a in env.list_artifacts(run.info.run_id) if a.path.endswith(".png")}
    assert plots == PLOTS
    for name in PLOTS:
        local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=name)
        with open(local, "rb") as png:
            assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    (dataset_input,) = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert dataset.name == "events"
    assert dataset.digest == run.data.params["data_hash"][:16]
    assert '"num_rows": ' + run.data.params["event_count"] in dataset.profile
    assert '"user_id"' in dataset.schema and '"correct"' in dataset.schema
    assert {tag.value for tag in dataset_input.tags} == {"training"}


def test_registered_model_loads_and_predicts(env, store):
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    rows = pd.DataFrame(
        {
            schema.USER_ID: ["u1"] * 3,
            schema.ITEM_ID: ["a", "b", "c"],
            **{name: [0.5, 0.6, 0.7] for name in schema.MODEL_INPUT},
        }
    )
    rows[schema.ITEM_ATTEMPTS] = [0.0, 10.0, 30.0]
    out = model.predict(rows)
    assert len(out) == 3
    assert {"expected_reward", "success_low", "success_high", "uncertainty", "ucb"} <= set(
        out.columns
    )
    assert (out["uncertainty"] > 0).all() and (out["ucb_bonus"] > 0).all()
    np.testing.assert_allclose(out["ucb"], out["expected_reward"] + out["ucb_bonus"], atol=1e-9)


def test_seed_feature_set_is_trained_and_tagged(env, files):
    result = invoke(
        "--events",
        files["all"],
        "--items",
        files["items"],
        "--model-name",
        "seeded",
        "--feature-set",
        "seed",
        "--alpha",
        "0.5",
        "--max-events",
        "500",
    )
    assert result.exit_code == 0, result.output
    version = version_of(env, "seeded")
    assert registry.version_details(version)["feature_set"] == "seed"
    pipeline = pipeline_of("seeded")
    assert pipeline.estimator.n_features_in_ == 8 and pipeline.estimator.alpha == 0.5
    assert pipeline.estimator.n_updates_ == 500
    params = env.get_run(version.run_id).data.params
    assert params["feature_set"] == "seed" and params["event_count"] == "500"


# --- continuing a version (--from) ------------------------------------------------------------


@pytest.mark.slow
def test_continuing_on_a_and_b_equals_training_on_both(env, files):
    a_then_b, both = "cont-ab", "cont-direct"
    common = ("--items", files["items"])
    assert invoke("--events", files["a"], "--model-name", a_then_b, *common).exit_code == 0
    result = invoke(
        "--events",
        files["all"],
        "--model-name",
        a_then_b,
        "--from",
        f"models:/{a_then_b}@champion",
        *common,
    )
    assert result.exit_code == 0, result.output
    assert invoke("--events", files["all"], "--model-name", both, *common).exit_code == 0

    n_a, n_all = len(pd.read_parquet(files["a"])), len(pd.read_parquet(files["all"]))
    assert f"{n_a:,} events up to" in result.output and "used as context only" in result.output
    continued, direct = pipeline_of(a_then_b, "challenger").estimator, pipeline_of(both).estimator
    for attribute in ("A_", "b_", "coef_"):
        np.testing.assert_allclose(
            getattr(continued, attribute), getattr(direct, attribute), rtol=1e-10, atol=1e-10
        )
    assert continued.n_updates_ == direct.n_updates_ == n_all
    version = version_of(env, a_then_b, "challenger")
    assert int(version.version) == 2 and registry.version_details(version)["n_updates"] == n_all
    params = env.get_run(version.run_id).data.params
    assert params["context_only_events"] == str(n_a)
    assert params["event_count"] == str(n_all - n_a)
    assert params["from_model"] == f"models:/{a_then_b}@champion"


@pytest.mark.slow
def test_continuing_on_b_only_computes_contexts_from_b(env, files):
    name = "cont-b"
    common = ("--items", files["items"], "--model-name", name)
    assert invoke("--events", files["a"], *common).exit_code == 0
    result = invoke("--events", files["b"], "--from", f"{name}@champion", *common)
    assert result.exit_code == 0, result.output
    assert "contexts are computed from these events only" in result.output
    n_a, n_b = len(pd.read_parquet(files["a"])), len(pd.read_parquet(files["b"]))
    version = version_of(env, name, "challenger")
    assert registry.version_details(version)["n_updates"] == n_a + n_b
    assert env.get_run(version.run_id).data.params["context_only_events"] == "0"


def test_continuing_without_newer_events_fails_cleanly(env, files):
    before = registry_state(env)
    result = invoke("--events", files["a"], "--items", files["items"], "--from", f"{NAME}@champion")
    assert result.exit_code == 1
    (line,) = error_lines(result)
    assert "no events after" in line and "Traceback" not in result.output
    assert registry_state(env) == before


# --- bad input: exit 1, one line, a FAILED run, nothing registered ----------------------------


def _write_bad(kind, files, folder):
    events = pd.read_parquet(files["all"])
    if kind == "missing file":
        return folder / "nope.parquet"
    if kind == "wrong format":
        path = folder / "events.txt"
        path.write_text("user_id,item_id\n")
        return path
    if kind == "corrupt parquet":
        path = folder / "corrupt.parquet"
        path.write_bytes(b"PAR1 this is not parquet")
        return path
    if kind == "missing column":
        path = folder / "no_correct.parquet"
        events.drop(columns=[schema.CORRECT]).to_parquet(path, index=False)
        return path
    path = folder / "empty.parquet"
    events.head(0).to_parquet(path, index=False)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing file", "no such file"),
        ("wrong format", "unsupported file format '.txt'"),
        ("corrupt parquet", "could not read as .parquet"),
        ("missing column", "missing column 'correct'"),
        ("empty", "no events to train on"),
    ],
)
def test_bad_events_fail_the_run_and_register_nothing(env, files, tmp_path, kind, message):
    before, runs_before = registry_state(env), runs(env)
    result = invoke("--events", _write_bad(kind, files, tmp_path), "--items", files["items"])
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result)
    assert message in line
    assert "Traceback" not in result.output
    assert registry_state(env) == before
    (new,) = [run for key, run in runs(env).items() if key not in runs_before]
    assert new.info.status == "FAILED"
    assert message in new.data.tags[job.FAILURE_REASON_TAG]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "models:/nope@champion"), "no registered model 'nope'"),
        (("--from", f"models:/{NAME}@nosuch"), "has no alias 'nosuch'"),
        (
            ("--from", f"models:/{NAME}@champion", "--feature-set", "seed"),
            "uses feature set 'default' but --feature-set 'seed'",
        ),
    ],
)
def test_bad_from_fails_the_run_and_moves_nothing(env, files, args, message):
    before, runs_before = registry_state(env), runs(env)
    result = invoke("--events", files["all"], "--items", files["items"], *args)
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result)
    assert message in line and "Traceback" not in result.output
    assert registry_state(env) == before
    (new,) = [run for key, run in runs(env).items() if key not in runs_before]
    assert new.info.status == "FAILED" and message in new.data.tags[job.FAILURE_REASON_TAG]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--feature-set", "fancy"),
            "unknown --feature-set 'fancy' (expected one of default, seed)",
        ),
        (("--alias", "v3"), "--alias 'v3' is not a usable alias"),
        (("--alias", "champion"), "champion moves only through the gate"),
        (("--events", "x.parquet"), "give --events and --items together"),
    ],
)
def test_bad_options_are_refused(env, files, args, message):
    before, runs_before = registry_state(env), runs(env)
    if "--events" not in args:
        args = ("--events", files["all"], "--items", files["items"], *args)
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result)
    assert message in line and "Traceback" not in result.output
    assert registry_state(env) == before
    new = [run for key, run in runs(env).items() if key not in runs_before]
    assert all(run.info.status == "FAILED" for run in new)


def test_unknown_items_are_skipped_counted_and_reported(env, files, tmp_path):
    events = pd.read_parquet(files["all"])
    ghosts = events.head(7).assign(**{schema.ITEM_ID: "ghost-item"})
    path = tmp_path / "with_ghosts.parquet"
    pd.concat([events, ghosts]).to_parquet(path, index=False)
    result = invoke("--events", path, "--items", files["items"], "--model-name", "ghosts")
    assert result.exit_code == 0, result.output
    assert "skipped 7 events whose item is not in the items table" in result.output
    version = version_of(env, "ghosts")
    params = env.get_run(version.run_id).data.params
    assert params["skipped_unknown_items"] == "7"
    assert params["event_count"] == str(len(events))


# --- interruptions ---------------------------------------------------------------------------


def test_interrupted_replay_kills_the_run_and_registers_nothing(env, files, monkeypatch):
    real_replay = job.replay_history

    def interrupted(*args, **kwargs):
        def stop(n):
            raise KeyboardInterrupt

        return real_replay(*args, **{**kwargs, "on_batch": stop})

    monkeypatch.setattr(job, "replay_history", interrupted)
    before, runs_before = registry_state(env), runs(env)
    result = invoke("--events", files["all"], "--items", files["items"])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "Traceback" not in result.output
    assert registry_state(env) == before
    (new,) = [run for key, run in runs(env).items() if key not in runs_before]
    assert new.info.status == "KILLED"
    assert "interrupted" in new.data.tags[job.FAILURE_REASON_TAG]


def test_failure_while_moving_the_alias_deletes_the_new_version(env, files, monkeypatch):
    def broken(self, name, alias, version):
        raise KeyboardInterrupt

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", broken)
    before = registry_state(env)
    result = invoke("--events", files["all"], "--items", files["items"])
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert registry_state(env) == before


def test_unreachable_tracking_server_is_one_line(env, files, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    result = invoke("--events", files["all"], "--items", files["items"])
    assert result.exit_code == 1
    (line,) = error_lines(result)
    assert "127.0.0.1:9" in line and "nothing was registered" in line
    assert "Traceback" not in result.output


def test_the_run_is_named_and_tagged_with_its_version_for_the_ui(env, store):
    version = version_of(env, NAME)
    run = env.get_run(version.run_id)
    assert run.data.tags["mlflow.runName"].startswith("default-school(seed=1) · default features")
    assert run.data.tags["registered_version"] == f"{NAME} v{version.version}"
    experiment = env.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "log_loss" not in version.tags  # the metrics are the run's
