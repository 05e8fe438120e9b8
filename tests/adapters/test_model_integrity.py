"""A registered version is data read by installed code: no stored code, checksums, formats.

The store tests tamper with the session's trained store and put every byte back afterwards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

import skbandit
from adapters import registry
from adapters.model import format as model_format
from adapters.model.format import CONFIG_FILE, STATE_FILE, load_model_dir, save_model
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.model import TrainedModel

REPO = Path(__file__).resolve().parents[2]
MODEL = "skbandit-linucb"
CHAMPION = registry.parse_model_ref(f"{MODEL}@champion")


@pytest.fixture
def store(configured_store):
    return configured_store


@pytest.fixture
def stored(store):
    """The champion's stored folder; every file's bytes are restored after the test."""
    version = registry.resolve_version(CHAMPION)
    with registry._model_folder(version) as folder:
        files = {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}
        try:
            yield folder
        finally:
            for path in set(folder.rglob("*")) - set(files):
                if path.is_file():
                    path.unlink()
            for path, content in files.items():
                path.write_bytes(content)


def test_a_version_stores_data_only_and_names_no_local_source_path(stored):
    names = sorted(p.relative_to(stored).as_posix() for p in stored.rglob("*") if p.is_file())
    assert "data/skbandit/config.json" in names and "data/skbandit/state.npz" in names
    assert not [name for name in names if name.endswith((".py", ".pyc", ".pkl", ".cloudpickle"))]
    assert not (stored / "code").exists()
    mlmodel = (stored / "MLmodel").read_text()
    assert "loader_module: adapters.model.flavor" in mlmodel
    assert "model_code" not in mlmodel and str(REPO) not in mlmodel
    config = json.loads((stored / "data/skbandit/config.json").read_text())
    assert config["skbandit_version"] == skbandit.__version__
    assert config["state_format"] == model_format.STATE_FORMAT


def test_the_served_model_answers_with_its_registered_version(stored, store):
    served = mlflow.pyfunc.load_model(CHAMPION.uri)
    example = json.loads((stored / "input_example.json").read_text())
    frame = pd.DataFrame(example["inputs"]["data"], columns=example["inputs"]["columns"])
    answer = served.predict(frame, params={"top_k": 2})
    assert set(answer["model_version"]) == {f"{MODEL}/1"}


@pytest.mark.parametrize("how", ["append", "add_code"])
def test_tampering_with_any_stored_file_is_refused_and_runs_nothing(stored, tmp_path, how):
    marker = tmp_path / "stored-code-ran"
    payload = f"\nopen({str(marker)!r}, 'w')\n".encode()
    targets = [
        p for p in stored.rglob("*") if p.is_file() and p.name not in model_format.IGNORED_FILES
    ]  # mlflow's own
    if how == "add_code":  # what models-from-code used to execute on the server
        (stored / "code" / "skbandit").mkdir(parents=True)
        targets = [stored / "code" / "skbandit" / "exceptions.py"]
        targets[0].write_bytes(payload)
    assert len(targets) >= 7 or how == "add_code"
    for target in targets:
        original = target.read_bytes()
        if how == "append":
            target.write_bytes(original + payload)
        with pytest.raises(SkbanditError, match="differ from the checksums recorded") as caught:
            registry.load_model(CHAMPION)
        assert target.relative_to(stored).as_posix() in str(caught.value)
        assert "\n" not in str(caught.value)
        with pytest.raises(SkbanditError):  # the registry-checked path a server can call
            registry.verify_registered(CHAMPION)
        if target.name not in ("MLmodel",):  # a broken MLmodel fails in mlflow before us
            with pytest.raises(SkbanditError, match="differ from the checksums"):
                mlflow.pyfunc.load_model(CHAMPION.uri)
        if how == "append":
            target.write_bytes(original)
    assert not marker.exists()
    if how == "add_code":
        shutil.rmtree(stored / "code")
    registry.load_model(CHAMPION)  # restored: loads again


def test_the_cli_never_falls_back_to_pyfunc(stored, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("mlflow.pyfunc.load_model was called")

    monkeypatch.setattr(mlflow.pyfunc, "load_model", forbidden)
    (stored / "data/skbandit" / CONFIG_FILE).unlink()
    with pytest.raises(SkbanditError, match=r"data/skbandit/config.json"):
        registry.load_model(CHAMPION)


def test_a_version_without_checksums_was_registered_by_older_code(store):
    client = MlflowClient()
    version = registry.resolve_version(CHAMPION)
    recorded = version.tags[registry.CHECKSUM_TAG]
    client.delete_model_version_tag(MODEL, version.version, registry.CHECKSUM_TAG)
    try:
        with pytest.raises(SkbanditError, match=r"older skbandit.*retrain"):
            registry.load_model(CHAMPION)
    finally:
        client.set_model_version_tag(MODEL, version.version, registry.CHECKSUM_TAG, recorded)


def test_readers_ignore_a_pending_version(store):
    client = MlflowClient()
    client.set_model_version_tag(
        MODEL, "1", registry.PENDING_TAG, json.dumps({"run_id": "r", "aliases": {"champion": None}})
    )
    try:
        assert registry.list_versions(MODEL) == []
        with pytest.raises(SkbanditError, match="registration was interrupted"):
            registry.resolve_version(CHAMPION)
        with pytest.raises(SkbanditError, match="registration was interrupted"):
            registry.resolve_version(registry.parse_model_ref(f"{MODEL}/1"))
    finally:
        client.delete_model_version_tag(MODEL, "1", registry.PENDING_TAG)
    assert str(registry.resolve_version(CHAMPION).version) == "1"


# --- the two files on their own ----------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    pipeline = TrainedModel("default")
    pipeline.partial_fit(pd.DataFrame({c: [0.5, 0.2] for c in schema.MODEL_INPUT}), [1.0, 0.0])
    return save_model(pipeline, tmp_path / "skbandit"), pipeline


def _rewrite_config(folder: Path, **changes) -> None:
    path = folder / CONFIG_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_config_that_disagrees_with_its_state_is_refused_at_load(saved):
    folder, pipeline = saved
    assert load_model_dir(folder).estimator.n_features_in_ == pipeline.estimator.n_features_in_
    _rewrite_config(folder, feature_set="seed")
    with pytest.raises(
        SkbanditError,
        match=r"feature set 'seed' \(\d+ features\) but its estimator "
        r"holds a \d+-feature state",
    ):
        load_model_dir(folder, "skbandit-linucb version 9")


def test_another_state_format_is_refused_naming_both_versions(saved):
    folder, _ = saved
    _rewrite_config(folder, state_format=99, skbandit_version="7.0.0")
    with pytest.raises(SkbanditError) as caught:
        load_model_dir(folder, "skbandit-linucb version 9")
    message = str(caught.value)
    assert "skbandit 7.0.0 in state format 99" in message
    assert f"this skbandit {skbandit.__version__} reads state format " in message
    assert "retrain" in message


def test_a_models_from_code_version_is_refused_with_retrain(saved):
    folder, _ = saved
    config = json.loads((folder / CONFIG_FILE).read_text())
    for key in ("skbandit_version", "state_format"):
        del config[key]
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(SkbanditError, match=r"an older skbandit in state format 1.*retrain"):
        load_model_dir(folder)


def test_an_unreadable_state_is_one_line(saved):
    folder, _ = saved
    (folder / STATE_FILE).write_bytes(b"not a zip file")
    with pytest.raises(SkbanditError, match=r"state.npz is unreadable") as caught:
        load_model_dir(folder)
    assert "\n" not in str(caught.value)


def test_a_server_checks_the_downloaded_folder_before_mlflow_reads_it(stored, tmp_path):
    mlmodel = stored / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("code: null", "code: code"))
    version = registry.resolve_version(CHAMPION)
    with pytest.raises(SkbanditError, match=r"differ from the checksums recorded.*\(MLmodel\)"):
        registry.download_verified(version, str(tmp_path / "download"))


def test_verify_model_passes_a_good_version_and_refuses_a_planted_loader(stored, monkeypatch):
    """What plain ``mlflow models serve`` would run: ``loader_module: evil`` and ``code:``
    in MLmodel with ``code/evil.py`` added. The checksums refuse it; and were they recorded
    over the tampered files, the MLmodel check still would."""
    from typer.testing import CliRunner

    from adapters.model.check import verify_version
    from serve.cli import app as cli

    runner = CliRunner()
    good = runner.invoke(cli, ["verify-model", CHAMPION.uri])
    assert good.exit_code == 0 and "verified" in good.output, good.output
    mlmodel = stored / "MLmodel"
    mlmodel.write_text(
        mlmodel.read_text().replace(
            "loader_module: adapters.model.flavor", "loader_module: evil\n    code: code"
        )
    )
    (stored / "code").mkdir()
    (stored / "code" / "evil.py").write_text("raise SystemExit('planted code ran')\n")
    bad = runner.invoke(cli, ["verify-model", CHAMPION.uri])
    assert bad.exit_code == 1 and "differ from the checksums" in bad.output
    assert "Traceback" not in bad.output and "planted" not in bad.output
    monkeypatch.setattr(registry, "verify_stored_files", lambda *a: None)
    with pytest.raises(SkbanditError, match="names loader module 'evil'"):
        verify_version(CHAMPION)
    mlmodel.write_text(
        mlmodel.read_text().replace("loader_module: evil", "loader_module: adapters.model.flavor")
    )
    with pytest.raises(SkbanditError, match=r"has \['code'\]"):
        verify_version(CHAMPION)
