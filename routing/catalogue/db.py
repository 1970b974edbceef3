"""Opening the catalogue database: SQLite by default, PostgreSQL by URL; migrated on open."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import sessionmaker

from listning.runtime import engine_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ENV_VAR = "LISTNING_TAK_DB"
DEFAULT_URL = "sqlite:///tak.db"
# Any constant: serialises concurrent migrations of one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x7A4B_0001


class DatabaseError(RuntimeError):
    """The catalogue database cannot be opened or migrated (message is one readable line)."""


def default_url() -> str:
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def open_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (default: $LISTNING_TAK_DB or sqlite:///tak.db), at the head schema."""
    url = url or default_url()
    try:
        engine = create_engine(engine_url(url), pool_pre_ping=True, hide_parameters=True)
    except (ArgumentError, ValueError):
        # not echoed back: a mistyped URL may still hold a password
        raise DatabaseError("not a database URL (expected e.g. sqlite:///tak.db or "
                            "postgresql://user@host/dbname)") from None
    except ModuleNotFoundError as exc:
        raise DatabaseError(f"the database driver {exc.name!r} is not installed") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    try:
        upgrade(engine)
    except OperationalError as exc:
        engine.dispose()
        where = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"cannot open the catalogue database {where}: {reason}") from None
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # The sqlite3 module would begin a transaction only at the first write, after the overlap
    # check has read; we begin it ourselves (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")  # the CLI and `tak serve` share the file
    cur.close()


def _sqlite_begin(conn) -> None:
    # Take the write lock when the transaction starts, so two processes cannot both pass the
    # overlap check before either writes (PostgreSQL: SELECT ... FOR UPDATE in service.py).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is already there)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # alembic says "Context impl ..." at INFO on every run; only problems are worth showing
    logging.getLogger("alembic").setLevel(logging.WARNING)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
