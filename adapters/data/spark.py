"""Spark I/O: checking the install, starting a session, reading parquet tables.

Only the Spark engine imports this module (``--engine spark``, ``train.batch_score``); the
local engine never imports pyspark. pyspark is the optional extra ``spark``
(``pip install -e '.[spark]'``) and needs Java 17 or newer on the driver.

Row order: a table read from several parquet files is in file-name order, rows in file
order (as ``pandas.read_parquet`` of a directory), so ties in time keep that order on every
engine. :func:`read_parquet` returns it as the column :data:`ROW_ORDER`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from adapters.errors import first_line as _first_line
from skbandit.exceptions import SkbanditError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

INSTALL_HINT = (
    "install the Spark extra with `pip install -e '.[spark]'` (or `pip install pyspark`) and "
    "Java 17 (on Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`)"
)
MIN_JAVA = 17
ROW_ORDER = "_row_order"
"""Position of a row in its table: file index (name order) * 2**40 + row index in the file."""
_FILE_SHIFT = 1 << 40
_LOCAL_MASTER = re.compile(r"^local(\[(\*|\d+)(,\s*\d+)?\])?$")
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # pandas writes nanosecond timestamps, which Spark reads only as int64 nanoseconds
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}


def check_spark_installed() -> None:
    """Raise a one-line error naming what to install if pyspark or Java is missing."""
    if importlib.util.find_spec("pyspark") is None:
        raise SkbanditError(f"--engine spark needs pyspark, which is not installed; {INSTALL_HINT}")
    java = _java_executable()
    if java is None:
        raise SkbanditError(
            f"--engine spark needs Java {MIN_JAVA}+, but no `java` was found on "
            f"PATH or in JAVA_HOME; {INSTALL_HINT}"
        )
    version = java_version(java)
    if version is not None and version < MIN_JAVA:
        raise SkbanditError(
            f"--engine spark needs Java {MIN_JAVA}+, found Java {version} at "
            f"{java}; {INSTALL_HINT} and point JAVA_HOME at it"
        )


def java_version(java: str) -> int | None:
    """The major version ``java -version`` reports (``None`` if it cannot be read)."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        return None
    major = int(match[1])
    return int(match[2]) if major == 1 and match[2] else major  # "1.8" is Java 8


def _java_executable() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def check_master(master: str) -> None:
    """Refuse a master URL Spark would only fail on after a minute of retries.

    ``local``, ``local[N]`` and ``local[*]`` are always fine; ``spark://host:port`` must
    accept a TCP connection within 5 s; other schemes (``yarn``, ``k8s://``) go to Spark.
    """
    if _LOCAL_MASTER.match(master):
        return
    if master.startswith("spark://"):
        for hostport in master[len("spark://") :].split(","):
            host, _, port = hostport.rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=5).close()
                return
            except (OSError, ValueError) as error:
                reason = error.strerror or str(error) if isinstance(error, OSError) else "bad port"
        raise SkbanditError(
            f"cannot reach the Spark master {master} ({reason}); start the "
            "master or pass a reachable --spark-master (e.g. local[*])"
        )
    if not re.match(r"^(yarn|k8s://|mesos://|local-cluster\[)", master):
        raise SkbanditError(
            f"--spark-master {master!r} is not a Spark master URL (expected "
            "local[*], local[N], spark://HOST:PORT, yarn or k8s://URL)"
        )


