"""Alembic migrations of a region database (run in-process by producers.storage.db)."""
