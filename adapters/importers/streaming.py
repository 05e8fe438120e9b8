"""Streaming import: a big export -> parts of canonical events on disk, in bounded memory.

The in-memory import (:func:`adapters.importers.load`) holds the whole export in one pandas
frame: EdNet-KT1's 95M rows would take well over 16 GB. Here the export is cut into parts of
**whole students**, each part goes through the format's own rules and
:func:`skbandit.cleaning.validate_events` (the functions the in-memory import calls, so the
rules are the same), and is written as ``part-NNNNN.parquet`` by a pool of processes:

- **EdNet-KT1**: one file per student, so a part is a run of :data:`EDNET_FILES_PER_PART`
  student files (joined and parsed at once, :func:`~adapters.importers.ednet_kt1.read_chunk`);
- **ASSISTments** (2009, 2012): the CSV is read in blocks by pyarrow's streaming CSV reader
  (as text, with pandas' blanks) and each row goes to the bucket of a hash of its student;
  each bucket is then one part. Rows of one attempt (one per skill) share a student, so they
  meet in one bucket. The 2009 synthetic clock starts at the export's smallest
  ``order_id``; it is taken while streaming and corrected at the end if the rules dropped
  that row.

``--max-students`` (first students in file order) and ``--sample-students`` (a seeded hash)
select raw rows as the in-memory import does. Only the per-part summaries (counts, each
item's topics) come back to the caller: :class:`StreamedImport`.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from adapters.data.ingest_output import part_path, shift_part_times, write_part
from adapters.importers import ImportOptions, check_options, keep_untagged
from skbandit import schema
from skbandit.cleaning import CleaningReport, summed_reports, validate_events
from skbandit.exceptions import SkbanditError
from skbandit.import_rules import ImportReport

STREAMED = ("ednet-kt1", "assistments-2009", "assistments-2012")
EDNET_FILES_PER_PART = 2_000
BUCKET_BYTES = 48 * 2**20
"""ASSISTments: about this much CSV text per bucket (a part of some 300,000 rows)."""
BLOCK_BYTES = 16 * 2**20
MAX_LISTED_SOURCES = 1_000


@dataclass
class PartSummary:
    """What one part's import and cleaning did, and what it holds."""

    report: ImportReport
    cleaning: CleaningReport
    pairs: pd.DataFrame  # item_id, topic, n, first (int64 ns), part
    n_events: int
    n_students: int
    smallest_order: float = np.nan


@dataclass
class StreamedImport:
    """The parts written, and the merged counts of every part (as one in-memory import's).

    Attributes
    ----------
    report : ImportReport
        The format's rules, counted over all parts (``rows_read`` from the raw files).
    cleaning : CleaningReport
        :func:`~skbandit.cleaning.validate_events`' counts, summed over the parts.
    pairs : DataFrame
        ``item_id, topic, n, first, part``: events per item and topic, the first one's time.
    n_events, n_students, n_parts : int
    """

    report: ImportReport
    cleaning: CleaningReport
    pairs: pd.DataFrame
    n_events: int = 0
    n_students: int = 0
    n_parts: int = 0
    notes: list[str] = field(default_factory=list)

    def items(self) -> pd.DataFrame:
        """``item_id, topic`` as :func:`skbandit.import_rules.items_from_events` chooses:
        each item's most frequent topic (ties: the one seen first), items by first event."""
        pairs = self.pairs.groupby([schema.ITEM_ID, schema.TOPIC], sort=False).agg(
            n=("n", "sum"), first=("first", "min"), part=("part", "min")
        )
        pairs = pairs.reset_index().sort_values(["first", "part"], kind="stable")
        pairs["seen"] = np.arange(len(pairs))
        best = pairs.sort_values(["n", "seen"], ascending=[False, True], kind="stable")
        best = best.drop_duplicates(schema.ITEM_ID).sort_values("seen", kind="stable")
        first_seen = pairs.groupby(schema.ITEM_ID, sort=False)["seen"].min()
        best = best.assign(order=best[schema.ITEM_ID].map(first_seen)).sort_values("order")
        return best[[schema.ITEM_ID, schema.TOPIC]].reset_index(drop=True)


