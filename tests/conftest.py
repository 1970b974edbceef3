"""Shared fixtures for every suite."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message="'cgi' is deprecated", category=DeprecationWarning)

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("LISTNING_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, as the bare ``postgresql://user@host/db`` an
    operator would type; dropped afterwards. Skips the test when the server
    (``LISTNING_TEST_POSTGRES_URL``, else the local one) cannot be reached."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from listning.runtime import engine_url

    admin = create_engine(engine_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 3})
    name = f"listning_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc.orig).strip()[:120]}")
    try:
        yield admin.url.set(database=name, drivername="postgresql").render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
