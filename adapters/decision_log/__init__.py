"""The decision log: every served decision, its candidate set and propensities, append-only.

One *decision* is one ranking served to one student: the ``decisions`` table holds when, for
whom, by which model version with which settings, whether the draw was seeded, and the item
served first (the action off-policy evaluation uses). Its candidate set is one row of
``decision_candidate_sets``: every eligible candidate with its model inputs
(:data:`skbandit.schema.MODEL_INPUT`), its served rank (null if not shown), ``propensity``
(probability of being served *first* under the logged policy) and ``slot_propensity``
(probability of its served slot given the earlier slots; null if not shown), stored as
arrays (little-endian float64/int32 bytes; item ids and input column names as JSON) so that
a decision is one small row. :meth:`DecisionLog.read` and :meth:`DecisionLog.export_parquet`
give them back as a table with one row per candidate.

Where: ``DecisionLog(url)``; ``url=None`` takes ``$SKBANDIT_DECISION_LOG`` (a SQLAlchemy URL or
a file path), else ``decisions.db`` beside the embedded MLflow store (``<mlruns>/decisions.db``).
SQLite and PostgreSQL (``postgresql://user@host/db``, needs ``pip install -e '.[postgres]'``)
take the same code.

Guarantees: :meth:`DecisionLog.append` writes a batch in one transaction and returns only
after the commit, so a decision whose response was sent survives a ``kill -9`` of the server
and a killed writer leaves no partial decision. SQLite runs in WAL mode (several server
workers write at once; a writer waits up to :data:`BUSY_TIMEOUT_S` for the lock) with
``synchronous=NORMAL``: committed rows survive any crash of the process; only an operating
system crash or power cut can lose the last commits. ``?synchronous=full`` on the URL also
syncs every commit to disk, at the cost of one ``fsync`` per decision (about 4 ms on this
machine's disk, see ``docs/serving.md``). Nothing updates, deletes or replaces rows: triggers
refuse it (an insert of a ``decision_id`` already logged too, so ``INSERT OR REPLACE`` cannot
rewrite one). Every decision carries a link of its writer's hash chain
(:mod:`adapters.decision_log.chain`): :meth:`DecisionLog.verify` (``skbandit verify-log``) names
the first decision rewritten, inserted or deleted by anyone who bypassed the triggers.
A log that is locked too long, unreachable or corrupt raises a one-line
:class:`~skbandit.exceptions.SkbanditError` (the REST server answers 503; nothing is served
unlogged).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.exceptions import SkbanditError

ENV_VAR = "SKBANDIT_DECISION_LOG"
DEFAULT_FILE = "decisions.db"
EXPORT_FILES = ("decisions.parquet", "decision_candidates.parquet")
"""The files of a parquet export (:meth:`DecisionLog.export_parquet`): decisions, candidates."""
READ_CHUNK = 20_000
"""Candidate sets unpacked at a time when reading (bounds the raw rows held at once)."""
BUSY_TIMEOUT_S = 5.0
"""How long a writer waits for another writer's lock before the log counts as unavailable."""
DECISION_COLUMNS = (
    "decision_id", "logged_at", "user_id", "topic", "model_name", "model_version",
    "settings", "seeded", "served_item_id",
)  # fmt: skip
CANDIDATE_COLUMNS = (
    "decision_id", "item_id", *schema.MODEL_INPUT, "served_rank", "propensity",
    "slot_propensity",
)  # fmt: skip
_SYNC_MODES = ("off", "normal", "full", "extra")


def default_url() -> str:
    """``$SKBANDIT_DECISION_LOG``, else SQLite ``decisions.db`` beside the MLflow store.

    A tracking URI that is not a local SQLite file (a tracking server) puts the log beside
    the embedded store of the project folder (``<project>/mlruns/decisions.db``).
    """
    from adapters import tracking

    given = os.environ.get(ENV_VAR, "").strip()
    if given:
        return given if "://" in given else f"sqlite:///{Path(given).expanduser().resolve()}"
    store = tracking.sqlite_path(os.environ.get("MLFLOW_TRACKING_URI") or "")
    if store is None:
        store = tracking.sqlite_path(tracking.embedded_tracking_uri())
    assert store is not None  # the embedded store is always a sqlite:/// file
    return f"sqlite:///{store.parent / DEFAULT_FILE}"


