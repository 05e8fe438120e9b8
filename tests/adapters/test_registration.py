"""Registration is all or nothing and runs always end (issue 11): SIGTERM like SIGINT, a
SIGKILLed registration left ``pending`` and cleaned up, stale runs failed, a new store created
under a lock, the truth about the alias, secrets redacted, read-only commands create nothing.

One small store per module (two short warm-starts: v1 with ``champion``, then v2 with
``challenger``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from rich.console import Console
from typer.testing import CliRunner

from adapters import registry, runs, tracking
from adapters.registry import register as registration
from serve.cli import app as cli_app
from train.warmstart import job as job
from train.warmstart.cli import app

NAME = registry.DEFAULT_MODEL_NAME
REPO = Path(__file__).resolve().parents[2]
SHORT = ("--max-events", "400")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def store(tmp_path_factory, small_school):
    folder = tmp_path_factory.mktemp("registration-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("COLUMNS", "200")
        for _ in range(2):
            result = invoke(*small_school.options, *SHORT)
            assert result.exit_code == 0, result.output
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    return {"uri": uri, "folder": folder, "options": small_school.options}


@pytest.fixture
def client(monkeypatch, store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("COLUMNS", "200")
    tracking.configure_tracking()
    yield MlflowClient(tracking_uri=store["uri"], registry_uri=store["uri"])
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def registry_state(client):
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{NAME}'"))
    return versions, client.get_registered_model(NAME).aliases


def all_runs(client):
    experiment = client.get_experiment_by_name(tracking.WARMSTART_EXPERIMENT)
    return {run.info.run_id: run for run in client.search_runs([experiment.experiment_id])}


def new_run(client, before):
    (run,) = [run for key, run in all_runs(client).items() if key not in before]
    return run


def test_sigterm_during_training_is_handled_like_sigint(client, store, monkeypatch):
    real_replay = job.replay_history

    def terminated(*args, **kwargs):
        return real_replay(
            *args, **{**kwargs, "on_batch": lambda n: os.kill(os.getpid(), signal.SIGTERM)}
        )

    monkeypatch.setattr(job, "replay_history", terminated)
    before, runs_before = registry_state(client), all_runs(client)
    result = invoke(*store["options"], *SHORT)
    assert result.exit_code == 130, result.output
    assert "interrupted: nothing was registered" in result.output
    assert registry_state(client) == before
    run = new_run(client, runs_before)
    assert run.info.status == "KILLED"
    assert "SIGTERM" in run.data.tags[runs.FAILURE_REASON_TAG]


def test_sigterm_in_the_middle_of_registering_undoes_it(client, store, monkeypatch):
    real_delete_tag = MlflowClient.delete_model_version_tag

    def terminated(self, *args):  # the last step: the alias has already moved
        os.kill(os.getpid(), signal.SIGTERM)
        return real_delete_tag(self, *args)

    monkeypatch.setattr(MlflowClient, "delete_model_version_tag", terminated)
    before, runs_before = registry_state(client), all_runs(client)
    result = invoke(*store["options"], *SHORT)
    assert result.exit_code == 130, result.output
    assert "nothing was registered and no alias moved" in result.output
    assert registry_state(client) == before  # the new version is gone, champion is back
    assert new_run(client, runs_before).info.status == "KILLED"


def test_when_the_undo_fails_the_job_says_so_and_the_next_run_cleans_up(client, store, monkeypatch):
    def interrupted(self, *args):
        raise KeyboardInterrupt

    def store_gone(self, *args):
        raise OSError("the store went away")

    before = registry_state(client)
    with monkeypatch.context() as mp:
        mp.setattr(MlflowClient, "delete_model_version_tag", interrupted)
        mp.setattr(MlflowClient, "delete_model_version", store_gone)
        result = invoke(*store["options"], *SHORT)
    assert result.exit_code == 130, result.output
    assert "nothing was registered" not in result.output
    assert "could not be undone" in result.output and "tagged pending" in result.output
    assert len(registry_state(client)[0]) == len(before[0]) + 1
    assert registration.remove_pending_versions(NAME, lambda run_id: False)
    assert registry_state(client) == before


KILLED_REGISTRATION = textwrap.dedent("""
    import os, signal, sys
    from mlflow import MlflowClient
    from adapters import runs, tracking
    from adapters.registry import register as registration
    tracking.configure_tracking()
    tracking.use_experiment(tracking.WARMSTART_EXPERIMENT)
    run_id = runs.start_run()
    runs.tag_process()
    MlflowClient.delete_model_version_tag = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
    registration.register_version(sys.argv[1], sys.argv[2], "champion", {"run_id": run_id})
