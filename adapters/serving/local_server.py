"""Run a model server on 127.0.0.1: ``mlflow models serve`` (:func:`model_server`) or
``skbandit serve`` (:func:`skbandit_server`), for the simulated deployment
(``python -m train.evaluate deploy --via rest``), tests and benchmarks.

The server runs in its own process group so that stopping it also stops its uvicorn
workers; both context managers always stop it, whatever happens inside the ``with`` block.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 20.0


class ServerError(RuntimeError):
    """The server exited or did not answer ``/ping`` in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def model_server(
    model_uri: str,
    env: dict[str, str],
    log_path: Path,
    *,
    workers: int | None = None,
    timeout: float = START_TIMEOUT_S,
) -> Iterator[str]:
    """Serve ``model_uri`` with ``--env-manager local``; yield its base URL once it answers.

    ``env`` is the server's whole environment (it must name the tracking store); the
    running interpreter's ``bin`` directory is put first on ``PATH`` so that the ``mlflow``
    and ``uvicorn`` of this installation are the ones started.
    """
    port = free_port()
    command = ["mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
               "-h", HOST, "-p", str(port)]  # fmt: skip
    if workers is not None:
        command += ["-w", str(workers)]
    with _running(command, env, log_path, port, timeout) as (url, _):
        yield url


@contextmanager
def skbandit_server(
    model_uri: str,
    env: dict[str, str],
    log_path: Path,
    *,
    workers: int = 1,
    extra: tuple[str, ...] = (),
    timeout: float = START_TIMEOUT_S,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``skbandit serve --model MODEL_URI`` on a free port; yield (base URL, process)."""
    port = free_port()
    command = [sys.executable, "-m", "serve", "serve", "--model", model_uri, "--host", HOST,
               "--port", str(port), "--workers", str(workers), *extra]  # fmt: skip
    with _running(command, env, log_path, port, timeout) as running:
        yield running


@contextmanager
def _running(command, env, log_path: Path, port: int, timeout: float):
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            env={**env, "PATH": path},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://{HOST}:{port}"
    try:
        _wait_for_ping(url, process, log_path, timeout)
        yield url, process
    finally:
        _stop(process)


def _wait_for_ping(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(
                f"server for {url} exited with {process.returncode}:\n{_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise ServerError(f"server for {url} not up after {timeout:.0f} s:\n{_tail(log_path)}")


def _stop(process: subprocess.Popen) -> None:
    """Terminate the server's process group, then kill it if it lingers."""
    if process.poll() is not None:
        try:  # the server itself is gone (killed by the test): its workers may linger
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)


def _tail(log_path: Path, n_chars: int = 3000) -> str:
    return log_path.read_text(errors="replace")[-n_chars:]
