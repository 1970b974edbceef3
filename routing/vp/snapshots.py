"""The platform's current catalogue snapshot: loaded from the catalogue, kept on local disk.

The snapshot is swapped as a whole (one attribute assignment), so a call in flight keeps the
snapshot it started with and never sees half of a reload. Every snapshot loaded from the
catalogue is saved as the last good copy in the state directory; at start, when the catalogue
cannot be reached, that copy is used. With neither, ``current`` is None and every call gets VP008.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from routing.snapshot import Snapshot

log = logging.getLogger("routing.vp.snapshots")
STATE_FILE = "last-good-snapshot.json"


@dataclass(frozen=True)
class Loaded:
    snapshot: Snapshot
    loaded_at: float  # time.time()
    origin: str  # "catalogue" or "local-copy"


class SnapshotStore:
    def __init__(self, source: str, state_dir: Path | None, ssl_context: ssl.SSLContext | None,
                 fetch_timeout: float = 10.0) -> None:
        self.source = source
        self.state_file = state_dir / STATE_FILE if state_dir else None
        self._ssl = ssl_context
        self._fetch_timeout = fetch_timeout
        self.loaded: Loaded | None = None
        self.last_error: str | None = None

    @property
    def current(self) -> Snapshot | None:
        loaded = self.loaded
        return loaded.snapshot if loaded else None

    async def _fetch(self) -> Snapshot:
        if self.source.startswith(("http://", "https://")):
            url = self.source.rstrip("/")
            if not url.endswith("/snapshot"):
                url += "/snapshot"
            timeout = aiohttp.ClientTimeout(total=self._fetch_timeout, sock_connect=2.0)
            connector = aiohttp.TCPConnector(ssl=self._ssl if url.startswith("https") else False)
            async with (aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
                        session.get(url) as resp):
                resp.raise_for_status()
                return Snapshot.from_json(await resp.text())
        path = Path(self.source)
        return await asyncio.to_thread(Snapshot.load, path)

    async def reload(self) -> Loaded:
        """Load from the catalogue source, swap it in and save it; raise when that fails."""
        try:
            snapshot = await self._fetch()
        except Exception as exc:  # any failure leaves the current snapshot in place
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        self.loaded = Loaded(snapshot, time.time(), "catalogue")
        self.last_error = None
        if self.state_file:
            try:
                await asyncio.to_thread(snapshot.save, self.state_file)
            except OSError as exc:
                log.warning("cannot save the snapshot to %s: %s", self.state_file, exc)
        log.info("snapshot %s loaded from the catalogue: %d routes, %d permissions",
                 snapshot.snapshot_id, len(snapshot.routes), len(snapshot.permissions))
        return self.loaded

    async def start(self) -> None:
        """Catalogue first; the local copy when the catalogue is unreachable; else nothing."""
        try:
            await self.reload()
            return
        except Exception as exc:
            log.warning("catalogue %s unavailable at start: %s", self.source, exc)
        if self.state_file and self.state_file.exists():
            try:
                snapshot = await asyncio.to_thread(Snapshot.load, self.state_file)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("local snapshot copy %s unreadable: %s", self.state_file, exc)
                return
            self.loaded = Loaded(snapshot, time.time(), "local-copy")
            log.warning("started from the local snapshot copy %s (snapshot %s)",
                        self.state_file, snapshot.snapshot_id)
        else:
            log.error("no catalogue and no local copy: every call gets VP008 until a reload")

    async def refresh(self) -> bool:
        """Fetch the catalogue's snapshot and swap it in if it is a new one (True if swapped).

        Unlike ``reload`` this is quiet when nothing changed, so it can run every few seconds.
        """
        snapshot = await self._fetch()
        loaded = self.loaded
        if (loaded is not None and loaded.origin == "catalogue"
                and loaded.snapshot.snapshot_id == snapshot.snapshot_id):
            return False
        self.loaded = Loaded(snapshot, time.time(), "catalogue")
        self.last_error = None
        if self.state_file:
            try:
                await asyncio.to_thread(snapshot.save, self.state_file)
            except OSError as exc:
                log.warning("cannot save the snapshot to %s: %s", self.state_file, exc)
        log.info("snapshot %s published by the catalogue is now in use: %d routes, "
                 "%d permissions", snapshot.snapshot_id, len(snapshot.routes),
                 len(snapshot.permissions))
        return True

    async def watch(self, interval: float) -> None:
        """Background task: pick up each newly published snapshot within ``interval`` s.

        A failed check keeps the current snapshot (the catalogue may be down for a while)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.debug("catalogue check failed: %s", exc)

    async def retry_until_loaded(self, interval: float) -> None:
        """Background task: keep trying the catalogue until one load from it succeeds."""
        while self.loaded is None or self.loaded.origin != "catalogue":
            await asyncio.sleep(interval)
            try:
                await self.reload()
            except Exception as exc:
                log.debug("catalogue still unavailable: %s", exc)
