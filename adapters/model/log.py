"""Log a trained model (:class:`skbandit.model.TrainedModel`) to MLflow and register it."""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import threading
import warnings
from contextlib import contextmanager
from importlib.metadata import version as installed_version
from pathlib import Path

import skbandit
from adapters import paths
from adapters.model.format import DATA_FOLDER, STATE_FORMAT, save_model
from adapters.registry import CHAMPION_ALIAS
from adapters.tracking import raise_if_unreachable
from skbandit import schema

TRAINED_UNTIL_TAG = "trained_until"
UNDO_FAILED = (
    "the interrupted registration could not be undone (the store did not answer): a version "
    "tagged pending may remain, which readers ignore and the next warm-start removes"
)
RUNTIME_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy")
EXAMPLE_ROWS = 5


def pip_requirements() -> list[str]:
    """The serving environment: the packages the adapter imports, pinned to this install."""
    return [f"{name}=={installed_version(name)}" for name in RUNTIME_PACKAGES]


def git_commit() -> str:
    """The code's commit, or ``unknown`` for an installed package or outside a git checkout."""
    checkout = paths.source_checkout()
    if checkout is None:  # git would name the commit of whatever repo holds site-packages
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=checkout,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def request_example(history):
    """A few candidate rows in the REST request schema, taken from the replayed history."""
    rows = history.contexts.head(EXAMPLE_ROWS).astype("float64")
    ids = history.events.head(EXAMPLE_ROWS)[[schema.USER_ID, schema.ITEM_ID]].astype(str)
    return ids.join(rows[list(schema.MODEL_INPUT)])


def optional_inputs(inputs):
    """The inferred input schema with :data:`adapters.model.requests.OPTIONAL_INPUTS` optional.

    A request may leave ``guessing`` out (it then means 0), so the signature must not make
    MLflow refuse such a request before the model sees it.
    """
    from mlflow.types import ColSpec, Schema

    from adapters.model.requests import OPTIONAL_INPUTS

    return Schema(
        [
            ColSpec(spec.type, spec.name, required=spec.name not in OPTIONAL_INPUTS)
            for spec in inputs.inputs
        ]
    )


def log_trained_model(model, history):
    """Log ``model`` to the active run as data read by installed code; return its info.

    The model's ``MLmodel`` names the loader :mod:`adapters.model.flavor` and ``data/skbandit/``
    holds ``config.json`` and ``state.npz``; no Python file, pickle or local path is stored.
    Pinned pip requirements, a signature (``guessing`` optional) and a small input example
    (from ``history``) come with it.
    """
    import mlflow
    from mlflow.models import infer_signature

    from adapters.model.flavor import LOADER_MODULE
    from adapters.model.pyfunc import LinUCBModel, decisions_not_logged, default_params

    example = request_example(history)
    params = default_params(model)
    adapter = LinUCBModel.from_model(model)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), decisions_not_logged():
        # mlflow hints that integer columns cannot hold missing values: the output's rank never does
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(example, adapter.score(example, params), params=params)
        signature.inputs = optional_inputs(signature.inputs)
        log_run_details(model, history)
        return mlflow.pyfunc.log_model(
            name="model",
            loader_module=LOADER_MODULE,
            data_path=str(save_model(model, Path(tmp) / DATA_FOLDER)),
            pip_requirements=pip_requirements(),
            signature=signature,
            input_example=(example, params),
        )


def version_tags(history) -> dict:
    """The tags that identify a registered version: the data it learned (``data_hash``;
    the job adds :func:`adapters.data.identity.identity_tags`) and until when it learned
    (:data:`TRAINED_UNTIL_TAG`); the gate adds its verdict. Everything else about the
    version (code, state format, update and event counts, metrics) is on its run
    (:func:`log_run_details`, ``final_*``), where the registry UI does not cut it off; the
    version records its run itself (``version.run_id``)."""
    return {
        "data_hash": history.data_hash,
        TRAINED_UNTIL_TAG: history.trained_until.isoformat(),
    }


RUN_DETAIL_PARAMS = ("git_commit", "skbandit_version", "state_format")
RUN_DETAIL_METRICS = ("n_updates", "events_trained")
"""What a version's run says about it beyond its tags (versions registered before the
move carry these as version tags; :func:`adapters.registry.version_details` reads both)."""


def log_run_details(model, history) -> None:
    """The code, state format and counts of the model being logged, on the active run."""
    from adapters import runs

    runs.log_params(
        {
            "git_commit": git_commit(),
            "skbandit_version": skbandit.__version__,
            "state_format": str(STATE_FORMAT),
        }
    )
    runs.log_metrics(
        {"n_updates": int(model.estimator.n_updates_), "events_trained": int(history.n_events)}
    )


