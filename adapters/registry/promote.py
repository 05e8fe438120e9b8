"""Promotion: move ``champion`` to a version the gate passed, compare-and-set, all or nothing.

:func:`promote` moves the alias only if it still points at the champion the gate judged
(``expected``); otherwise it raises a one-line SkbanditError and nothing moves. The re-read and
the move happen under an exclusive lock (:func:`alias_lock`), so of two promotions at once
exactly one moves the alias and the other, re-reading after the first has finished, finds the
champion changed and is refused.

What the lock guarantees:

- SQLite store (the embedded default, or ``sqlite:///`` URIs): the lock is a file beside the
  database, so every skbandit process writing that store is serialized (the database is local,
  so they all run on its machine).
- Remote tracking server: the lock is a file in the temporary folder, keyed on the server's
  URI, so promotions from one machine are serialized; promotions from different machines are
  not. MLflow's REST API has no conditional alias update, so across machines the guarantee is
  only the re-read immediately before the move, and :func:`promote` reads the alias again after
  it and reports a concurrent move it sees then. Promote from one place (a scheduled job) when
  the registry is shared.

Either the alias moved and the gate's tags are on the version, or neither: an error or an
interruption (SIGINT, or SIGTERM turned into one by the job) puts the alias back and removes
the tags this promotion wrote before it propagates (as
:func:`adapters.registry.register.register_version` does for a registration).
"""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from adapters import tracking
from adapters.registry import CHAMPION_ALIAS
from adapters.registry.register import signals_ignored
from skbandit.exceptions import SkbanditError

UNDO_FAILED = (
    "the interrupted promotion could not be undone (the store did not answer): check "
    "`skbandit models` and move the champion alias back by hand if it names the candidate"
)


def alias_lock_path(registry_uri: str) -> Path:
    """The lock file that serializes alias moves on the registry at ``registry_uri``.

    >>> alias_lock_path("sqlite:////tmp/store/mlflow.db").as_posix()
    '/tmp/store/mlflow.db.aliases.lock'
    """
    database = tracking.sqlite_path(registry_uri)
    if database is not None:
        return database.with_name(database.name + ".aliases.lock")
    key = hashlib.sha256(registry_uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir(), f"skbandit-aliases-{key}.lock")


@contextmanager
def alias_lock(registry_uri: str) -> Iterator[None]:
    """Hold the exclusive alias lock of ``registry_uri`` inside the block (waits for it)."""
    path = alias_lock_path(registry_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def promote(name: str, version: str, expected: str, tags: Mapping[str, str]) -> None:
    """Point ``champion`` of ``name`` at ``version`` and write ``tags`` on it, only if the
    champion is still ``expected`` (the version the gate judged against).

    Raises a one-line SkbanditError, with nothing moved or written, when the champion has
    moved since the gate judged, and when a move seen after the write shows a concurrent
    promotion (possible only across machines on a shared tracking server; see the module).
    """
    import mlflow

    client = mlflow.MlflowClient()
    with alias_lock(mlflow.get_registry_uri()):
        now = _champion(client, name)
        if now != str(expected):
            raise SkbanditError(
                f"not promoted: {name}'s {CHAMPION_ALIAS!r} is "
                f"{'unset' if now is None else 'v' + now} now, but the gate judged v{version} "
                f"against v{expected} (another promotion moved it meanwhile); nothing moved: "
                "compare again against the new champion"
            )
        written: list[str] = []
        try:
            client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
            _write_tags(client, name, version, tags, written)
            after = _champion(client, name)
            if after != str(version):
                raise SkbanditError(
                    f"not promoted: {name}'s {CHAMPION_ALIAS!r} was moved to v{after} by "
                    "another promotion while this one moved it to "
                    f"v{version}; compare again against the new champion"
                )
        except BaseException as error:
            with signals_ignored():
                undone = _undo(client, name, version, expected, written)
            if not undone:
                error.add_note(UNDO_FAILED)
            raise


def record_decision(name: str, version: str, tags: Mapping[str, str]) -> None:
    """Write the gate's ``tags`` on ``version`` without moving any alias (a refusal); all of
    them or none."""
    import mlflow

    client = mlflow.MlflowClient()
    written: list[str] = []
    try:
        _write_tags(client, name, version, tags, written)
    except BaseException:
        with signals_ignored():
            _delete_tags(client, name, version, written)
        raise


def _champion(client, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        number = client.get_registered_model(name).aliases.get(CHAMPION_ALIAS)
    except MlflowException as error:
        tracking.raise_if_unreachable(error)
        raise
    return None if number is None else str(number)


def _write_tags(client, name: str, version: str, tags: Mapping[str, str], written: list) -> None:
    for key, value in tags.items():
        written.append(key)  # before the call: a write interrupted midway may have landed
        client.set_model_version_tag(name, version, key, value)


def _undo(client, name: str, version: str, expected: str, written: list[str]) -> bool:
    """Put the champion back on ``expected`` (if it names ``version``) and remove the tags
    written; False if the store did not answer (the first error is the one that propagates)."""
    undone = _delete_tags(client, name, version, written)
    try:
        if _champion(client, name) == str(version):
            client.set_registered_model_alias(name, CHAMPION_ALIAS, expected)
    except Exception:
        return False
    return undone


def _delete_tags(client, name: str, version: str, keys: list[str]) -> bool:
    undone = True
    for key in keys:
        try:
            client.delete_model_version_tag(name, version, key)
        except Exception:  # the store is the problem: keep the first error
            undone = False
    return undone
