"""A throwaway PostgreSQL server on 127.0.0.1 for tests (Debian's ``postgresql`` package).

:func:`local_postgres` runs ``initdb`` and ``pg_ctl`` in a temporary folder (as the
``postgres`` user when the tests run as root, since PostgreSQL refuses to run as root) and
always stops the server and removes the folder. It raises :class:`Unavailable` when the
server binaries or the Python driver are missing, so that a test can skip with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.local_server import HOST, free_port

USER = "skbandit"


class Unavailable(RuntimeError):
    """PostgreSQL cannot be started here; the message says what to install."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise Unavailable(f"PostgreSQL server binary {name} not found: apt-get install postgresql")
    return found


@contextmanager
def local_postgres() -> Iterator[str]:
    """Start a server; yield a SQLAlchemy URL for its ``postgres`` database."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable("psycopg is not installed: pip install -e '.[postgres]'") from None
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    folder = Path(tempfile.mkdtemp(prefix="skbandit-pg-"))
    if as_root:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()

    def run(*args):
        return subprocess.run(
            [*prefix, *args], check=True, capture_output=True, text=True, timeout=120
        )

    try:
        run(initdb, "-D", str(data), "-A", "trust", "-U", USER, "--no-sync")
        options = f"-p {port} -k {folder} -c listen_addresses={HOST} -c fsync=off"
        run(pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")
    except subprocess.CalledProcessError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise Unavailable(f"cannot start PostgreSQL: {error.stderr.strip()[-300:]}") from None
    try:
        yield f"postgresql://{USER}@{HOST}:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)
