"""Every command in README.md runs, so the README cannot drift from the code.

Commands are the lines of the README's ```` ```sh ```` fenced blocks (a trailing backslash
continues a line; ``#`` lines are comments). They run in README order with ``bash`` in a
temporary folder (holding the files of ``tests/fixtures/*/``, so the bring-your-own-data examples
find their files), against a temporary MLflow store at ``$PWD/mlruns/mlflow.db`` and on the
small school of ``tests/conftest.py``: ``SKBANDIT_EVENTS``/``SKBANDIT_ITEMS`` point at it,
so a command without ``--events``/``--items`` takes seconds instead of the default school's
minutes (the default school itself is trained by ``tests/train/test_warmstart.py``).

Not run as written, each for a reason this test checks:

- a leading ``pip install SPEC &&`` is dropped (the package is already installed; CI's
  ``.ci/run`` installs it the same way) after checking that SPEC's extras exist;
- ``pytest`` is this suite itself;
- server commands (:data:`SERVERS`) are started with their port replaced by a free one,
  must answer HTTP within :data:`SERVER_START_S` seconds, and are then stopped;
- ``curl`` calls need such a server: :data:`CURL_COVERED_BY` names the tests that send the
  same requests to a real server.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.local_server import HOST, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SERVERS = (
    "mlflow models serve",
    "mlflow ui",
    "mlflow server",
    "skbandit serve",
    "python -m serve serve",
)
SERVER_START_S = 240.0
COMMAND_TIMEOUT_S = 600
CURL_COVERED_BY = ("tests/adapters/test_rest.py",)
PIP_INSTALL = re.compile(r"^pip install (?:-e )?(?P<spec>\S+) && ")


def readme_commands(text: str) -> list[str]:
    """The commands of the ```sh blocks: continuation lines and open quotes joined, comments
    dropped.

    >>> readme_commands("x\\n```sh\\n# c\\na \\\\\\n  b\\nc '{\\n}'\\n```\\n```\\nnot sh\\n```\\n")
    ['a b', "c '{\\n}'"]
    """
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        pending = ""
        for line in re.sub(r"\\\n\s*", "", block).splitlines():
            if not pending and (not line.strip() or line.strip().startswith("#")):
                continue
            pending = f"{pending}\n{line}" if pending else line.strip()
            try:
                shlex.split(pending)
            except ValueError:  # an open quote: the command goes on
                continue
            commands.append(pending)
            pending = ""
        assert not pending, f"unclosed quote in README command: {pending}"
    return commands


def _extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project.get("optional-dependencies", {}))


def _strip_pip_install(command: str) -> str:
    match = PIP_INSTALL.match(command)
    if match is None:
        return command
    spec = match["spec"].strip("'\"")
    extras = re.fullmatch(r"\.(?:\[(?P<extras>[\w,]+)\])?", spec)
    assert extras is not None, f"README installs {spec!r}, expected . or .[extras]"
    wanted = set(filter(None, (extras["extras"] or "").split(",")))
    assert wanted <= _extras(), f"README installs unknown extras {wanted - _extras()}"
    return command[match.end() :]


def test_the_readme_has_exactly_two_set_up_commands():
    installs = [c for c in readme_commands(README.read_text()) if c.startswith("pip install")]
    assert len(installs) == 2, installs
    assert any(c.endswith("python -m train.warmstart") for c in installs)
    assert any(c.endswith("&& pytest") for c in installs)


def test_every_readme_command_runs(tmp_path, small_school):
    work = tmp_path / "work"
    for fixture in (ROOT / "tests" / "fixtures").iterdir():  # the exports, as downloaded
        shutil.copytree(fixture, work, dirs_exist_ok=True)
    # the README's importer examples name the repository's samples by their path
    shutil.copytree(ROOT / "tests" / "fixtures", work / "tests" / "fixtures")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns' / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "SKBANDIT_EVENTS": str(small_school.events_path),
        "SKBANDIT_ITEMS": str(small_school.items_path),
        "COLUMNS": "100",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("SKBANDIT_MODEL", None)
    # mlflow.set_registry_uri() in earlier tests exports MLFLOW_REGISTRY_URI; a user running
    # the README has only MLFLOW_TRACKING_URI, so the registry must follow it
    env.pop("MLFLOW_REGISTRY_URI", None)
    commands = readme_commands(README.read_text())
    assert commands, "README.md has no ```sh blocks"
    for command in commands:
        command = _strip_pip_install(command)
        if command == "pytest" or command.startswith("pytest "):
            continue
        if command.startswith("curl "):
            assert all((ROOT / path).is_file() for path in CURL_COVERED_BY)
            continue
        if command.startswith(SERVERS):
            _server_answers(command, work, env, tmp_path / "server.log")
            continue
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=work,
            env=env,
            text=True,
            capture_output=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"


def _server_answers(command: str, cwd: Path, env: dict, log_path: Path) -> None:
    """Start a README server command on a free port; it must answer HTTP, then it stops."""
    port = free_port()
    command = re.sub(r"\s+#.*$", "", command)  # a trailing comment
    command, n = re.subn(r"(\s(?:-p|--port))\s+\d+", rf"\1 {port}", command)
    if n == 0:
        command += f" --port {port}"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            assert process.poll() is None, f"{command} exited:\n{log_path.read_text()[-3000:]}"
            try:
                urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # any HTTP answer means it is serving
            except OSError:  # uvicorn with workers logs "running on" before it listens: no
                time.sleep(0.5)  # line marks readiness, so the port is what is checked
        raise AssertionError(f"{command} did not answer in time:\n{log_path.read_text()[-3000:]}")
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
                process.wait(15)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
