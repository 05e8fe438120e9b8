"""EdNet-KT1: one ``u{user}.csv`` per student plus the contents table ``questions.csv``.

Source: the EdNet README, https://github.com/riiid/ednet (sections "KT1" and
"Contents / Questions"), Choi et al., "EdNet: A Large-Scale Hierarchical Dataset in
Education", arXiv:1912.03072. KT1 columns: ``timestamp`` ("the moment the question was
given", Unix milliseconds), ``solving_id`` (one learning session = one bundle), ``question_id``
(``q{integer}``), ``user_answer`` (``a``-``d``), ``elapsed_time`` (ms spent). Questions:
``question_id, bundle_id, explanation_id, correct_answer, part, tags, deployed_at`` with
``tags`` ``;``-separated integers (``-1`` where untagged).

What we do with it:

- the student is the file name (``u123.csv`` -> ``u123``), or a ``user_id`` column when a
  combined file has one; folders are read whole (KT1 has 784,309 files);
- ``correct = user_answer == correct_answer``; answers to questions missing from
  ``questions.csv`` and rows without an answer are dropped (counted);
- a bundle's questions are given together (same passage) and answered together, and their
  ``timestamp`` is when each was given: every question of one bundle (user, ``solving_id``)
  gets the bundle's first timestamp, so no question's context holds the outcome of a
  bundle-mate answered at the same time (counted);
- ``skill_ids`` are the question's ``tags`` (the first is the topic; ``-1`` means none, and
  such rows are dropped by validation); ``elapsed_time`` is the latency;
  ``user-solving_id`` is the action sequence. EdNet has no hint column.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from adapters.importers import ImportOptions, RawImport
from adapters.importers._read import expand, header, numbers, read_buffer, read_table
from adapters.importers._students import sampled
from skbandit import schema
from skbandit.cleaning import clean_ids
from skbandit.exceptions import SkbanditError
from skbandit.import_rules import ImportReport, drop_rows

FORMAT = "ednet-kt1"
LOG_REQUIRED = ("timestamp", "solving_id", "question_id", "user_answer")
LOG_OPTIONAL = ("elapsed_time", "user_id")
QUESTION_REQUIRED = ("question_id", "correct_answer", "tags")
QUESTION_OPTIONAL = ("part",)
TEXT = ("question_id", "user_answer", "user_id", "solving_id", "correct_answer", "tags", "part")


def load(paths: list[Path], options: ImportOptions | None = None) -> RawImport:
    """Read KT1 student files and the questions table (files or folders, any order).

    ``options.skill``: ``tags`` (default; the question's tags, the first is the topic) or
    ``part`` (the TOEIC part, ``part 1`` to ``part 7``, as the only skill).
    """
    options = options or ImportOptions()
    logs, questions = split_files(paths, options)
    report = ImportReport(FORMAT, sources=[str(p) for p in [*logs, questions]])
    raw = read_logs(logs)
    report.rows_read = len(raw)
    table = read_questions(questions, options)
    report.notes.append(skills_note(options))
    where = str(logs[0]) if len(logs) == 1 else f"{len(logs)} student files"
    return RawImport(rules(raw, table, where, report, options), report)


def split_files(paths: list[Path], options: ImportOptions) -> tuple[list[Path], Path]:
    """The student files to read (those ``--max-students``/``--sample-students`` keep) and
    the questions table."""
    files = expand(paths, FORMAT)
    questions = [p for p in files if _is_questions(p)]
    logs = [p for p in files if p not in questions]
    if len(questions) != 1 or not logs:
        raise SkbanditError(
            f"{FORMAT}: expected the student files u*.csv and one questions.csv (columns "
            f"{', '.join(QUESTION_REQUIRED)}); found {len(logs)} student files and "
            f"{len(questions)} questions tables; pass e.g. KT1/ contents/questions.csv"
        )
    if options.sample_students is not None:  # one file per student: read only the sample
        keep = sampled([p.stem for p in logs], options.sample_students, options.seed)
        logs = [p for p, k in zip(logs, keep, strict=True) if k]
        if not logs:
            raise SkbanditError(
                f"{FORMAT}: --sample-students {options.sample_students:g} kept no student "
                "file; pass a larger fraction"
            )
    if options.max_students is not None:
        logs = logs[: options.max_students]
    return logs, questions[0]


def read_questions(path: Path, options: ImportOptions) -> pd.DataFrame:
    """The questions table, one row per ``question_id`` (its index)."""
    table = read_table(
        path,
        FORMAT,
        QUESTION_REQUIRED,
        QUESTION_OPTIONAL,
        text_columns=TEXT,
        layout="the contents/questions.csv layout",
    )
    if options.skill == "part" and "part" not in table:
        raise SkbanditError(
            f"{FORMAT}: {path} has no 'part' column (--skill part); "
            "pass the full contents/questions.csv or --skill tags"
        )
    return table.drop_duplicates("question_id").set_index("question_id")


def skills_note(options: ImportOptions) -> str:
    return "skills from the question's " + (
        "TOEIC part (--skill part)" if options.skill == "part" else "tags (--skill tags)"
    )


def rules(
    raw: pd.DataFrame, table: pd.DataFrame, where: str, report, options: ImportOptions
) -> pd.DataFrame:
    """KT1 rows of whole students -> canonical events (every rule of the module docstring)."""
    raw = drop_rows(
        raw,
        ~raw["question_id"].isin(table.index),
        report,
        "answers dropped: question not in questions.csv",
    )
    answer = raw["user_answer"].fillna("").str.strip().str.lower()
    raw = drop_rows(raw, (answer == "").to_numpy(), report, "rows dropped: no answer")
    return _events(raw, table, where, report, options.skill == "part")


def _is_questions(path: Path) -> bool:
    """A student file is named ``u{digits}``; anything else is checked by its header."""
    if path.stem[:1] == "u" and path.stem[1:].isdigit():
        return False
    return "correct_answer" in header(path, FORMAT)


PARALLEL_FILES = 2_000
"""From this many student files on, they are read by a pool of processes (one per core),
in chunks of :data:`CHUNK_FILES`."""
CHUNK_FILES = 500


def read_logs(logs: list[Path]) -> pd.DataFrame:
    """Every student file's rows, one table (in file order); parallel for many files."""
    if len(logs) < PARALLEL_FILES or (os.cpu_count() or 1) < 2:
        return read_chunk(logs)
    from concurrent.futures import ProcessPoolExecutor

    chunks = [logs[i : i + CHUNK_FILES] for i in range(0, len(logs), CHUNK_FILES)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        return pd.concat(list(pool.map(read_chunk, chunks)), ignore_index=True)


def read_chunk(logs: list[Path]) -> pd.DataFrame:
    """The rows of ``logs``, in file order, with the student as ``user_id``.

    Files sharing the first file's header line are joined into one buffer and parsed once
    (KT1's files hold about 121 rows each: parsing them one by one costs 11 ms a file), by
    the parser and types :func:`read_table` uses; a file with another header, no data rows,
    or rows the join would miscount (blank lines) is read on its own, with its own errors.
    """
    frames: list[pd.DataFrame] = []
    joined: list[bytes] = []
    members: list[Path] = []
    counts: list[int] = []
    head: bytes | None = None

    def flush() -> None:
        if joined:
            assert head is not None  # set with the first joined file
            frame = _joined_frame(head, joined, members, counts)
            frames.extend([frame] if frame is not None else [_read_log(p) for p in members])
            joined.clear()
            members.clear()
            counts.clear()

    for path in logs:
        data = path.read_bytes()
        first, _, body = data.partition(b"\n")
        if head is None:
            _read_log(path)  # the first file is checked in full (header, columns, rows)
            head = first
        if first != head or not body.strip():
            flush()
            frames.append(_read_log(path))
            continue
        counts.append(body.count(b"\n") + (0 if body.endswith(b"\n") else 1))
        joined.append(body if body.endswith(b"\n") else body + b"\n")
        members.append(path)
    flush()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _joined_frame(head: bytes, bodies: list[bytes], files: list[Path], counts: list[int]):
    """The joined files as one frame, or None when its rows do not add up to the files'."""
    columns = [c.decode("utf-8", "replace") for c in head.rstrip(b"\r").split(b",")]
    where = f"{len(files)} student files ({files[0]}, ...)"
    data = b"".join([head, b"\n", *bodies])
    frame = read_buffer(data, where, FORMAT, columns, LOG_REQUIRED, LOG_OPTIONAL, text_columns=TEXT)
    if len(frame) != sum(counts):  # blank lines or quoted line breaks: read them one by one
        return None
    if "user_id" not in frame:
        stems = np.array([p.stem for p in files], dtype=object)
        frame["user_id"] = pd.Series(np.repeat(stems, counts), dtype=str)
    return frame


def _read_log(path: Path) -> pd.DataFrame:
    frame = read_table(
        path, FORMAT, LOG_REQUIRED, LOG_OPTIONAL, text_columns=TEXT, layout="the KT1 layout"
    )
    if "user_id" not in frame:
        frame["user_id"] = path.stem
    return frame


def _events(
    raw: pd.DataFrame, table: pd.DataFrame, where: str, report, by_part: bool = False
) -> pd.DataFrame:
    given = numbers(raw["timestamp"], FORMAT, where, "timestamp")
    user, bundle = clean_ids(raw["user_id"]), clean_ids(raw["solving_id"])
    start = pd.Series(given).groupby([user.to_numpy(), bundle.to_numpy()]).transform("min")
    report.count(
        "bundle questions moved to their bundle's first timestamp",
        (start.to_numpy() != given).sum(),
    )
    key = raw["question_id"].to_numpy()
    answer = raw["user_answer"].str.strip().str.lower().to_numpy()
    right = table["correct_answer"].str.strip().str.lower().reindex(key).to_numpy()
    events = pd.DataFrame(
        {
            schema.USER_ID: user.to_numpy(),
            schema.ITEM_ID: key,
            schema.SKILL_IDS: (_parts(table["part"]) if by_part else _tags(table["tags"]))
            .reindex(key)
            .to_numpy(),
            schema.TIMESTAMP: pd.to_datetime(start.to_numpy(), unit="ms", utc=True),
            schema.CORRECT: (answer == right).astype(np.int64),
            schema.ACTION_SEQUENCE_ID: (user + "-" + bundle.fillna("")).to_numpy(),
        }
    )
    if "elapsed_time" in raw:
        events[schema.LATENCY_MS] = numbers(raw["elapsed_time"], FORMAT, where, "elapsed_time")
    return events


def _parts(parts: pd.Series) -> pd.Series:
    """``'5'`` -> ``['part 5']``; blank -> ``[]``."""
    return parts.fillna("").astype(str).str.strip().map(lambda p: [f"part {p}"] if p else [])


def _tags(tags: pd.Series) -> pd.Series:
    """``'179;53;183'`` -> ``['179', '53', '183']``; ``-1`` (untagged) -> ``[]``."""
    split = tags.fillna("").astype(str).str.split(";")
    return split.map(lambda parts: [t.strip() for t in parts if t.strip() not in ("", "-1")])
