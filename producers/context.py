"""What a handler knows about the call besides the request itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import uuid4
from zoneinfo import ZoneInfo

SWEDEN = ZoneInfo("Europe/Stockholm")


def local_now() -> datetime:
    """Swedish local time, naive, to the second (the contracts' dateTime form)."""
    return datetime.now(SWEDEN).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class CallContext:
    caller_hsa_id: str | None  # the platform's sender id (from the TLS certificate)
    original_consumer: str | None = None  # x-rivta-original-serviceconsumer-hsaid
    correlation_id: str = field(default_factory=lambda: str(uuid4()))
    now: datetime = field(default_factory=local_now)
