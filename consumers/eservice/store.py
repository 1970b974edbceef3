"""The e-service's own SQLite database in its data directory: sessions and receipts.

Sessions are server-side: the cookie holds only a random token; the table holds the token's
SHA-256, so a copy of the database cannot be replayed as cookies. Receipts ("Kvitton") record
each change a resident made: when, which unit, in which region, the result and the
correlation id to quote to support.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    created REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    person_id TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    action TEXT NOT NULL,
    unit_hsa_id TEXT NOT NULL,
    unit_name TEXT NOT NULL,
    county TEXT NOT NULL,
    result_code TEXT NOT NULL,
    result_text TEXT NOT NULL,
    correlation_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_receipts_person ON receipts (person_id, created);
CREATE INDEX IF NOT EXISTS ix_receipts_actor ON receipts (actor_id, created);
"""

SESSION_IDLE_SECONDS = 30 * 60  # 1177 logs out after a while without activity
SESSION_MAX_SECONDS = 8 * 3600


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Receipt:
    id: str
    created: datetime
    person_id: str
    actor_id: str
    actor_type: str
    action: str  # "listing" | "doctor" | "queue-join" | "queue-leave"
    unit_hsa_id: str
    unit_name: str
    county: str
    result_code: str  # a resultCode, or "TECHNICAL_ERROR"
    result_text: str
    correlation_id: str

    @property
    def done(self) -> bool:
        return self.result_code in ("OK", "INFO")


class Store:
    """Thread-safe access to the database file (one connection, serialised)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- sessions ---------------------------------------------------------------------

    def new_session(self, data: dict[str, Any]) -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
                             (_hash(token), json.dumps(data), now, now))
        return token

    def load_session(self, token: str) -> dict[str, Any] | None:
        now = time.time()
        with self._lock:
            row = self._db.execute("SELECT data, created, last_seen FROM sessions "
                                   "WHERE token_hash = ?", (_hash(token),)).fetchone()
            if row is None:
                return None
            data, created, last_seen = row
            if now - last_seen > SESSION_IDLE_SECONDS or now - created > SESSION_MAX_SECONDS:
                self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (_hash(token),))
                return None
            self._db.execute("UPDATE sessions SET last_seen = ? WHERE token_hash = ?",
                             (now, _hash(token)))
        return json.loads(data)

    def save_session(self, token: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("UPDATE sessions SET data = ?, last_seen = ? WHERE token_hash = ?",
                             (json.dumps(data), time.time(), _hash(token)))

    def delete_session(self, token: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (_hash(token),))

    def purge_sessions(self) -> int:
        now = time.time()
        with self._lock:
            cur = self._db.execute("DELETE FROM sessions WHERE last_seen < ? OR created < ?",
                                   (now - SESSION_IDLE_SECONDS, now - SESSION_MAX_SECONDS))
        return cur.rowcount

    # --- receipts ---------------------------------------------------------------------

    def add_receipt(self, *, person_id: str, actor_id: str, actor_type: str, action: str,
                    unit_hsa_id: str, unit_name: str, county: str, result_code: str,
                    result_text: str, correlation_id: str,
                    created: datetime | None = None) -> Receipt:
        when = created or datetime.now(ZoneInfo("Europe/Stockholm")).replace(tzinfo=None)
        receipt = Receipt(secrets.token_urlsafe(12), when.replace(microsecond=0), person_id,
                          actor_id, actor_type, action, unit_hsa_id, unit_name, county,
                          result_code, result_text, correlation_id)
        with self._lock:
            self._db.execute(
                "INSERT INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (receipt.id, receipt.created.isoformat(), person_id, actor_id, actor_type,
                 action, unit_hsa_id, unit_name, county, result_code, result_text,
                 correlation_id))
        return receipt

    def receipts_for(self, person_id: str) -> list[Receipt]:
        """The receipts of changes for ``person_id`` and those ``person_id`` made for others
        (a guardian sees what they did for a child), newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM receipts WHERE person_id = ? OR actor_id = ? "
                "ORDER BY created DESC, rowid DESC", (person_id, person_id)).fetchall()
        return [_receipt(r) for r in rows]

    def receipt(self, receipt_id: str) -> Receipt | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM receipts WHERE id = ?",
                                   (receipt_id,)).fetchone()
        return _receipt(row) if row else None


def _receipt(row: tuple[Any, ...]) -> Receipt:
    return Receipt(row[0], datetime.fromisoformat(row[1]), *row[2:])