def register_version(model_uri: str, name: str, alias: str | tuple[str, ...], tags: dict[str, str]):
    """Register ``model_uri`` as a new version of ``name``, tag it and point ``alias`` (one
    alias or several) at it; return the completed version.

    All or nothing. The version is created with its tags, the sha256 of every stored file and
    a ``pending`` tag (which records where the aliases pointed before); the aliases move; the
    ``pending`` tag is removed last. Any error or interruption (SIGINT, or SIGTERM turned into
    one by the job) puts the aliases back and deletes the version before it propagates;
    readers ignore a ``pending`` version, and after a SIGKILL the next warm-start removes it
    (:func:`remove_pending_versions`).
    """
    import mlflow

    from adapters import registry

    aliases = (alias,) if isinstance(alias, str) else tuple(alias)
    client = mlflow.MlflowClient()
    run = mlflow.active_run()
    run_id = tags.get("run_id") or (run.info.run_id if run is not None else "")
    pending = {"run_id": run_id, "aliases": _alias_targets(client, name, aliases)}
    tags = {
        **tags,
        registry.CHECKSUM_TAG: json.dumps(registry.stored_checksums(model_uri), sort_keys=True),
        registry.PENDING_TAG: json.dumps(pending),
    }
    try:
        created = mlflow.register_model(model_uri, name, tags=tags)
        for each in aliases:
            client.set_registered_model_alias(name, each, created.version)
        client.delete_model_version_tag(name, created.version, registry.PENDING_TAG)
    except BaseException as error:
        with signals_ignored():
            undone = _undo_registration(client, name, pending)
        if not undone:  # what the job prints must stay true
            error.add_note(UNDO_FAILED)
        raise
    return client.get_model_version(name, created.version)


def aliases_for_new_version(name: str, alias: str) -> tuple[str, ...]:
    """``alias`` plus ``champion`` when ``name`` has no champion yet (its first version).

    Raises the registry's error when it cannot be read: a failed read must not make a new
    version champion.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        current = mlflow.MlflowClient().get_registered_model(name).aliases
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        current = {}
    return (
        (alias,)
        if CHAMPION_ALIAS in current or alias == CHAMPION_ALIAS
        else (alias, CHAMPION_ALIAS)
    )


def alias_holder(name: str, alias: str) -> str | None:
    """The version ``alias`` of ``name`` points at now, or None (unset or unreadable).

    An unreachable tracking server is not "unset": it raises ``cannot reach the tracking
    server`` (a SkbanditError), so that e.g. ``compare --promote`` does not report a missing
    champion.
    """
    import mlflow

    try:
        number = mlflow.MlflowClient().get_registered_model(name).aliases.get(alias)
    except Exception as error:
        raise_if_unreachable(error)
        return None
    return None if number is None else str(number)


def remove_pending_versions(name: str, is_running) -> list[str]:
    """Delete the versions of ``name`` left ``pending`` by a registration that cannot finish
    any more (``is_running(run_id)`` is false), putting their aliases back; return their
    numbers."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from adapters import registry

    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    removed = []
    for version in versions:
        pending = registry.pending_info(version)
        if pending is None or is_running(pending.get("run_id", "")):
            continue
        _undo_registration(client, name, pending, version.version)
        removed.append(str(version.version))
    return removed


def _alias_targets(client, name: str, aliases) -> dict[str, str | None]:
    """Which version each alias points at now (None: unset, or no such model yet)."""
    from mlflow.exceptions import MlflowException

    try:
        current = client.get_registered_model(name).aliases
    except MlflowException:
        current = {}
    return {each: (str(current[each]) if each in current else None) for each in aliases}


def _undo_registration(client, name: str, pending: dict, number: str | None = None) -> bool:
    """Put the aliases back and delete the run's pending version(s); False if that failed
    (best effort: the first error is the one that propagates)."""
    numbers = [number] if number else _pending_versions_of(client, name, pending.get("run_id"))
    if numbers is None:
        return False
    undone = True
    for each in numbers:
        for alias, previous in pending.get("aliases", {}).items():
            undone &= _restore_alias(client, name, alias, previous, each)
        try:
            client.delete_model_version(name, each)
        except Exception:  # the store is the problem: keep the first error
            undone = False
    return undone


def _pending_versions_of(client, name: str, run_id: str | None) -> list[str] | None:
    from adapters import registry

    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except Exception:
        return None
    return [
        str(v.version)
        for v in versions
        if (info := registry.pending_info(v)) is not None and info.get("run_id") == run_id
    ]


def _restore_alias(client, name: str, alias: str, previous: str | None, number: str) -> bool:
    try:
        if str(client.get_registered_model(name).aliases.get(alias)) != str(number):
            return True  # the alias does not point at the version being removed
        if previous is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, previous)
    except Exception:
        return False
    return True


@contextmanager
def signals_ignored():
    """SIGINT and SIGTERM ignored inside the block (main thread only), so a second Ctrl-C
    cannot interrupt a clean-up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
