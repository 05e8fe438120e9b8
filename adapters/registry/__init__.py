"""The model registry: model references, resolving and loading a registered version, listing.

mlflow (and this package's MLflow helpers) are imported inside the functions that need them:
every command's options read the names below, so importing them must cost nothing and
``--help`` stays instant. Where the store is: :mod:`adapters.tracking`; the private MLflow
shortcuts used here (with their public fallbacks): :mod:`adapters.registry._mlflow_internals`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from skbandit.exceptions import SkbanditError

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from skbandit.model import TrainedModel

DEFAULT_MODEL_NAME = "skbandit-linucb"
"""The registered model of the default school (the name every command defaults to)."""
CHAMPION_ALIAS = "champion"
"""The alias serving reads; after a model's first version only ``compare --promote`` moves it
(:mod:`adapters.registry.promote`)."""
CHALLENGER_ALIAS = "challenger"
"""The alias a warm-start gives each new version (after the first)."""
DEFAULT_ALIAS = CHAMPION_ALIAS
DEFAULT_CHAMPION = f"{DEFAULT_MODEL_NAME}@{CHAMPION_ALIAS}"
"""``skbandit-linucb@champion``: the version every command uses by default."""

TRAIN_HINT = "run `python -m train.warmstart` to train and register one"
PENDING_TAG = "pending"
"""Set on a version while it is being registered, removed as the last step."""
CHECKSUM_TAG = "sha256"
"""A version's ``{stored file: sha256}`` (JSON), recorded at registration."""
DATA_SUBPATH = Path("data", "skbandit")
"""Where a version's config.json and state.npz are (``adapters.model.format.DATA_FOLDER``)."""


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
    or a bare ``NAME`` (meaning ``NAME@champion``, :data:`DEFAULT_ALIAS`).

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


def resolve_version(ref: ModelRef) -> ModelVersion:
    """The complete registry entry behind ``ref``; a one-line SkbanditError if there is none.

    A version whose registration was interrupted (tagged ``pending``) is never returned: an
    alias that was moved onto one resolves to the version it pointed at before.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from adapters.registry import _mlflow_internals as mlflow_internals
    from adapters.tracking import raise_if_unreachable, redact_uri

    store = mlflow_internals.registry_store()
    try:
        store.get_registered_model(ref.name)
    except MlflowException as error:
        raise_if_unreachable(error)
        raise SkbanditError(
            f"no registered model {ref.name!r} in {redact_uri(mlflow.get_registry_uri())}; "
            f"{TRAIN_HINT}"
        ) from None
    try:
        if ref.version is not None:
            version = store.get_model_version(ref.name, ref.version)
        else:
            version = store.get_model_version_by_alias(ref.name, ref.alias)
    except MlflowException as error:
        raise_if_unreachable(error)
        what = f"version {ref.version}" if ref.version else f"alias {ref.alias!r}"
        raise SkbanditError(
            f"model {ref.name!r} has no {what}; see `skbandit models` for what exists, "
            f"or {TRAIN_HINT}"
        ) from None
    pending = pending_info(version)
    if pending is None:
        return version
    previous = pending.get("aliases", {}).get(ref.alias) if ref.alias else None
    if previous:
        return resolve_version(ModelRef(ref.name, version=str(previous)))
    raise SkbanditError(
        f"{ref} is version {version.version}, whose registration was interrupted (tag "
        f"{PENDING_TAG}); the next `python -m train.warmstart` removes it: use another version "
        "(see `skbandit models`)"
    )


def registry_version(name: str, number: str) -> ModelVersion:
    """Version ``number`` of ``name`` (any state); a one-line SkbanditError if missing."""
    from mlflow.exceptions import MlflowException

    from adapters.registry import _mlflow_internals as mlflow_internals
    from adapters.tracking import raise_if_unreachable

    try:
        return mlflow_internals.registry_store().get_model_version(name, number)
    except MlflowException as error:
        raise_if_unreachable(error)
        raise SkbanditError(f"model {name!r} has no version {number}; {TRAIN_HINT}") from None


def pending_info(version: ModelVersion) -> dict | None:
    """What an interrupted registration recorded (``run_id``, ``aliases`` before), or None
    for a complete version."""
    text = (version.tags or {}).get(PENDING_TAG)
    if text is None:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def load_model(ref: ModelRef) -> tuple[TrainedModel, ModelVersion]:
    """Load the :class:`~skbandit.model.TrainedModel` of a registered version, and the version.

    Reads the version's ``config.json`` and ``state.npz`` (see :mod:`adapters.model.format`)
    after checking every stored file against the checksums recorded at registration. Never
    goes through ``mlflow.pyfunc.load_model``: nothing stored with a version is executed, and
    a version that cannot be read this way is refused with a one-line error.
    """
    from adapters.model.format import load_model_dir

    version = resolve_version(ref)
    what = f"{version.name} version {version.version}"
    with _model_folder(version) as folder:
        verify_stored_files(version, folder)
        return load_model_dir(folder / DATA_SUBPATH, what), version


def verify_registered(ref: ModelRef) -> ModelVersion:
    """The version behind ``ref`` after checking its stored files (for a server to call
    before it lets mlflow load ``models:/NAME/VERSION``: a modified ``MLmodel`` could
    otherwise point mlflow at stored code)."""
    version = resolve_version(ref)
    with _model_folder(version) as folder:
        verify_stored_files(version, folder)
    return version


def download_verified(version: ModelVersion, dst_path: str) -> str:
    """Download a version's model folder into ``dst_path`` and check it against the recorded
    checksums; return the folder (for ``mlflow.pyfunc.load_model``: check before mlflow
    reads ``MLmodel``)."""
    from mlflow.artifacts import download_artifacts

    folder = download_artifacts(f"models:/{version.name}/{version.version}", dst_path=dst_path)
    verify_stored_files(version, Path(folder))
    return folder


@contextmanager
def verified_download(version: ModelVersion, prefix: str = "skbandit-model-") -> Iterator[str]:
    """:func:`download_verified` into a temporary folder, removed when the block ends."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield download_verified(version, folder)


