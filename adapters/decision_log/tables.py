"""The decision log's tables and database connections (SQLAlchemy Core; SQLite or PostgreSQL).

Kept apart from :mod:`adapters.decision_log` so that importing the log's API costs nothing
until a database is touched. See that module for what the tables mean.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from skbandit.exceptions import SkbanditError

METADATA = MetaData()
DECISIONS = Table(
    "decisions", METADATA,
    Column("decision_id", String(32), primary_key=True),
    Column("logged_at", DateTime(timezone=True), nullable=False, index=True),
    Column("user_id", Text, nullable=False),
    Column("topic", Text),
    Column("model_name", Text, nullable=False, index=True),
    Column("model_version", Text, nullable=False),
    Column("settings", Text, nullable=False),
    Column("seeded", Boolean, nullable=False),
    Column("served_item_id", Text, nullable=False),
    Column("chain_id", String(32)),
    Column("chain_seq", Integer),
    Column("chain_hash", String(64)),
)  # fmt: skip
"""One row per decision; ``chain_*`` is its link in its writer's hash chain
(:mod:`adapters.decision_log.chain`; null in rows logged before decisions were chained)."""
CHAIN_COLUMNS = ("chain_id", "chain_seq", "chain_hash")
CANDIDATE_SETS = Table(
    "decision_candidate_sets", METADATA,
    Column("decision_id", String(32), primary_key=True),
    Column("n_candidates", Integer, nullable=False),
    Column("input_columns", Text, nullable=False),
    Column("item_ids", Text, nullable=False),
    Column("model_inputs", LargeBinary, nullable=False),
    Column("served_rank", LargeBinary, nullable=False),
    Column("propensity", LargeBinary, nullable=False),
    Column("slot_propensity", LargeBinary, nullable=False),
)  # fmt: skip
"""One row per decision: its candidate set packed as arrays (see :mod:`adapters.decision_log`).

One row per candidate capped a 100-candidate log at about 1,000 decisions/s however many
workers wrote (the insert of 100 rows held SQLite's single write lock); packed, one decision
is one small row."""
APPEND_ONLY = "the decision log is append-only"
TABLES = ("decisions", "decision_candidate_sets")
_SQLITE_TRIGGERS = [
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        for table in TABLES
        for verb in ("update", "delete")
    ),
    # INSERT OR REPLACE / REPLACE INTO delete the old row without firing a delete trigger
    # (recursive_triggers is off): refuse any insert of an id already logged
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} "
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE decision_id = NEW.decision_id) "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}: decision_id already logged'); END"
        for table in TABLES
    ),
]
_POSTGRES_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION skbandit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$",
    *(
        f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION skbandit_append_only()"
        for table in TABLES
    ),
    # TRUNCATE fires no row trigger: refuse it with a statement trigger
    *(
        f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION skbandit_append_only()"
        for table in TABLES
    ),
]


def make_engine(url: str, busy_timeout_s: float):
    """An engine for a SQLite or PostgreSQL log (``postgresql://`` uses psycopg 3)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        sync = str(parsed.query.get("synchronous", "normal")).lower()
        if sync not in ("off", "normal", "full", "extra"):
            raise SkbanditError(
                f"decision log URL has synchronous={sync!r} (expected normal or full)"
            )
        engine = create_engine(
            parsed.difference_update_query(["synchronous"]),
            connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_pragmas(sync, busy_timeout_s))
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return create_engine(
                parsed,
                pool_pre_ping=True,
                connect_args={"connect_timeout": max(1, int(busy_timeout_s))},
            )
        except ModuleNotFoundError:
            raise SkbanditError(
                "a PostgreSQL decision log needs psycopg: pip install -e '.[postgres]'"
            ) from None
    raise SkbanditError(
        f"decision log URL {parsed.render_as_string()!r} is neither sqlite:/// nor postgresql://"
    )


def insert(connection, table: Table, rows: list[tuple]) -> None:
    """Insert rows given as tuples in the order of ``table``'s columns.

    Goes straight to the driver's ``executemany`` with the statement compiled once per
    dialect: the decision log writes on every request, and SQLAlchemy's per-row parameter
    processing would cost more than the write itself.
    """
    sql, names = _insert_sql(connection.dialect, table)
    if names is None:
        connection.exec_driver_sql(sql, rows)
    else:  # a named paramstyle (psycopg): rows become dicts
        connection.exec_driver_sql(sql, [dict(zip(names, row, strict=True)) for row in rows])


_COMPILED: dict = {}


def _insert_sql(dialect, table: Table):
    key = (dialect.name, dialect.paramstyle, table.name)
    if key not in _COMPILED:
        names = [c.name for c in table.columns]
        compiled = table.insert().values({n: None for n in names}).compile(dialect=dialect)
        positional = dialect.paramstyle in ("qmark", "format", "numeric")
        if positional and list(compiled.positiontup or ()) != names:
            raise AssertionError(f"unexpected parameter order {compiled.positiontup}")
        _COMPILED[key] = (str(compiled), None if positional else names)
    return _COMPILED[key]


def _sqlite_pragmas(sync: str, busy_timeout_s: float):
    def on_connect(connection, _record):
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {sync.upper()}")
        cursor.close()

    return on_connect


def create(engine) -> None:
    """Create the tables and append-only triggers if missing (safe when writers race); a log
    created before decisions were chained gets the chain columns (null in its old rows).

    PostgreSQL has no REPLACE: an insert of a logged id fails on the primary key, and
    ``INSERT ... ON CONFLICT DO UPDATE`` and ``MERGE`` fire the update or delete trigger,
    which refuses them; ``TRUNCATE`` fires none, so a statement trigger refuses it.
    """
    for attempt in range(3):
        try:
            METADATA.create_all(engine)
            _add_chain_columns(engine)
            statements = _SQLITE_TRIGGERS if engine.dialect.name == "sqlite" else _POSTGRES_TRIGGERS
            with engine.begin() as connection:
                for statement in statements:
                    connection.execute(text(statement))
            return
        except SQLAlchemyError:  # another worker created them in between
            if attempt == 2:
                raise


def _add_chain_columns(engine) -> None:
    from sqlalchemy import inspect

    present = {c["name"] for c in inspect(engine).get_columns("decisions")}
    kinds = {"chain_id": "VARCHAR(32)", "chain_seq": "INTEGER", "chain_hash": "VARCHAR(64)"}
    missing = [c for c in CHAIN_COLUMNS if c not in present]
    if missing:
        with engine.begin() as connection:
            for column in missing:
                connection.execute(
                    text(f"ALTER TABLE decisions ADD COLUMN {column} {kinds[column]}")
                )
