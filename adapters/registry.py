"""The model registry: model references, resolving and loading a registered version, listing.

mlflow is imported inside the functions that need it, so that ``--help`` of every command
stays instant. Where the store is: :mod:`adapters.tracking`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from skbandit.exceptions import SkbanditError

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from sklearn.pipeline import Pipeline

DEFAULT_MODEL_NAME = "skbandit-linucb"
DEFAULT_ALIAS = "champion"

TRAIN_HINT = "run `python -m train.warmstart` to train and register one"


@dataclass(frozen=True)
class ModelRef:
    """A registered model version by alias (``NAME@ALIAS``) or number (``NAME/VERSION``)."""

    name: str
    alias: str | None = None
    version: str | None = None

    @property
    def uri(self) -> str:
        """The ``models:/`` URI mlflow understands."""
        if self.version is not None:
            return f"models:/{self.name}/{self.version}"
        return f"models:/{self.name}@{self.alias}"

    def __str__(self) -> str:
        return self.uri.removeprefix("models:/")


_REF = re.compile(r"^(?:models:/)?(?P<name>[^@/]+)(?:@(?P<alias>[^@/]+)|/(?P<version>\d+))?$")


def parse_model_ref(text: str) -> ModelRef:
    """Parse ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``NAME@ALIAS``, ``NAME/VERSION``
    or a bare ``NAME`` (meaning ``NAME@champion``).

    >>> parse_model_ref("models:/skbandit-linucb/3").uri
    'models:/skbandit-linucb/3'
    """
    match = _REF.match(text.strip())
    if match is None:
        raise SkbanditError(
            f"cannot read model reference {text!r}: expected NAME@ALIAS or NAME/VERSION, "
            f"for example {DEFAULT_MODEL_NAME}@{DEFAULT_ALIAS}"
        )
    alias, version = match["alias"], match["version"]
    if alias is None and version is None:
        alias = DEFAULT_ALIAS
    return ModelRef(match["name"], alias=alias, version=version)


def _registry_store():
    """The model-registry store alone.

    ``MlflowClient()`` also builds the tracking store, whose SQLAlchemy models cost about a
    second to import; reading the registry needs none of it.
    """
    from mlflow.tracking._model_registry.utils import _get_store

    return _get_store()


def resolve_version(ref: ModelRef) -> ModelVersion:
    """The registry entry behind ``ref``; a one-line SkbanditError if there is none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    store = _registry_store()
    try:
        store.get_registered_model(ref.name)
    except MlflowException:
        raise SkbanditError(
            f"no registered model {ref.name!r} in {mlflow.get_registry_uri()}; {TRAIN_HINT}"
        ) from None
    try:
        if ref.version is not None:
            return store.get_model_version(ref.name, ref.version)
        return store.get_model_version_by_alias(ref.name, ref.alias)
    except MlflowException:
        what = f"version {ref.version}" if ref.version else f"alias {ref.alias!r}"
        raise SkbanditError(
            f"model {ref.name!r} has no {what}; see `skbandit models` for what exists, "
            f"or {TRAIN_HINT}"
        ) from None


def load_pipeline(ref: ModelRef) -> tuple[Pipeline, ModelVersion]:
    """Load the fitted skbandit pipeline of a registered version, and the version itself.

    Reads the version's two small artifacts (``config.json``, ``state.npz``, see
    :mod:`adapters.model_format`) rather than going through ``mlflow.pyfunc.load_model``: the
    same pipeline, without importing ``mlflow.pyfunc``, putting the model's copied code on
    ``sys.path`` or checking pip requirements (together about two seconds per CLI call).
    """
    from mlflow.exceptions import MlflowException

    from adapters.model_format import CONFIG_FILE, STATE_FILE, load_pipeline_files

    version = resolve_version(ref)
    try:
        folder = _download(f"{_artifact_root(version)}/artifacts")
        return load_pipeline_files(folder / CONFIG_FILE, folder / STATE_FILE), version
    except (MlflowException, OSError, KeyError, ValueError):
        pass  # not the layout adapters.model_code writes: let pyfunc find the files
    return _load_with_pyfunc(version), version


def _artifact_root(version: ModelVersion) -> str:
    """Where the version's model files are (``file://...`` for a local store)."""
    source = getattr(version, "storage_location", None) or version.source
    if source.startswith("models:/m-"):  # an MLflow 3 logged model: look up its location
        location = _logged_model_location(source.removeprefix("models:/"))
        if location:
            return location
        from mlflow import MlflowClient

        return MlflowClient().get_model_version_download_uri(version.name, version.version)
    return source


def _logged_model_location(model_id: str) -> str | None:
    """A logged model's artifact location read straight from a SQL store, else None.

    Saves building the tracking store for one lookup; any other store (or any surprise in
    the table) falls back to the client.
    """
    try:
        from sqlalchemy import text

        engine = _registry_store().engine
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT artifact_location FROM logged_models WHERE model_id = :id"),
                {"id": model_id},
            ).first()
    except Exception:  # not a SQL store, or another schema: use the client instead
        return None
    return row[0] if row else None


def _download(uri: str) -> Path:
    """A local folder with the files at ``uri`` (no copy for a local ``file://`` store)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and not parsed.netloc:
        from urllib.request import url2pathname

        folder = Path(url2pathname(parsed.path))
        if folder.is_dir():
            return folder
    from mlflow.artifacts import download_artifacts

    return Path(download_artifacts(artifact_uri=uri))


def _load_with_pyfunc(version: ModelVersion) -> Pipeline:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow.pyfunc.load_model(
            f"models:/{version.name}/{version.version}", suppress_warnings=True
        )
        return model.unwrap_python_model().pipeline
    except (MlflowException, OSError, AttributeError) as error:
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise SkbanditError(
            f"cannot load {version.name} version {version.version} ({first_line}); {TRAIN_HINT}"
        ) from None


def version_info(version: ModelVersion, ref: ModelRef, pipeline: Pipeline) -> dict:
    """What the CLI's footer and JSON say about the model that answered."""
    estimator = pipeline[-1]
    return {
        "name": version.name,
        "version": int(version.version),
        "alias": ref.alias or ", ".join(version.aliases or []),
        "updates": int(estimator.n_updates_),
        "alpha": float(estimator.alpha),
        "feature_set": version.tags.get("feature_set", ""),
    }


def list_versions(name: str) -> list[dict]:
    """Every registered version of ``name``, newest first, with aliases, size and metrics."""
    import mlflow
    from mlflow.exceptions import MlflowException

    store = _registry_store()
    try:
        aliases = store.get_registered_model(name).aliases
    except MlflowException:
        raise SkbanditError(
            f"no registered model {name!r} in {mlflow.get_registry_uri()}; {TRAIN_HINT}"
        ) from None
    by_version: dict[str, list[str]] = {}
    for alias, number in aliases.items():
        by_version.setdefault(str(number), []).append(alias)
    rows = []
    for version in store.search_model_versions(f"name = '{name}'"):
        tags = version.tags
        rows.append(
            {
                "version": int(version.version),
                "aliases": sorted(by_version.get(str(version.version), [])),
                "created": _utc(version.creation_timestamp),
                "events_trained": int(tags.get("events_trained", 0)),
                "updates": int(tags.get("n_updates", 0)),
                "feature_set": tags.get("feature_set", ""),
                "metrics": {
                    key.removeprefix("metric."): float(value)
                    for key, value in tags.items()
                    if key.startswith("metric.")
                },
                "run_id": tags.get("run_id", version.run_id),
            }
        )
    return sorted(rows, key=lambda row: row["version"], reverse=True)


def _utc(milliseconds: int) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