def verify_stored_files(version: ModelVersion, folder: Path) -> None:
    """Refuse a pending version, one without recorded checksums (registered before
    checksums existed) or one whose stored files changed since registration."""
    from adapters.model.format import RETRAIN_HINT, verify_checksums

    what = f"{version.name} version {version.version}"
    if pending_info(version) is not None:
        raise SkbanditError(
            f"refusing to load {what}: its registration was interrupted (tag {PENDING_TAG}); "
            "the next `python -m train.warmstart` removes it"
        )
    recorded = (version.tags or {}).get(CHECKSUM_TAG)
    try:
        expected = json.loads(recorded) if recorded else None
    except ValueError:
        expected = None
    if not isinstance(expected, dict):
        raise SkbanditError(
            f"cannot load {what}: it has no {CHECKSUM_TAG} tag, so it was registered by an "
            f"older skbandit that stored code with the model; {RETRAIN_HINT}"
        )
    verify_checksums(folder, expected, what)


def stored_checksums(source: str) -> dict[str, str]:
    """sha256 of every file of the logged model at ``source`` (``models:/m-...``)."""
    from adapters.model.format import file_checksums

    with _model_folder_at(_location_of(source)) as folder:
        return file_checksums(folder)


@contextmanager
def _model_folder(version: ModelVersion) -> Iterator[Path]:
    source = getattr(version, "storage_location", None) or version.source
    if not source:
        raise SkbanditError(f"version {version.version} of {version.name!r} names no stored model")
    with _model_folder_at(_location_of(source)) as folder:
        yield folder


def _location_of(source: str) -> str:
    """Where a model's folder is (``file://...`` for a local store)."""
    from adapters.registry import _mlflow_internals as mlflow_internals

    if source.startswith("models:/m-"):  # an MLflow 3 logged model: look up its location
        return mlflow_internals.logged_model_location(source.removeprefix("models:/"))
    return source


