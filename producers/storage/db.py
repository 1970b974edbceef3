"""Opening a region database: engine, migrations, transactions.

SQLite runs every transaction as ``BEGIN IMMEDIATE`` (it takes the single writer lock at the
start), so two transactions of one region never interleave: that is how per-person changes are
serialised there — one writer at a time, fine for the pilot. PostgreSQL serialises changes per
person with ``SELECT ... FOR UPDATE`` on the person's row (``lock_person``) and lets outbox
workers in several processes claim rows with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from listning.runtime import engine_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One database transaction: committed on success, rolled back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: SQL errors would otherwise carry personnummer into the logs.
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                           hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# A pooled PostgreSQL connection idle for longer than this is tested before use.
PING_AFTER_IDLE_SECONDS = 2.0


def _postgres_engine(url: str) -> Engine:
    """PostgreSQL with a pool of connections that are tested only after being idle.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout, that is every
    transaction (three in a CreateListing for another region's resident). Here a connection is
    pinged only when it has been idle ``PING_AFTER_IDLE_SECONDS``: after a database restart or
    a dropped connection the first use after a pause still gets a fresh connection. A
    connection used within that time that turns out dead fails its request (a SOAP fault the
    consumer may retry) and SQLAlchemy then replaces every connection of the pool. LIFO: under
    light load the same few connections stay in use (and need no ping)."""
    # hide_parameters: SQL errors would otherwise carry personnummer into the logs.
    engine = create_engine(engine_url(url), pool_size=10, max_overflow=10, pool_use_lifo=True,
                           hide_parameters=True)

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn, record) -> None:  # type: ignore[no-untyped-def]
        record.info["listning.idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        since = record.info.get("listning.idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError("connection lost while idle in the pool") from exc
        if not alive:
            raise DisconnectionError("connection lost while idle in the pool")

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest migration (Alembic, run in-process)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def open_database(url: str, *, upgrade: bool = True) -> Database:
    """Open (and by default migrate) the database at ``url`` (SQLite, or PostgreSQL as
    ``postgresql://`` or with the driver named)."""
    engine = _sqlite_engine(url) if url.startswith("sqlite") else _postgres_engine(url)
    if upgrade:
        migrate(engine)
    return Database(engine)
