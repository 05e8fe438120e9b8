"""The only module that touches MLflow's private internals, each with a public fallback.

Checked against mlflow 3.17.2 (pyproject pins ``mlflow>=3.17,<4``); re-check on upgrade.
``tests/adapters/test_registry.py`` runs every fast path and its public fallback on a real store and
asserts they agree, so a private name that disappears fails that test loudly, while users
only get a logged warning and the (slightly slower) public path.

- the model-registry store: ``mlflow.tracking._model_registry.utils._get_store()``;
  public: ``MlflowClient()``.
- where a logged model's files are: SQL on the store's ``logged_models`` table; public:
  ``MlflowClient().get_logged_model(model_id).artifact_location``.
- which registered version a served model was loaded as: the ``registered_model_meta`` file
  mlflow writes beside ``MLmodel`` when it resolves a ``models:/`` URI; public:
  ``Model.load(folder)`` (its ``model_id`` and ``run_id``) and a registry search.

Why a fast path at all: ``MlflowClient()`` also builds the tracking store, whose SQLAlchemy
models a CLI call that only reads the registry does not otherwise need; the served model's
metadata file names the exact version (alias) it was loaded as, without a registry round trip.

A fast path that simply does not apply (a tracking server has no SQL table; a model loaded
from a folder has no metadata file) returns None and the public path answers, silently. A
fast path whose private name is missing or changed raises :class:`InternalChanged`; the
public functions here then log a warning and use the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from adapters.errors import first_line as _first_line

CHECKED_MLFLOW = "3.17.2"
"""The mlflow release these internals were last checked against."""
MLMODEL_FILE = "MLmodel"

_logger = logging.getLogger(__name__)
_T = TypeVar("_T")


class InternalChanged(RuntimeError):
    """A private MLflow name this module relies on is missing or behaves differently."""


# --- the model-registry store ------------------------------------------------------------------


def registry_store():
    """Something with ``get_registered_model``, ``get_model_version``,
    ``get_model_version_by_alias`` and ``search_model_versions`` for the current registry."""
    return _fast_or_public("the model-registry store", fast_registry_store, public_registry_store)


def fast_registry_store():
    """The registry store alone (no tracking store), through a private mlflow function."""
    try:
        from mlflow.tracking._model_registry.utils import _get_store
    except ImportError as error:
        raise InternalChanged(f"_model_registry.utils._get_store: {error}") from None
    try:
        return _get_store()
    except (AttributeError, TypeError) as error:
        raise InternalChanged(f"_model_registry.utils._get_store(): {error}") from None


def public_registry_store():
    """The public client (it also builds the tracking store)."""
    from mlflow import MlflowClient

    return MlflowClient()


# --- where a logged model's files are ----------------------------------------------------------


def logged_model_location(model_id: str) -> str:
    """The artifact location (a URI) of the MLflow 3 logged model ``model_id``.

    Raises ``MlflowException`` when there is no such model.
    """
    location = _fast_or_none("the logged model's location", fast_logged_model_location, model_id)
    return location if location is not None else public_logged_model_location(model_id)


def fast_logged_model_location(model_id: str) -> str | None:
    """Read straight from a SQL store's ``logged_models`` table; None for any other store
    or an unknown id."""
    engine = getattr(fast_registry_store(), "engine", None)
    if engine is None:  # not a SQL store (for example a tracking server): does not apply
        return None
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT artifact_location FROM logged_models WHERE model_id = :id"),
                {"id": model_id},
            ).first()
    except SQLAlchemyError as error:  # the table or column is gone: the schema changed
        raise InternalChanged(f"logged_models.artifact_location: {_first_line(error)}") from None
    return row[0] if row else None


def public_logged_model_location(model_id: str) -> str:
    from mlflow import MlflowClient

    return MlflowClient().get_logged_model(model_id).artifact_location


# --- which registered version a served model is ----------------------------------------------


def served_version(path: Path) -> tuple[str, str] | None:
    """``(name, version)`` of the registered version the model holding ``path`` was loaded
    as, or None when the registry does not know it (or cannot be reached).

    ``path`` is the model folder or any file or folder inside it.
    """
    folder = model_folder(Path(path))
    if folder is None:
        return None
    found = _fast_or_none("the served model's registered version", fast_served_version, folder)
    return found if found is not None else public_served_version(folder)


def model_folder(path: Path) -> Path | None:
    """The nearest folder at or above ``path`` holding an ``MLmodel`` file."""
    for folder in (path, *path.parents):
        if (folder / MLMODEL_FILE).is_file():
            return folder
    return None


def fast_served_version(folder: Path) -> tuple[str, str] | None:
    """Read the metadata mlflow writes beside ``MLmodel`` when it loads a ``models:/`` URI
    (alias or version); None when the model was loaded another way."""
    try:
        from mlflow.store.artifact.models_artifact_repo import REGISTERED_MODEL_META_FILE_NAME
    except ImportError as error:
        raise InternalChanged(f"REGISTERED_MODEL_META_FILE_NAME: {error}") from None
    try:
        lines = (folder / REGISTERED_MODEL_META_FILE_NAME).read_text().splitlines()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise InternalChanged(f"{REGISTERED_MODEL_META_FILE_NAME}: {error}") from None
    pairs = (line.partition(":") for line in lines)
    meta = {key.strip(): value.strip().strip("'\"") for key, sep, value in pairs if sep}
    if not (meta.get("model_name") and meta.get("model_version")):
        raise InternalChanged(f"{REGISTERED_MODEL_META_FILE_NAME} has keys {sorted(meta)}")
    return meta["model_name"], meta["model_version"]


def public_served_version(folder: Path) -> tuple[str, str] | None:
    """The registered version built from this logged model (``model_id``, else its run)."""
    from mlflow import MlflowClient
    from mlflow.models import Model

    try:
        model = Model.load(folder)
        versions = MlflowClient().search_model_versions(f"run_id = '{model.run_id}'")
    except Exception as error:  # serving must not fail because the registry is out of reach
        _logger.warning("cannot tell which registered version is served: %s", _first_line(error))
        return None
    exact = [v for v in versions if v.source == f"models:/{model.model_id}"]
    chosen = sorted(exact or versions, key=lambda v: int(v.version))
    return (chosen[0].name, str(chosen[0].version)) if chosen else None


# --- running a fast path -----------------------------------------------------------------------


def _fast_or_public(what: str, fast: Callable[[], _T], public: Callable[[], _T]) -> _T:
    try:
        return fast()
    except InternalChanged as error:
        _warn(what, error)
    return public()


def _fast_or_none(what: str, fast: Callable[..., _T | None], *args) -> _T | None:
    try:
        return fast(*args)
    except InternalChanged as error:
        _warn(what, error)
    return None


def _warn(what: str, error: InternalChanged) -> None:
    _logger.warning(
        "reading %s through the public MLflow API (slower): a private MLflow internal checked "
        "against mlflow %s changed (%s)",
        what,
        CHECKED_MLFLOW,
        error,
    )
