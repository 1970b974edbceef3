"""The region listing system's database: SQLAlchemy 2 models, Alembic migrations, sessions.

SQLite (one file per region) is the default; PostgreSQL is used when the URL says so. The
schema is brought up to date by the migrations each time the database is opened.
"""

from producers.storage import history  # noqa: F401  (registers the history hooks)
from producers.storage.db import Database, open_database

__all__ = ["Database", "open_database"]