def start_session(
    master: str,
    *,
    app_name: str = "skbandit",
    driver_memory: str | None = None,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """Start (or reuse) the Spark session the engine runs on.

    Parameters
    ----------
    master : str
        Spark master URL; only this and the data paths change between a laptop and a cluster.
    driver_memory : str, optional
        ``spark.driver.memory`` (e.g. ``"4g"``); only applies when this call starts the JVM.
    conf : dict, optional
        More Spark settings (they win over the defaults here).
    """
    check_spark_installed()
    check_master(master)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    settings = dict(SESSION_CONF)
    settings["spark.executorEnv.PYTHONWARNINGS"] = PANDAS3_WARNING_FILTER
    if _LOCAL_MASTER.match(master):
        settings["spark.ui.enabled"] = "false"  # helpers on one machine would fight over :4040
        settings["spark.driver.host"] = "127.0.0.1"
        use_driver_python()
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no hostname warning
    quiet_pyspark_warnings()
    quiet = quiet_log4j_option()
    if quiet:
        settings["spark.driver.extraJavaOptions"] = quiet
    if driver_memory:
        settings["spark.driver.memory"] = driver_memory
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as error:  # py4j or Java start-up errors: one line, what to check
        raise SkbanditError(
            f"could not start Spark with master {master}: {_first_line(error)}; "
            "check --spark-master and that Java 17 works"
        ) from error
    spark.sparkContext.setLogLevel("ERROR")
    if not _LOCAL_MASTER.match(master):
        ship_code(spark)
    return spark


LOG4J2_CONFIG = """\
# skbandit: Spark's start-up lines (default profile, log level, native-hadoop) kept off the
# terminal; errors still show. Set spark.driver.extraJavaOptions or SPARK_CONF_DIR to override.
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = error
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = error
logger.submit.name = org.apache.spark.deploy.SparkSubmit
logger.submit.level = error
"""
"""Spark's log4j2 configuration for our sessions: only errors reach the terminal.
``setLogLevel("ERROR")`` comes after the JVM has printed its start-up lines; this file is
read when the driver JVM starts (``-Dlog4j.configurationFile``)."""


def quiet_log4j_option() -> str | None:
    """``-Dlog4j.configurationFile=...`` for :data:`LOG4J2_CONFIG` (written once into the
    temporary folder), or None when the user configures log4j (``SPARK_CONF_DIR`` holding a
    ``log4j2.properties``)."""
    import hashlib
    import tempfile

    conf_dir = os.environ.get("SPARK_CONF_DIR")
    if conf_dir and (Path(conf_dir) / "log4j2.properties").is_file():
        return None
    digest = hashlib.sha256(LOG4J2_CONFIG.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"skbandit-log4j2-{digest}.properties"
    if not path.is_file():
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(LOG4J2_CONFIG)
        os.replace(partial, path)
    return f"-Dlog4j.configurationFile={path.as_uri()}"


PANDAS3_WARNING_FILTER = "ignore:PySpark does not yet fully support pandas:FutureWarning"
"""pyspark 4.0 warns on every pandas conversion under pandas >= 3 (13 lines a run); the
tested combinations are in docs/spark.md. A ``PYTHONWARNINGS`` entry for the workers."""


def use_driver_python() -> str:
    """For a local master: the Python workers run this interpreter (``sys.executable``).

    Otherwise Spark starts ``python3`` from ``PATH``, which for ``/path/venv/bin/python -m
    train.warmstart`` without an activated venv is the system Python, without pandas. A
    ``PYSPARK_PYTHON`` the user set wins. Returns the workers' interpreter.
    """
    import sys

    return os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def quiet_pyspark_warnings() -> None:
    """Keep pyspark's pandas >= 3 FutureWarning out of the driver's terminal."""
    import warnings

    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )


def ship_code(spark: SparkSession) -> Path:
    """Zip this project's packages and add them to the executors' Python path.

    The executors run the project's functions (feature code, context arithmetic), so they
    need ``skbandit``, ``adapters`` and ``train``; their Python needs the third-party
    packages (numpy, pandas, pyarrow, scipy, scikit-learn) installed.
    """
    import tempfile
    import zipfile

    root = Path(__file__).resolve().parents[2]  # adapters/data/spark.py -> the repository
    target = Path(tempfile.mkdtemp(prefix="skbandit-code-")) / "skbandit-code.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in ("skbandit", "adapters", "train"):
            for file in sorted((root / package).rglob("*.py")):
                archive.write(file, file.relative_to(root).as_posix())
    spark.sparkContext.addPyFile(str(target))
    return target


def session_settings(spark: SparkSession) -> dict[str, str]:
    """Spark settings worth logging with a run (master, version, parallelism, memory)."""
    conf = spark.sparkContext.getConf()
    return {
        "spark_master": str(spark.sparkContext.master),
        "spark_version": spark.version,
        "spark_default_parallelism": str(spark.sparkContext.defaultParallelism),
        "spark_driver_memory": conf.get("spark.driver.memory", "1g"),
        "spark_executor_memory": conf.get("spark.executor.memory", "1g"),
        "spark_shuffle_partitions": str(spark.conf.get("spark.sql.shuffle.partitions")),
    }


def read_parquet(spark: SparkSession, path, what: str) -> DataFrame:
    """Read a parquet file or a directory of parquet files, with :data:`ROW_ORDER`.

    Raises
    ------
    SkbanditError
        When the path does not exist, holds no parquet file, or its files disagree on the
        schema (column names or types), naming the files.
    """
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    text = str(path)
    local = _local_path(text)
    if local is not None:
        _check_local_files(local, what)
    try:
        frame = spark.read.option("mergeSchema", "true").parquet(text)
        files = frame.inputFiles()
    except AnalysisException as error:
        raise SkbanditError(_read_error(text, what, error)) from error
    except Exception as error:  # e.g. Java's "Failed to merge" from reading footers
        raise SkbanditError(
            f"{what} {text}: could not read as parquet ({_first_line(error)}); "
            "rewrite the files with one schema"
        ) from error
    index = {_canonical(f): i for i, f in enumerate(sorted(files, key=_canonical))}
    mapping = spark.createDataFrame(list(index.items()), "_file string, _file_index long")
    canonical = F.regexp_replace(F.col("_metadata.file_path"), r"^file:/+", "file:///")
    frame = frame.withColumn("_file", canonical).withColumn("_row", F.col("_metadata.row_index"))
    frame = frame.join(F.broadcast(mapping), "_file")
    order = F.col("_file_index") * F.lit(_FILE_SHIFT) + F.col("_row")
    return frame.withColumn(ROW_ORDER, order).drop("_file", "_row", "_file_index")


def write_parquet(spark: SparkSession, frame: DataFrame, path, overwrite: bool) -> DataFrame:
    """Write ``frame`` as a parquet directory at ``path`` (replacing one only with
    ``overwrite``) and return what was written, read back."""
    text = str(path)
    frame.write.mode("overwrite" if overwrite else "errorifexists").parquet(text)
    return spark.read.parquet(text)


def _canonical(uri: str) -> str:
    parts = urlparse(uri)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else uri


def _local_path(text: str) -> Path | None:
    parts = urlparse(text)
    if parts.scheme in ("", "file"):
        return Path(parts.path if parts.scheme else text)
    return None


def _check_local_files(path: Path, what: str) -> None:
    """Existence, at least one parquet file, and one schema across files (from the footers)."""
    import pyarrow.parquet as pq

    if not path.exists():
        raise SkbanditError(
            f"{what} {path}: no such file or directory (expected a parquet "
            "file or a directory of parquet files; check the path)"
        )
    files = (
        [path]
        if path.is_file()
        else sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and not p.name.startswith((".", "_"))
            and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts[:-1])
        )
    )
    if not files:
        raise SkbanditError(
            f"{what} {path}: the directory holds no parquet files (expected "
            "part files such as part-0.parquet); check the path"
        )
    first = None
    for file in files:
        try:
            schema = _plain_schema(pq.read_schema(file))
        except Exception as error:
            raise SkbanditError(
                f"{what} {file}: not a parquet file ({_first_line(error)}); "
                "remove it from the directory or rewrite it"
            ) from error
        if first is None:
            first = (file, schema)
        elif schema != first[1]:
            raise SkbanditError(
                f"{what}: mixed schemas across parquet files: {first[0].name} has "
                f"{_describe(first[1])} but {file.name} has {_describe(schema)}; rewrite the "
                "files with one schema"
            )