""")


def test_a_sigkilled_registration_is_ignored_then_cleaned_up(client, store):
    before, runs_before = registry_state(client), all_runs(client)
    champion = client.get_model_version_by_alias(NAME, "champion")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_REGISTRATION, champion.source, NAME],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "MLFLOW_TRACKING_URI": store["uri"]},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (pending,) = set(registry_state(client)[0]) - set(before[0])
    assert client.get_registered_model(NAME).aliases["champion"] == pending  # moved, then killed
    assert registry.PENDING_TAG in client.get_model_version(NAME, str(pending)).tags
    # readers ignore it: the alias still means the version it meant before
    resolved = registry.resolve_version(registry.parse_model_ref(f"{NAME}@champion"))
    assert int(resolved.version) == before[1]["champion"]
    assert pending not in [row["version"] for row in registry.list_versions(NAME)]
    stale = new_run(client, runs_before)
    assert stale.info.status == "RUNNING"
    # the next warm-start ends the stale run and removes the pending version
    experiment_id = client.get_experiment_by_name(tracking.WARMSTART_EXPERIMENT).experiment_id
    console = Console(record=True, width=200)
    job._clean_up_after_killed_runs(experiment_id, NAME, console)
    assert registry_state(client) == before
    ended = client.get_run(stale.info.run_id)
    assert ended.info.status == "FAILED"
    assert "ended without finishing the run" in ended.data.tags[runs.FAILURE_REASON_TAG]
    output = console.export_text()
    assert "marked 1 earlier warm-start run(s) FAILED" in output
    assert f"removed {NAME} version(s) {pending}" in output


def test_a_run_whose_process_is_alive_is_not_stale(client):
    experiment_id = client.get_experiment_by_name(tracking.WARMSTART_EXPERIMENT).experiment_id
    with mlflow.start_run(experiment_id=experiment_id) as run:
        runs.tag_process()
        with mlflow.start_run(experiment_id=experiment_id, nested=True):
            assert run.info.run_id not in runs.fail_stale_runs(experiment_id)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_the_summary_tells_who_holds_the_alias_after_a_concurrent_move(client, store, monkeypatch):
    real_register = job.register_version

    def then_someone_else(*args, **kwargs):
        version = real_register(*args, **kwargs)
        MlflowClient().set_registered_model_alias(NAME, "challenger", "1")  # a concurrent run
        return version

    monkeypatch.setattr(job, "register_version", then_someone_else)
    result = invoke(*store["options"], *SHORT)
    assert result.exit_code == 0, result.output
    assert "(alias challenger)" not in result.output
    assert "a concurrent run has since moved it to v1" in " ".join(result.output.split())
    newest = max(registry_state(client)[0])
    client.delete_model_version(NAME, str(newest))  # leave the module's registry as it was
    client.set_registered_model_alias(NAME, "challenger", "2")


RACE = (
    "from adapters import tracking; tracking.configure_tracking(); "
    "tracking.use_experiment(tracking.WARMSTART_EXPERIMENT); print('ok')"
)


@pytest.mark.slow
def test_two_jobs_creating_a_new_store_at_once_both_succeed(tmp_path):
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE],
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outcomes = [job.communicate(timeout=300) for job in jobs]
    for process, (out, err) in zip(jobs, outcomes, strict=True):
        assert process.returncode == 0, err
        assert out.strip() == "ok"


# --- secrets, timeouts, read-only --------------------------------------------------------------


@contextmanager
def refusing_server():
    """A port on 127.0.0.1 that accepts each connection and closes it unanswered; yields the
    port and the list of connections it saw (one per HTTP attempt)."""
    seen = []
    listener = socket.create_server(("127.0.0.1", 0))

    def accept():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # the listener was closed: the test is over
                return
            seen.append(connection.getpeername())
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        thread.join()


def test_credentials_never_reach_the_output_and_an_absent_server_fails_fast(
    small_school, monkeypatch
):
    """Each command gives up after its first call's short retries (mlflow's own defaults
    retry 7 times with backoff, about four minutes per call) and names the server, redacted."""
    for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.delenv(name, raising=False)  # our short defaults apply
    attempts = {}
    with refusing_server() as (port, seen):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:s3cret@127.0.0.1:{port}")
        try:
            result = invoke(*small_school.options, *SHORT)
            attempts["warmstart"] = len(seen)
            cli = CliRunner().invoke(cli_app, ["models"])
            attempts["models"] = len(seen) - attempts["warmstart"]
        finally:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)
    for outcome in (result, cli):
        assert outcome.exit_code == 1, outcome.output
        assert "s3cret" not in outcome.output and "alice" not in outcome.output
        assert f"cannot reach the tracking server at http://***@127.0.0.1:{port}" in outcome.output
        assert f"after {tracking.HTTP_MAX_RETRIES} retries" in outcome.output
        assert "Traceback" not in outcome.output
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == str(tracking.HTTP_TIMEOUT_SECONDS)
    assert attempts == {
        "warmstart": 1 + tracking.HTTP_MAX_RETRIES,
        "models": 1 + tracking.HTTP_MAX_RETRIES,
    }
    assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"  # no "View run at"


def test_read_only_commands_create_no_folder(tmp_path, monkeypatch):
    missing = tmp_path / "not" / "there"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing / 'mlflow.db'}")
    try:
        result = CliRunner().invoke(cli_app, ["models"])
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    assert result.exit_code == 1
    assert "no MLflow store at" in result.output
    assert not (tmp_path / "not").exists()


KILLED_WARMSTART = textwrap.dedent("""
    import os, signal, sys
    from mlflow import MlflowClient
    from train.warmstart import job as warmstart_job

    def killed_after(owner, name):
        real = getattr(owner, name)
        def wrapper(*args, **kwargs):
            real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        setattr(owner, name, wrapper)

    moment = sys.argv[1]
    if moment == "run created":
        killed_after(MlflowClient, "create_run")
    elif moment == "training":
        warmstart_job._replay_with_progress = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    elif moment == "version created":  # before its pending tag is cleared and aliases move
        from mlflow.tracking._model_registry.client import ModelRegistryClient
        killed_after(ModelRegistryClient, "create_model_version")
    elif moment == "alias move":
        killed_after(MlflowClient, "set_registered_model_alias")
    from train.warmstart.cli import app
    app(sys.argv[2:])
""")


@pytest.mark.slow
def test_sigkill_at_any_moment_is_cleaned_up_by_the_next_run(client, store):
    """Four warm-starts SIGKILLed at the moments that matter, then one that finishes: no run
    is left RUNNING and no version pending (the killed runs named their process from the
    moment they existed)."""
    for moment in ("run created", "training", "version created", "alias move"):
        runs_before = all_runs(client)
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_WARMSTART, moment, *store["options"], *SHORT],
            cwd=REPO, capture_output=True, text=True, timeout=600,
            env={**os.environ, "MLFLOW_TRACKING_URI": store["uri"], "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, (moment, killed.stderr[-2000:])
        left = new_run(client, runs_before)  # (each killed job first cleaned up the last one)
        assert left.info.status == "RUNNING"
        assert left.data.tags.get(runs.PID_TAG), moment  # no pid tag before the fix
    result = invoke(*store["options"], *SHORT)
    assert result.exit_code == 0, result.output
    assert [r for r in all_runs(client).values() if r.info.status == "RUNNING"] == []
    pending = [
        v.version
        for v in client.search_model_versions(f"name = '{NAME}'")
        if registry.PENDING_TAG in v.tags
    ]
    assert pending == []