class DecisionLog:
    """An append-only store of served decisions (see the module docstring).

    Parameters
    ----------
    url : str, optional
        A SQLAlchemy URL (``sqlite:///path``, ``postgresql://...``) or a file path; default
        :func:`default_url`. Nothing is created until the first :meth:`append`.
    """

    def __init__(self, url: str | None = None):
        url = url or default_url()
        if "://" not in url:
            url = f"sqlite:///{Path(url).expanduser().resolve()}"
        self.url = url
        self._engine = None
        self._ready = False
        self._lock = threading.Lock()
        self._chain_lock = threading.Lock()
        self._chain_pid: int | None = None
        self._chain: tuple[str, int, bytes] | None = None

    def __repr__(self) -> str:
        return f"DecisionLog({self.display_url!r})"

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages."""
        from adapters.tracking import redact_uri

        return redact_uri(self.url)

    @property
    def sqlite_file(self) -> Path | None:
        """The database file of a SQLite log, else None."""
        if not self.url.startswith("sqlite:///"):
            return None
        return Path(self.url[len("sqlite:///") :].split("?", 1)[0])

    # --- writing ---------------------------------------------------------------------------

    def append(self, decisions: pd.DataFrame, candidates: pd.DataFrame) -> None:
        """Write decisions and their candidates in one transaction; return after the commit.

        ``decisions`` has :data:`DECISION_COLUMNS`, ``candidates`` has
        :data:`CANDIDATE_COLUMNS` (each candidate's ``decision_id`` among the decisions').
        """
        from adapters.decision_log.candidate_sets import pack_frame

        _require_columns(candidates, CANDIDATE_COLUMNS, "candidates")
        self.append_rows(
            _rows(decisions, DECISION_COLUMNS, "decisions"),
            pack_frame(candidates, schema.MODEL_INPUT),
        )

    def append_rows(self, decision_rows: list[tuple], candidate_sets: list[tuple]) -> None:
        """:meth:`append` for decision rows as tuples in :data:`DECISION_COLUMNS` order and
        their candidate sets packed by :func:`adapters.decision_log.candidate_sets.pack` (the
        server's path)."""
        if not decision_rows:
            return
        from sqlalchemy.exc import SQLAlchemyError

        from adapters.decision_log import tables as decision_tables
        from adapters.decision_log.chain import GENESIS, packed_link_hash

        sets = {row[0]: row for row in candidate_sets}
        try:
            engine = self._writable_engine()
            with self._chain_lock:  # links are numbered in commit order within a process
                if self._chain is None or self._chain_pid != os.getpid():  # a new (forked) writer
                    self._chain = (new_decision_ids(1)[0], 0, GENESIS)
                    self._chain_pid = os.getpid()
                chain_id, seq, previous = self._chain
                rows = []
                for row in decision_rows:
                    previous = packed_link_hash(previous, row, sets.get(row[0]))
                    rows.append((*row, chain_id, seq, previous.hex()))
                    seq += 1
                with engine.begin() as connection:
                    decision_tables.insert(connection, decision_tables.DECISIONS, rows)
                    if candidate_sets:
                        decision_tables.insert(
                            connection, decision_tables.CANDIDATE_SETS, candidate_sets
                        )
                self._chain = (chain_id, seq, previous)
        except SQLAlchemyError as error:
            raise SkbanditError(
                f"decision log {self.display_url} is unavailable ({_first_line(error)}); the "
                "decisions were not logged: retry, or check the log database"
            ) from None

    # --- reading ---------------------------------------------------------------------------

    def read(
        self, *, model_name: str | None = None, since=None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The logged decisions and their candidates, as tables (oldest decision first).

        Parameters
        ----------
        model_name : str, optional
            Only this registered model's decisions.
        since : timestamp-like, optional
            Only decisions logged at or after this time (naive times are UTC).

        Returns
        -------
        decisions, candidates : DataFrame
            Columns :data:`DECISION_COLUMNS` (``logged_at`` a UTC timestamp) and
            :data:`CANDIDATE_COLUMNS` (``decision_id`` and ``item_id`` categoricals);
            candidates grouped by decision, in the order the decisions were written, and in
            logged order within each decision.
        """
        from sqlalchemy import Text, select, type_coerce
        from sqlalchemy.exc import SQLAlchemyError

        from adapters.decision_log import tables as t
        from adapters.decision_log.candidate_sets import unpack

        engine = self._readable_engine()
        filters = []
        if model_name is not None:
            filters.append(t.DECISIONS.c.model_name == model_name)
        if since is not None:
            filters.append(t.DECISIONS.c.logged_at >= _utc(since).to_pydatetime())
        order = (t.DECISIONS.c.logged_at, t.DECISIONS.c.decision_id)
        # logged_at as the driver gives it: parsed once per column below, not once per row
        query = (
            select(*(type_coerce(c, Text) if c.name == "logged_at" else c for c in t.DECISIONS.c))
            .where(*filters)
            .order_by(*order)
        )
        sets_query = select(t.CANDIDATE_SETS)  # in the order written: no join, no sort
        if filters:
            chosen = select(t.DECISIONS.c.decision_id).where(*filters)
            sets_query = sets_query.where(t.CANDIDATE_SETS.c.decision_id.in_(chosen))
        try:
            with engine.connect() as connection:
                decisions = _frame(connection.execute(query).all(), [c.name for c in t.DECISIONS.c])
                result = connection.execute(sets_query)
                candidates = unpack(
                    result.partitions(READ_CHUNK),
                    schema.MODEL_INPUT,
                    defaults={schema.GUESSING: 0.0},
                )
        except SQLAlchemyError as error:
            raise SkbanditError(
                f"cannot read decision log {self.display_url} ({_first_line(error)}); expected "
                "a database written by skbandit: check the path, or restore it from a backup"
            ) from None
        return _typed_decisions(decisions), candidates

    def verify(self):
        """Check the log's hash chains (:func:`adapters.decision_log.chain.verify`)."""
        from adapters.decision_log.chain import verify

        return verify(*self.read())

    def export_parquet(self, out_dir) -> None:
        """Write the :data:`EXPORT_FILES` (decisions, candidates) into ``out_dir``."""
        decisions, candidates = self.read()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for frame, name in zip((decisions, candidates), EXPORT_FILES, strict=True):
            frame.to_parquet(out / name, index=False)

    # --- engines ---------------------------------------------------------------------------

    def _writable_engine(self):
        if self._ready:
            return self._engine
        with self._lock:
            if not self._ready:
                if self.sqlite_file is not None:
                    self.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
                from adapters.decision_log import tables as decision_tables

                engine = self._make_engine()
                decision_tables.create(engine)
                self._engine, self._ready = engine, True
        return self._engine

    def _readable_engine(self):
        if self._engine is not None:
            return self._engine
        database = self.sqlite_file
        if database is not None and not database.is_file():
            raise SkbanditError(
                f"no decision log at {database}; it is created when the first decision is "
                f"served (skbandit serve), or set {ENV_VAR} to the log's URL"
            )
        self._engine = self._make_engine()
        return self._engine

    def _make_engine(self):
        from adapters.decision_log import tables as decision_tables

        return decision_tables.make_engine(self.url, BUSY_TIMEOUT_S)


def read_source(where: str, option: str = "") -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """``(decisions, candidates, source)`` of a parquet export folder (:data:`EXPORT_FILES`)
    or a log URL/file; ``option`` names where ``where`` came from in errors."""
    folder = Path(where)
    if "://" not in where and folder.is_dir():
        files = [folder / name for name in EXPORT_FILES]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise SkbanditError(
                f"{folder} lacks {', '.join(missing)} (expected the export of a decision "
                "log); pass the export folder or the log's URL"
            )
        try:
            return pd.read_parquet(files[0]), pd.read_parquet(files[1]), str(folder)
        except (OSError, ValueError) as error:
            raise SkbanditError(
                f"{folder}: cannot read the parquet export ({error}); export the decision log again"
            ) from None
    if "://" not in where and not folder.exists():
        raise SkbanditError(
            f"{option}{where}: no such file or folder (expected a decision log URL, "
            "its SQLite file or a parquet export folder)"
        )
    log = DecisionLog(where)
    return (*log.read(), log.display_url)


def served_decisions(
    request,
    ranked,
    *,
    settings: dict,
    seeded: bool,
    model_version: str,
    topic: str | None,
) -> tuple[np.ndarray, list[tuple], list[tuple]]:
    """The decisions of one ranked request: a decision id per row, the decision rows and
    the packed candidate sets to log.

    ``request`` is the checked request (:class:`adapters.model.requests.CheckedRequest`:
    ``user_ids``, ``item_ids`` and the model-input array ``inputs``), ``ranked`` its
    :func:`skbandit.request_ranking.rank_request_rows` columns (same row order); ``settings`` the
    ranking settings as plain values and ``model_version`` ``"NAME/NUMBER"`` (or
    ``"unregistered"``). Each student of the request is one decision.
    """
    import datetime
    import json

    from adapters.decision_log.candidate_sets import pack
    from skbandit.request_ranking import FIRST_SLOT_PROPENSITY

    user_ids = request.user_ids
    if len(user_ids) and (user_ids == user_ids[0]).all():  # the usual request: one student
        codes, students = np.zeros(len(user_ids), dtype=np.intp), user_ids[:1]
    else:
        codes, students = pd.factorize(user_ids)
    ids = np.array(new_decision_ids(len(students)))
    rank = np.asarray(ranked[schema.RANK])
    shown = np.asarray(ranked["recommended"])
    items = np.asarray(request.item_ids, dtype=object)
    name, _, number = model_version.partition("/")
    now = datetime.datetime.now(datetime.UTC)
    text = json.dumps(settings, sort_keys=True)
    first = np.flatnonzero(rank == 1)
    served = dict(zip(codes[first].tolist(), items[first].tolist(), strict=True))
    decisions = [
        (ids[k], now, str(student), topic, name, number, text, seeded, served[k])
        for k, student in enumerate(students)
    ]
    served_rank = np.where(shown, rank, 0)
    slot = np.where(shown, np.asarray(ranked[schema.PROPENSITY]), np.nan)
    first_slot = np.asarray(ranked[FIRST_SLOT_PROPENSITY])
    groups: list[slice | np.ndarray]
    if len(students) == 1:  # the usual request: one student, every row
        groups = [slice(None)]
    else:
        groups = [np.flatnonzero(codes == k) for k in range(len(students))]
    candidate_sets = [
        pack(
            str(ids[k]),
            items[rows].tolist(),
            request.inputs[rows],
            schema.MODEL_INPUT,
            served_rank[rows],
            first_slot[rows],
            slot[rows],
        )
        for k, rows in enumerate(groups)
    ]
    return ids[codes], decisions, candidate_sets


def new_decision_ids(n: int) -> list[str]:
    """``n`` fresh decision ids (uuid4 hex)."""
    import uuid

    return [uuid.uuid4().hex for _ in range(n)]


def _rows(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> list[tuple]:
    """The frame's rows as tuples of plain Python values in ``columns`` order (NaN as None)."""
    _require_columns(frame, columns, what)
    values = []
    for column in columns:
        series = frame[column]
        if column == "logged_at":
            values.append([_utc(v).to_pydatetime() for v in series])
        elif series.dtype.kind == "f":
            array = series.to_numpy()
            listed = array.tolist()
            values.append(
                [None if v != v else v for v in listed] if np.isnan(array).any() else listed
            )
        elif series.dtype.kind in "iub":
            values.append(series.to_numpy().tolist())
        else:  # strings, objects and nullable integers
            values.append([None if v is None or v is pd.NA else v for v in series.tolist()])
    return list(zip(*values, strict=True))


def _frame(rows, names: list[str]) -> pd.DataFrame:
    """A frame of fetched rows, built column by column (much faster than from records)."""
    columns = list(zip(*rows, strict=True)) or [()] * len(names)
    return pd.DataFrame(dict(zip(names, columns, strict=True)))


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SkbanditError(
            f"{what} to log is missing columns {missing} (expected {list(columns)})"
        )


def _utc(value) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _typed_decisions(frame: pd.DataFrame) -> pd.DataFrame:
    from adapters.decision_log.chain import CHAIN_COLUMNS

    frame = frame[[*DECISION_COLUMNS, *(c for c in CHAIN_COLUMNS if c in frame.columns)]].copy()
    if "chain_seq" in frame.columns:
        frame["chain_seq"] = frame["chain_seq"].astype("Int64")
    frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True, format="ISO8601")
    frame["seeded"] = frame["seeded"].astype(bool)
    return frame.reset_index(drop=True)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return (text.strip().splitlines() or [type(error).__name__])[0][:300]


__all__ = [
    "CANDIDATE_COLUMNS",
    "DECISION_COLUMNS",
    "ENV_VAR",
    "DecisionLog",
    "default_url",
    "new_decision_ids",
    "read_source",
    "served_decisions",
]