def _plain_schema(schema) -> dict[str, str]:
    import pyarrow as pa

    def plain(t):
        if pa.types.is_large_string(t) or str(t) == "string_view":
            return "string"
        if pa.types.is_dictionary(t):
            return plain(t.value_type)
        return str(t)

    return {field.name: plain(field.type) for field in schema}


def _describe(schema: dict[str, str]) -> str:
    return "(" + ", ".join(f"{name}: {kind}" for name, kind in schema.items()) + ")"


def _read_error(text: str, what: str, error) -> str:
    condition = getattr(error, "getCondition", lambda: None)() or ""
    if condition == "PATH_NOT_FOUND":
        return f"{what} {text}: no such file or directory (check the path)"
    if condition == "UNABLE_TO_INFER_SCHEMA":
        return f"{what} {text}: no parquet files found (expected part files); check the path"
    return f"{what} {text}: could not read as parquet ({_first_line(error)})"


def log_training_events_head(head, n_rows: int, source: str, digest: str, target: str) -> None:
    """Log the training events as the local engine does, from their first rows and count.

    The dataset's schema comes from ``head`` (the local engine also infers it from the first
    rows) and its profile says ``n_rows`` rows; the events themselves stay where they are.
    """
    import mlflow
    from mlflow.data.pandas_dataset import PandasDataset

    # made at import time by mlflow.data.artifact_dataset_sources, so invisible to mypy
    from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]

    class EventsHead(PandasDataset):
        @property
        def profile(self):
            return {"num_rows": n_rows, "num_elements": n_rows * self.df.shape[1]}

    dataset = EventsHead(
        head,
        source=LocalArtifactDatasetSource(source),
        name="events",
        digest=digest,
        targets=target,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        mlflow.log_input(dataset, context="training")
