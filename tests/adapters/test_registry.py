"""Model references, loading registered versions, and the pyfunc adapter's request checks."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from adapters import registry
from adapters import tracking as tracking_store
from adapters.model.pyfunc import LinUCBModel
from adapters.model.requests import (
    MAX_REQUEST_ROWS,
    check_params,
    check_request,
    default_params,
)
from adapters.registry import _mlflow_internals as mlflow_internals
from skbandit import schema
from skbandit.exceptions import SkbanditError

MODEL = registry.DEFAULT_MODEL_NAME


@pytest.mark.parametrize(
    ("text", "uri"),
    [
        ("skbandit-linucb", "models:/skbandit-linucb@champion"),
        ("skbandit-linucb@challenger", "models:/skbandit-linucb@challenger"),
        ("skbandit-linucb/3", "models:/skbandit-linucb/3"),
        ("models:/skbandit-linucb/3", "models:/skbandit-linucb/3"),
        ("models:/skbandit-linucb@champion", "models:/skbandit-linucb@champion"),
    ],
)
def test_parse_model_ref(text, uri):
    assert registry.parse_model_ref(text).uri == uri


@pytest.mark.parametrize("text", ["a@b@c", "name/latest", "", "models:/"])
def test_parse_model_ref_refuses_garbage(text):
    with pytest.raises(SkbanditError, match="expected NAME@ALIAS or NAME/VERSION"):
        registry.parse_model_ref(text)


def test_sqlite_path():
    assert str(tracking_store.sqlite_path("sqlite:////tmp/s/mlflow.db")) == "/tmp/s/mlflow.db"
    assert str(tracking_store.sqlite_path("sqlite:///rel/mlflow.db")) == "rel/mlflow.db"
    assert tracking_store.sqlite_path("http://127.0.0.1:5000") is None


@pytest.fixture
def tracking(store_env):
    tracking_store.configure_tracking()
    return store_env


def _state(pipeline) -> dict:
    return pipeline.estimator.get_state()


def test_fast_load_equals_pyfunc_load(tracking, monkeypatch):
    ref = registry.parse_model_ref("skbandit-linucb@champion")
    fast, version = registry.load_model(ref)
    import mlflow

    served = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")
    slow = served.get_raw_model().model  # what mlflow models serve scores with
    monkeypatch.setattr(mlflow_internals, "fast_logged_model_location", lambda model_id: None)
    via_client, _ = registry.load_model(ref)  # artifact location from the tracking client
    for other in (slow, via_client):
        for key, value in _state(fast).items():
            np.testing.assert_array_equal(value, _state(other)[key])
    assert (version.name, int(version.version)) == ("skbandit-linucb", 1)
    assert registry.version_details(version)["events_trained"] == len(tracking.school.events)
    assert "events_trained" not in version.tags  # on the run, not the version
    for loaded in (fast, slow):  # the whole version, learned extras included
        assert loaded.get_state()["calibration"] == fast.get_state()["calibration"]
        assert loaded.item_parameters.equals(fast.item_parameters)


def test_resolve_version_errors_say_what_to_do(tracking):
    with pytest.raises(SkbanditError, match=r"has no alias 'nope'.*python -m train.warmstart"):
        registry.resolve_version(registry.parse_model_ref("skbandit-linucb@nope"))
    with pytest.raises(SkbanditError, match=r"no registered model 'ghost'"):
        registry.resolve_version(registry.parse_model_ref("ghost"))


def test_list_versions(tracking):
    (row,) = registry.list_versions("skbandit-linucb")
    assert row["version"] == 1
    assert row["aliases"] == ["challenger", "champion"]
    assert row["feature_set"] == "default"
    assert {"bandit_log_loss", "bandit_auc"} <= set(row["metrics"])


# --- the pyfunc adapter's request checks (what the REST server answers with 400) ----------


@pytest.fixture
def frame() -> pd.DataFrame:
    row = {
        schema.USER_ID: "u1",
        schema.ITEM_ID: "i1",
        **{column: 0.5 for column in schema.MODEL_INPUT},
        schema.ITEM_ATTEMPTS: 3.0,
    }
    return pd.DataFrame([row, {**row, schema.ITEM_ID: "i2", schema.DIFFICULTY: 1.0}])


def test_check_request_accepts_and_normalises(frame):
    out = check_request(frame.assign(user_id=7))
    assert out[schema.USER_ID].tolist() == ["7", "7"]
    assert out[schema.MASTERY].dtype == np.float64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({schema.MASTERY: [np.nan, 0.5]}, "'mastery' has a null in row 0"),
        ({schema.MASTERY: [0.5, None]}, "'mastery' has a null in row 1"),
        ({schema.DIFFICULTY: [np.inf, 0.0]}, "'difficulty' must be a finite number"),
        ({schema.MASTERY: ["high", 0.5]}, "'mastery' must be numeric; row 0 has 'high'"),
        ({schema.ITEM_ACCURACY: [0.5, 1.2]}, r"'item_accuracy' must lie in \[0.0, 1.0\]"),
        ({schema.ITEM_ATTEMPTS: [-1.0, 0.0]}, "'item_attempts' must lie in"),
        ({schema.ITEM_ID: [None, "i2"]}, "'item_id' has a null in row 0"),
    ],
)
def test_check_request_refuses_bad_values(frame, change, message):
    with pytest.raises(SkbanditError, match=message):
        check_request(frame.assign(**change))


def test_check_request_refuses_empty_missing_and_too_many(frame):
    with pytest.raises(SkbanditError, match="no rows"):
        check_request(frame.iloc[:0])
    with pytest.raises(SkbanditError, match=r"missing columns \['skill_gap'\]"):
        check_request(frame.drop(columns=[schema.SKILL_GAP]))
    big = frame.sample(MAX_REQUEST_ROWS + 1, replace=True, random_state=0)
    with pytest.raises(SkbanditError, match=f"at most {MAX_REQUEST_ROWS}"):
        check_request(big)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"top_k": 0}, "top_k must be a positive integer"),
        ({"top_k": True}, "top_k must be a positive integer"),
        ({"seed": -2}, "seed must be a non-negative integer"),  # -1 means unseeded
        ({"alpha": -0.5}, "alpha must lie in"),
        ({"alpha": float("nan")}, "alpha must lie in"),
        ({"target": 1.5}, "target must lie in"),
        ({"temperature": 0.0}, "temperature must be at least 0.01"),
        ({"alpha": "wide"}, "alpha must be a number"),
    ],
)
def test_check_params(change, message):
    params = {"top_k": 5, "seed": 0, "alpha": 1.0, "target": 0.7, "temperature": 0.05}
    with pytest.raises(SkbanditError, match=message):
        check_params({**params, **change})


def test_predict_turns_every_failure_into_a_bad_request(tracking, frame):
    pipeline, _ = registry.load_model(registry.parse_model_ref("skbandit-linucb"))
    model = LinUCBModel.from_model(pipeline, "skbandit-linucb/1")
    out = model.predict(None, frame)
    assert out["model_version"].tolist() == ["skbandit-linucb/1"] * 2
    greedy = {"objective": "max_success", "exploration": "greedy", "epsilon": 0.0}
    ranked = model.predict(None, frame, greedy)  # REST explores by default: ask for greedy
    assert ranked["ucb"].nunique() == 2  # the rows differ in difficulty: no tie to break
    best_first = ranked["ucb"].rank(ascending=False).astype(int).tolist()
    assert ranked[schema.RANK].tolist() == best_first
    for bad, params in [
        (frame.assign(mastery=np.nan), None),
        (frame, {"exploration": "boltzmann"}),
        (frame, {"top_k": "many"}),
    ]:
        with pytest.raises(MlflowException) as caught:
            model.predict(None, bad, params)
        assert caught.value.get_http_status_code() == 400
    assert default_params(pipeline)["alpha"] == pipeline.estimator.alpha


# --- MLflow internals: each fast (private) path against its public fallback ----------------
# A private name that disappears makes the fast_* calls below raise InternalChanged: these
# tests then fail, while users get a warning and the public path (the *_falls_back tests).


def _internal_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == mlflow_internals.__name__ and r.levelno == logging.WARNING
    ]


def test_registry_store_fast_and_public_agree(tracking):
    fast, public = mlflow_internals.fast_registry_store(), mlflow_internals.public_registry_store()
    assert type(fast).__name__ != "MlflowClient"  # the fast path really is the bare store
    for store in (fast, public):
        assert int(store.get_model_version_by_alias(MODEL, "challenger").version) == 1
    listed = [
        sorted(
            (v.name, int(v.version), v.source)
            for v in store.search_model_versions(f"name = '{MODEL}'")
        )
        for store in (fast, public)
    ]
    assert listed[0] == listed[1] and len(listed[0]) == 1


def test_registry_store_falls_back_with_a_warning(tracking, monkeypatch, caplog):
    fast_rows = registry.list_versions(MODEL)
    import mlflow.tracking._model_registry.utils as private

    original = private._get_store

    def changed(store_uri, tracking_uri=None):  # the client passes both; we passed none
        return original(store_uri, tracking_uri)

    monkeypatch.setattr(private, "_get_store", changed)
    with caplog.at_level(logging.WARNING):
        assert registry.list_versions(MODEL) == fast_rows
    (message,) = _internal_warnings(caplog)
    assert "model-registry store" in message and "_get_store()" in message


def test_logged_model_location_fast_and_public_agree(tracking):
    source = registry.resolve_version(registry.parse_model_ref(MODEL)).source
    model_id = source.removeprefix("models:/")
    fast = mlflow_internals.fast_logged_model_location(model_id)
    assert fast is not None and fast.startswith("file://")
    assert fast == mlflow_internals.public_logged_model_location(model_id)
    assert mlflow_internals.fast_logged_model_location("m-no-such-model") is None


def test_logged_model_location_falls_back_with_a_warning(tracking, monkeypatch, caplog):
    from sqlalchemy import create_engine

    model_id = registry.resolve_version(registry.parse_model_ref(MODEL)).source[len("models:/") :]
    expected = mlflow_internals.public_logged_model_location(model_id)

    class RenamedSchema:  # a SQL store whose tables are not where we look
        engine = create_engine("sqlite://")

    monkeypatch.setattr(mlflow_internals, "fast_registry_store", RenamedSchema)
    with caplog.at_level(logging.WARNING):
        assert mlflow_internals.logged_model_location(model_id) == expected
    (message,) = _internal_warnings(caplog)
    assert "logged_models" in message


@pytest.fixture
def served_folder(tracking, tmp_path):
    """The champion downloaded the way ``mlflow models serve -m models:/...`` gets it."""
    import mlflow

    local = mlflow.artifacts.download_artifacts(f"models:/{MODEL}@champion", dst_path=tmp_path)
    return tmp_path, Path(local)


def test_served_version_fast_and_public_agree(served_folder, caplog):
    _, folder = served_folder
    fast = mlflow_internals.fast_served_version(folder)
    assert fast == (MODEL, "1")
    assert mlflow_internals.public_served_version(folder) == fast
    with caplog.at_level(logging.WARNING):  # any file inside the model folder will do
        assert mlflow_internals.served_version(folder / "data" / "skbandit" / "config.json") == fast
    assert _internal_warnings(caplog) == []


def test_served_version_falls_back_with_a_warning(served_folder, monkeypatch, caplog):
    import mlflow.store.artifact.models_artifact_repo as private

    _, folder = served_folder
    monkeypatch.delattr(private, "REGISTERED_MODEL_META_FILE_NAME")
    with caplog.at_level(logging.WARNING):
        assert mlflow_internals.served_version(folder) == (MODEL, "1")
    (message,) = _internal_warnings(caplog)
    assert "REGISTERED_MODEL_META_FILE_NAME" in message


def test_served_version_without_metadata_asks_the_registry_quietly(served_folder, caplog):
    tmp_path, folder = served_folder
    (folder / "registered_model_meta").unlink()  # loaded from a folder, not a models:/ URI
    with caplog.at_level(logging.WARNING):
        assert mlflow_internals.served_version(folder) == (MODEL, "1")
        assert mlflow_internals.served_version(tmp_path.parent) is None  # no MLmodel above
    assert _internal_warnings(caplog) == []
