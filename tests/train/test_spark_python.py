"""Spark as a user starts it: ``/path/venv/bin/python -m ...`` without an activated venv.

The local engine's Python workers must run the driver's interpreter, not the ``python3`` of
``PATH`` (the system one, without pandas): :func:`adapters.data.spark.use_driver_python`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.data import spark
from skbandit.exceptions import SkbanditError

ROOT = Path(__file__).resolve().parents[2]


def _spark_missing() -> str | None:
    try:
        spark.check_spark_installed()
    except SkbanditError as error:
        return str(error)
    return None


def test_the_workers_python_is_the_driver_s_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    assert spark.use_driver_python() == sys.executable
    monkeypatch.setenv("PYSPARK_PYTHON", "/opt/python3.12/bin/python")
    assert spark.use_driver_python() == "/opt/python3.12/bin/python"


SCRIPT = """
import warnings
from adapters.data.spark import start_session
session = start_session("local[1]", app_name="skbandit-path-test")
def pandas_version(_):
    import sys, pandas
    return sys.executable + " " + pandas.__version__
print("WORKER", session.sparkContext.parallelize([0], 1).map(pandas_version).collect()[0])
frame = session.createDataFrame([(1, 2.0)], "a long, b double").toPandas()
print("ROWS", len(frame))
session.stop()
"""


@pytest.mark.slow
@pytest.mark.skipif(_spark_missing() is not None, reason=str(_spark_missing()))
def test_spark_starts_from_an_interpreter_that_is_not_on_path(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV")
    }
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = (
        os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir)
        or "/usr/bin:/bin"
    )
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    worker = next(line for line in result.stdout.splitlines() if line.startswith("WORKER"))
    assert worker.split()[1] == sys.executable
    assert "ROWS 1" in result.stdout
    assert "PySpark does not yet fully support pandas" not in result.stderr
    # Spark's start-up lines stay off the terminal (the log4j2 file passed to the driver JVM)
    for noise in ("log4j", "Setting default log level", "setLogLevel", " WARN "):
        assert noise not in result.stderr, result.stderr[-3000:]