def stream_import(
    fmt: str,
    paths,
    options: ImportOptions,
    parts: Path,
    *,
    columns: tuple[str, ...],
    workers: int = 2,
) -> StreamedImport:
    """Import ``paths`` (format ``fmt``) into ``parts/part-NNNNN.parquet``.

    Parameters
    ----------
    columns : tuple of str
        The canonical columns written (those the events have, in this order).
    workers : int
        Processes that run the rules of the parts (2 on a 2-core machine).
    """
    if fmt not in STREAMED:
        raise SkbanditError(
            f"--stream applies to {', '.join(STREAMED)} exports; a {fmt} export is read in "
            "memory (leave out --stream)"
        )
    check_options(fmt, options)
    parts = Path(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if fmt == "ednet-kt1":
        return _stream_ednet(paths, options, parts, columns, workers)
    return _stream_assistments(fmt, paths, options, parts, columns, workers)


# --- EdNet-KT1 -------------------------------------------------------------------------


def _stream_ednet(paths, options, parts, columns, workers) -> StreamedImport:
    from adapters.importers import ednet_kt1

    logs, questions = ednet_kt1.split_files(paths, options)
    ednet_kt1.read_questions(questions, options)  # its errors before any worker starts
    chunks = [logs[i : i + EDNET_FILES_PER_PART] for i in range(0, len(logs), EDNET_FILES_PER_PART)]
    jobs = [(i, chunk, questions, options, parts, columns) for i, chunk in enumerate(chunks)]
    summaries = _run(_ednet_part, jobs, workers)
    streamed = _merged("ednet-kt1", summaries, [*logs, questions])
    streamed.report.rows_read = sum(s.report.rows_read for s in summaries)
    streamed.report.notes.append(ednet_kt1.skills_note(options))
    return streamed


_QUESTIONS: dict = {}


def _ednet_part(job) -> PartSummary:
    from adapters.importers import ednet_kt1

    index, logs, questions, options, parts, columns = job
    key = (str(questions), options.skill)
    if key not in _QUESTIONS:  # once per worker process
        _QUESTIONS[key] = ednet_kt1.read_questions(questions, options)
    report = ImportReport("ednet-kt1")
    raw = ednet_kt1.read_chunk(logs)
    report.rows_read = len(raw)
    where = str(logs[0]) if len(logs) == 1 else f"{len(logs)} student files ({logs[0]}, ...)"
    events = ednet_kt1.rules(raw, _QUESTIONS[key], where, report, options)
    return _finish_part("ednet-kt1", events, report, options, part_path(parts, index), columns)


# --- ASSISTments -----------------------------------------------------------------------


def _stream_assistments(fmt, paths, options, parts, columns, workers) -> StreamedImport:
    from adapters.importers import _read, assistments_2009, assistments_2012

    module = assistments_2009 if fmt == "assistments-2009" else assistments_2012
    files = _read.expand(paths, fmt)
    size = sum(f.stat().st_size for f in files)
    n_buckets = max(1, min(512, math.ceil(size / BUCKET_BYTES)))
    raw_dir = parts / "_raw"
    raw_dir.mkdir()
    split = _BucketSplit(fmt, module, options, raw_dir, n_buckets)
    for number, file in enumerate(files):
        split.read_file(number, file)
    jobs = [
        (fmt, b, split.bucket_files(b), options, parts, columns, split.smallest)
        for b in range(n_buckets)
    ]
    summaries = _run(_assistments_part, jobs, workers)
    for leftover in raw_dir.iterdir():
        leftover.unlink()
    raw_dir.rmdir()
    streamed = _merged(fmt, [split.summary(), *summaries], files)
    streamed.report.rows_read = split.rows_read
    if fmt == "assistments-2009":
        streamed.report.notes.insert(0, assistments_2009.CLOCK_NOTE)
        exact = np.nanmin([s.smallest_order for s in summaries] + [np.inf])
        if np.isfinite(exact) and exact != split.smallest:  # the rules dropped the first row
            shift_part_times(parts, split.smallest - exact)
    return streamed


class _BucketSplit:
    """Stream CSV files block by block into one raw parquet file per (file, bucket)."""

    def __init__(self, fmt, module, options, raw_dir: Path, n_buckets: int):
        self.fmt, self.module, self.options = fmt, module, options
        self.raw_dir, self.n_buckets = raw_dir, n_buckets
        self.report = ImportReport(fmt)
        self.rows_read = 0
        self.smallest = np.inf
        self.seen: dict = {}
        self.written: dict[int, list[Path]] = {b: [] for b in range(n_buckets)}

    def read_file(self, number: int, path: Path) -> None:
        from adapters.importers import _read

        raw_names, use = _read.checked_columns(
            path, self.fmt, self.module.REQUIRED, self.module.OPTIONAL, self.module.LAYOUT
        )
        state = (self.rows_read, self.smallest, dict(self.seen), dict(self.report.steps))
        for encoding in ("utf8", "latin1"):  # as the in-memory reader: UTF-8, else Latin-1
            try:
                rows = self._stream(number, path, raw_names, use, encoding)
            except UnicodeError:
                self._discard(number)
                self.rows_read, self.smallest, self.seen, self.report.steps = (
                    state[0],
                    state[1],
                    dict(state[2]),
                    dict(state[3]),
                )
                continue
            if rows == 0:
                raise SkbanditError(
                    f"{self.fmt}: {path} has a header but no data rows; pass a full export"
                )
            return

    def _stream(self, number, path, raw_names, use, encoding) -> int:
        import pyarrow as pa
        import pyarrow.csv as pv
        from pandas._libs.parsers import STR_NA_VALUES

        names = [n for n in raw_names if n.strip() in use]
        reader_options = pv.ReadOptions(block_size=BLOCK_BYTES, encoding=encoding)
        convert = pv.ConvertOptions(
            include_columns=names,
            column_types={n: pa.string() for n in names},
            strings_can_be_null=True,
            null_values=sorted(STR_NA_VALUES),
        )
        writers: dict = {}
        rows = 0
        try:
            reader = pv.open_csv(path, read_options=reader_options, convert_options=convert)
            for batch in _batches(reader, path, self.fmt):
                frame = batch.to_pandas()
                frame.columns = [str(c).strip() for c in frame.columns]
                rows += len(frame)
                self._add(number, frame, writers, path)
        finally:
            for writer in writers.values():
                writer.close()
        self.rows_read += rows
        return rows

    def _add(self, number: int, frame: pd.DataFrame, writers: dict, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from adapters.importers._students import select_students

        keep = select_students(frame["user_id"], self.options, self.report, self.seen)
        frame = frame if keep is None else frame.loc[keep]
        if self.fmt == "assistments-2009":
            self.smallest = min(self.smallest, _smallest_attempt_order(frame, str(path)))
        users = frame["user_id"].to_numpy(dtype=object)
        bucket = pd.util.hash_array(users, categorize=True) % np.uint64(self.n_buckets)
        for b in np.unique(bucket):
            table = pa.Table.from_pandas(frame.loc[bucket == b], preserve_index=False)
            if b not in writers:
                target = self.raw_dir / f"{number:05d}-{int(b):05d}.parquet"
                writers[b] = pq.ParquetWriter(target, table.schema)
                self.written[int(b)].append(target)
            writers[b].write_table(table)

    def _discard(self, number: int) -> None:
        for files in self.written.values():
            for f in [f for f in files if f.name.startswith(f"{number:05d}-")]:
                f.unlink(missing_ok=True)
                files.remove(f)

    def bucket_files(self, bucket: int) -> list[Path]:
        return list(self.written[bucket])

    def summary(self) -> PartSummary:
        """The rows the stream itself dropped (students not selected), as a part's counts."""
        empty = pd.DataFrame(columns=[schema.ITEM_ID, schema.TOPIC, "n", "first", "part"])
        return PartSummary(self.report, CleaningReport(""), empty, 0, 0)


def _batches(reader, path: Path, fmt: str):
    import pyarrow as pa

    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as error:
            if "UTF8" in str(error) or "utf8" in str(error).lower():
                raise UnicodeError(str(error)) from error
            raise SkbanditError(
                f"{fmt}: {path} could not be parsed ({str(error).splitlines()[0]}); check "
                "that it is a comma-separated export"
            ) from None


def _smallest_attempt_order(frame: pd.DataFrame, where: str) -> float:
    """The smallest ``order_id`` among rows the 2009 rules keep row by row (not
    scaffolding, ``correct`` 0 or 1); the clock's zero unless a collapse drops it."""
    from adapters.importers._read import numbers

    fmt = "assistments-2009"
    keep = np.ones(len(frame), dtype=bool)
    if "original" in frame:
        keep &= numbers(frame["original"], fmt, where, "original") != 0
    keep &= np.isin(numbers(frame["correct"], fmt, where, "correct"), (0.0, 1.0))
    order = numbers(frame["order_id"], fmt, where, "order_id")[keep]
    finite = order[np.isfinite(order)]
    return float(finite.min()) if finite.size else np.inf


def _assistments_part(job) -> PartSummary:
    from adapters.importers import assistments_2009, assistments_2012

    fmt, index, files, options, parts, columns, smallest = job
    report = ImportReport(fmt)
    frames = [pd.read_parquet(f) for f in files]
    if not frames:
        return _finish_part(fmt, None, report, options, part_path(parts, index), columns)
    raw = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    where = f"{fmt} part {index}"
    if fmt == "assistments-2009":
        raw = assistments_2009.attempts(raw, where, report, options)
        exact = assistments_2009.smallest_order(raw, where) if len(raw) else np.nan
        low = smallest if np.isfinite(smallest) else None
        events = assistments_2009.events(raw, where, report, low) if len(raw) else None
        summary = _finish_part(fmt, events, report, options, part_path(parts, index), columns)
        summary.smallest_order = exact
        return summary
    events = assistments_2012.events(raw, where, report, options)
    return _finish_part(fmt, events, report, options, part_path(parts, index), columns)


# --- shared ----------------------------------------------------------------------------


def _finish_part(fmt, events, report, options, path: Path, columns) -> PartSummary:
    """Untagged items, validation and the write of one part; its summary."""
    empty_pairs = pd.DataFrame(columns=[schema.ITEM_ID, schema.TOPIC, "n", "first", "part"])
    if events is None or events.empty:
        return PartSummary(report, CleaningReport(f"{fmt} events"), empty_pairs, 0, 0)
    if options.keep_untagged:
        events = keep_untagged(events, report)
    events, cleaning = validate_events(events, source=f"{fmt} events")
    if events.empty:
        return PartSummary(report, cleaning, empty_pairs, 0, 0)
    events = events[[c for c in columns if c in events.columns]]
    write_part(events, path)
    pairs = events.groupby([schema.ITEM_ID, schema.TOPIC], sort=False).agg(
        n=(schema.TIMESTAMP, "size"), first=(schema.TIMESTAMP, "min")
    )
    pairs = pairs.reset_index()
    pairs["first"] = pairs["first"].astype("datetime64[ns, UTC]").astype("int64")
    pairs["part"] = int(path.stem.split("-")[1])
    return PartSummary(report, cleaning, pairs, len(events), events[schema.USER_ID].nunique())


FOLD_PARTS = 16
"""The parts' (item, topic) counts are added up every this many parts (EdNet's 392 parts
would otherwise hold millions of rows)."""


def _run(function, jobs: list, workers: int) -> list[PartSummary]:
    """Each job's summary, in job order, the (item, topic) counts folded as they come."""
    summaries: list[PartSummary] = []

    def fold(summary: PartSummary) -> None:
        summaries.append(summary)
        if len(summaries) % FOLD_PARTS == 0:
            tables = [s.pairs for s in summaries[-FOLD_PARTS:] if len(s.pairs)]
            if tables:
                summaries[-1].pairs = _added(tables)
            for s in summaries[-FOLD_PARTS:-1]:
                s.pairs = s.pairs.iloc[:0]

    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            fold(function(job))
        return summaries
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        for summary in pool.map(function, jobs):
            fold(summary)
    return summaries


def _added(pairs: list[pd.DataFrame]) -> pd.DataFrame:
    """(item, topic) counts of several parts as one: counts summed, first time and part."""
    table = pd.concat(pairs, ignore_index=True)
    table = table.sort_values(["first", "part"], kind="stable")
    return (
        table.groupby([schema.ITEM_ID, schema.TOPIC], sort=False)
        .agg(n=("n", "sum"), first=("first", "min"), part=("part", "min"))
        .reset_index()
    )


def _merged(fmt: str, summaries: list[PartSummary], files: list[Path]) -> StreamedImport:
    report = ImportReport(fmt, sources=_listed(files))
    for s in summaries:
        for label, n in s.report.steps.items():
            report.count(label, n)
    cleaning = summed_reports([s.cleaning for s in summaries], f"{fmt} events")
    pairs = [s.pairs for s in summaries if len(s.pairs)]
    return StreamedImport(
        report,
        cleaning,
        pd.concat(pairs, ignore_index=True) if pairs else summaries[0].pairs,
        sum(s.n_events for s in summaries),
        sum(s.n_students for s in summaries),
        sum(1 for s in summaries if s.n_events),
    )


def _listed(files: list[Path]) -> list[str]:
    """The files read, named one by one up to :data:`MAX_LISTED_SOURCES` (then counted)."""
    shown = [str(f) for f in files[:MAX_LISTED_SOURCES]]
    if len(files) > MAX_LISTED_SOURCES:
        shown.append(f"... and {len(files) - MAX_LISTED_SOURCES:,} more files")
    return shown


STREAM_BYTES = 512 * 2**20
STREAM_FILES = 20_000


def is_big(paths) -> bool:
    """An input worth streaming: over :data:`STREAM_BYTES` of files, or over
    :data:`STREAM_FILES` files (EdNet-KT1's student files)."""
    from adapters.importers._read import TEXT_SUFFIXES

    size = files = 0
    for path in map(Path, paths):
        found = path.rglob("*") if path.is_dir() else [path]
        for file in found:
            if file.suffix.lower() in TEXT_SUFFIXES and file.is_file():
                files += 1
                size += file.stat().st_size
                if size > STREAM_BYTES or files > STREAM_FILES:
                    return True
    return False


def default_workers() -> int:
    """Two processes on a machine with two or more cores, else one."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1
