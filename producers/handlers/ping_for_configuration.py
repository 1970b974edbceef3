"""PingForConfiguration: the producer is up, its database answers; a few figures for operators
(the outbox backlog first among them)."""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from interactions.models import message_class, type_class
from producers.context import CallContext
from producers.storage.models import OutboxMessage

if TYPE_CHECKING:
    from producers.region import Region


def _version() -> str:
    try:
        return metadata.version("listning")
    except metadata.PackageNotFoundError:
        return "0"


def handle(region: Region, req: Any, ctx: CallContext) -> Any:
    with region.db.transaction() as s:
        pending, oldest = s.execute(select(func.count(), func.min(OutboxMessage.created_at))
                                    .where(OutboxMessage.status == "pending")).one()
    conf = type_class("ConfigurationType", "urn:riv:itintegration:monitoring:1")
    pairs = [("county", region.county), ("region", region.config.name),
             ("hsaId", region.hsa_id), ("units", str(len(region.config.units))),
             ("database", "ok"), ("outboxPending", str(pending))]
    if oldest is not None:
        pairs.append(("outboxOldestPending", oldest.isoformat()))
    return message_class("PingForConfigurationResponse")(
        version=_version(), pingDateTime=ctx.now.strftime("%Y%m%d%H%M%S"),
        configuration=[conf(name=n, value=v) for n, v in pairs])
