"""Register a logged model as a new version, all or nothing, and the registry's alias reads.

:func:`register_version` creates the version tagged pending, moves its aliases and only then
clears the tag; an error or an interrupt (SIGINT/SIGTERM, see :func:`signals_ignored`) undoes
what it did. :func:`remove_pending_versions` clears what a killed run left behind.
"""

from __future__ import annotations

import json
import signal
import threading
from contextlib import contextmanager

from adapters.registry import CHAMPION_ALIAS
from adapters.tracking import raise_if_unreachable

UNDO_FAILED = (
    "the interrupted registration could not be undone (the store did not answer): a version "
    "tagged pending may remain, which readers ignore and the next warm-start removes"
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