@contextmanager
def _model_folder_at(location: str) -> Iterator[Path]:
    """The model folder: a local store's in place, a remote store's downloaded (and removed)."""
    folder = _local_folder(location)
    if folder is not None:
        yield folder
        return
    import tempfile

    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory(prefix="skbandit-model-") as tmp:
        yield Path(download_artifacts(artifact_uri=location, dst_path=tmp))


def _local_folder(uri: str) -> Path | None:
    """The folder of a local ``file://`` URI (or plain path) that exists, else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and not parsed.netloc:
        from urllib.request import url2pathname

        folder = Path(url2pathname(parsed.path))
    elif not parsed.scheme:
        folder = Path(uri)
    else:
        return None
    return folder if folder.is_dir() else None


def version_info(version: ModelVersion, ref: ModelRef, model: TrainedModel) -> dict:
    """What the CLI's footer and JSON say about the model that answered."""
    estimator = model.estimator
    return {
        "name": version.name,
        "version": int(version.version),
        "alias": ref.alias or ", ".join(version.aliases or []),
        "updates": int(estimator.n_updates_),
        "alpha": float(estimator.alpha),
        "feature_set": version.tags.get("feature_set") or model.feature_set,
    }


def list_versions(name: str) -> list[dict]:
    """Every registered version of ``name``, newest first, with aliases, size and metrics."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from adapters.registry import _mlflow_internals as mlflow_internals
    from adapters.tracking import raise_if_unreachable, redact_uri

    store = mlflow_internals.registry_store()
    try:
        aliases = store.get_registered_model(name).aliases
    except MlflowException as error:
        raise_if_unreachable(error)
        raise SkbanditError(
            f"no registered model {name!r} in {redact_uri(mlflow.get_registry_uri())}; {TRAIN_HINT}"
        ) from None
    by_version: dict[str, list[str]] = {}
    for alias, number in aliases.items():
        by_version.setdefault(str(number), []).append(alias)
    rows = []
    for version in store.search_model_versions(f"name = '{name}'"):
        if pending_info(version) is not None:
            continue  # an interrupted registration: not a version anyone can use
        details = version_details(version)
        rows.append(
            {
                "version": int(version.version),
                "aliases": sorted(by_version.get(str(version.version), [])),
                "created": _utc(version.creation_timestamp),
                "events_trained": details["events_trained"],
                "updates": details["n_updates"],
                "feature_set": details["feature_set"],
                "metrics": details["metrics"],
                "run_id": details["run_id"],
            }
        )
    return sorted(rows, key=lambda row: row["version"], reverse=True)


def version_details(version: ModelVersion) -> dict:
    """What a version's run records about it: ``events_trained``, ``n_updates``,
    ``feature_set``, ``run_id`` and its final ``metrics``.

    Versions tag only what identifies them (data, trained until, gate verdict); versions
    registered before that carried these as tags (and metrics as ``metric.*``), which win.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    tags = version.tags or {}
    run_id = tags.get("run_id") or version.run_id or ""
    params: dict = {}
    metrics: dict = {}
    if run_id:
        try:
            data = mlflow.MlflowClient().get_run(run_id).data
            params, metrics = data.params, data.metrics
        except MlflowException:  # the run was deleted: the version still lists
            pass
    tagged = {
        key.removeprefix("metric."): float(value)
        for key, value in tags.items()
        if key.startswith("metric.")
    }
    final = {
        key.removeprefix("final_"): float(value)
        for key, value in metrics.items()
        if key.startswith("final_") and not key.startswith("final_after_first_batch_")
    }
    return {
        "events_trained": int(float(tags.get("events_trained", metrics.get("events_trained", 0)))),
        "n_updates": int(float(tags.get("n_updates", metrics.get("n_updates", 0)))),
        "feature_set": tags.get("feature_set", params.get("feature_set", "")),
        "run_id": run_id,
        "metrics": tagged or final,
    }


def _utc(milliseconds: int) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
