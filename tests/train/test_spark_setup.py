"""Setting up the Spark engine, without starting Spark: what to install, which master, and that
the local engine never needs pyspark. These run whether or not pyspark and Java are there."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.data import spark
from skbandit.exceptions import SkbanditError

ROOT = Path(__file__).resolve().parents[2]


def test_missing_pyspark_names_the_extra_and_java(monkeypatch):
    monkeypatch.setattr(spark.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SkbanditError) as error:
        spark.check_spark_installed()
    message = str(error.value)
    assert "pyspark, which is not installed" in message and "\n" not in message
    assert "pip install -e '.[spark]'" in message and "openjdk-17-jre-headless" in message


def test_missing_or_old_java_says_what_to_install(monkeypatch):
    monkeypatch.setattr(spark.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(spark, "_java_executable", lambda: None)
    with pytest.raises(SkbanditError, match="no `java` was found"):
        spark.check_spark_installed()
    monkeypatch.setattr(spark, "_java_executable", lambda: "/opt/java8/bin/java")
    monkeypatch.setattr(spark, "java_version", lambda java: 8)
    with pytest.raises(SkbanditError, match="found Java 8 at /opt/java8/bin/java"):
        spark.check_spark_installed()


def test_java_versions_are_read_from_both_version_styles(tmp_path):
    fake = tmp_path / "java"
    for text, major in (
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
    ):
        fake.write_text(f"#!/bin/sh\necho '{text}' >&2\n")
        fake.chmod(0o755)
        assert spark.java_version(str(fake)) == major


@pytest.mark.parametrize("master", ["local", "local[2]", "local[*]", "yarn", "k8s://https://k:443"])
def test_usable_masters_pass_the_check(master):
    spark.check_master(master)


def test_an_unreachable_or_malformed_master_is_one_line():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        SkbanditError, match=f"cannot reach the Spark master spark://127.0.0.1:{port}"
    ):
        spark.check_master(f"spark://127.0.0.1:{port}")
    with pytest.raises(SkbanditError, match="is not a Spark master URL"):
        spark.check_master("localhost:7077")


def test_engine_spark_without_pyspark_fails_before_any_run(monkeypatch, tmp_path):
    from train.warmstart.cli import app

    monkeypatch.setattr(spark.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["--engine", "spark"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: --engine spark needs pyspark")
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow.db").exists()  # nothing was started


def test_local_engine_and_serving_never_import_pyspark():
    script = (
        "import sys\n"
        "import train.warmstart.cli, train.warmstart.job, train.warmstart.history\n"
        "import serve.cli, adapters.data.spark\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_cluster_runs_ship_the_project_code_to_the_executors():
    import zipfile
    from types import SimpleNamespace

    added = []
    fake = SimpleNamespace(sparkContext=SimpleNamespace(addPyFile=added.append))
    archive = spark.ship_code(fake)
    assert added == [str(archive)]
    names = set(zipfile.ZipFile(archive).namelist())
    assert {
        "skbandit/context.py",
        "train/spark/contexts.py",
        "train/spark/engine.py",
        "adapters/data/spark.py",
        "train/__init__.py",
    } <= names
