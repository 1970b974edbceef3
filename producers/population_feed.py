"""Consuming the population register's change feed (moves, births, deaths, emigration).

The feed position is stored in the region's database and advanced in the same transaction as
the changes it covers, so each entry is applied exactly once even if the consumer stops half
way; entries are applied in sequence order, a page at a time.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from producers import flows
from producers.storage.models import FeedPosition

if TYPE_CHECKING:
    from producers.region import Region


class ChangeFeed(Protocol):
    def changes_since(self, seq: int, limit: int = 1000) -> list[Any]: ...


def position(region: Region) -> int:
    with region.db.transaction() as s:
        row = s.get(FeedPosition, 1)
        return row.last_seq if row else 0


def consume(region: Region, feed: ChangeFeed, now: datetime | None = None,
            page: int = 500) -> int:
    """Apply every new feed entry; returns how many were applied."""
    now = now or region.clock()
    applied = 0
    while True:
        with region.db.transaction() as s:
            q = select(FeedPosition).where(FeedPosition.id == 1)
            row = s.execute(q if region.db.is_sqlite else q.with_for_update()).scalar_one_or_none()
            if row is None:
                row = FeedPosition(id=1, last_seq=0, updated_at=now)
                s.add(row)
                s.flush()
            changes = feed.changes_since(row.last_seq, page)
            for change in changes:
                flows.apply_population_change(region, s, change, now)
                row.last_seq = change.seq
            row.updated_at = now
            applied += len(changes)
        if len(changes) < page:
            break
    flows.run_passive_listing(region, now)
    return applied
