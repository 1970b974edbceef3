"""Our own extension elements carried in UpdateListing's trailing ``xs:any``.

Namespace ``urn:listning:carelisting:ext:1`` (``##other`` to the Responder schema, so the
contract lets them through under lax processing). A peer that does not know them ignores them;
a peer that does not send them gets the fallback in docs/cross-region-protocol.md.

- ``messageId``: unique per notification; the receiver's de-duplication key.
- ``listingRegisteredTime``: when the listing region registered the choice — the order key of
  the stale-notification rule (the same for every region, whatever its take-effect rule).
- ``listingEffectiveTime``: when the listing takes effect; the old listing ends then.
- ``endedCounty``: on a ``closure`` passed on by a former home region, the county whose
  listing ended (the receiver checks it against its record instead of the caller's county).
- ``standsInForChoiceTime``: on a ``handover`` of a passive listing, when the choice it
  stands in for was made (the one whose end left the resident listed nowhere): the receiver
  orders the listing by it against the choices it knows (a choice made after that one beats
  a passive listing), by ``listingRegisteredTime`` against the ends it knows.
- ``purpose``: change | rechoice | forward | closure | handover — whether it is a resident's
  change (counted against the 12-month limit), a resident choosing again the unit they are
  listed at in another region (counted only if the home region had them elsewhere), or
  bookkeeping between regions (never refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lxml import etree

EXT_NS = "urn:listning:carelisting:ext:1"
PURPOSES = ("change", "rechoice", "forward", "closure", "handover")


@dataclass(frozen=True)
class NotificationMeta:
    message_id: str | None = None
    registered_at: datetime | None = None
    effective_at: datetime | None = None
    purpose: str | None = None
    ended_county: str | None = None
    stands_in_for: datetime | None = None


def _dt(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat()


def to_elements(meta: NotificationMeta) -> list[etree._Element]:
    out: list[etree._Element] = []
    for name, value in (("messageId", meta.message_id),
                        ("listingRegisteredTime", meta.registered_at),
                        ("listingEffectiveTime", meta.effective_at),
                        ("purpose", meta.purpose),
                        ("endedCounty", meta.ended_county),
                        ("standsInForChoiceTime", meta.stands_in_for)):
        if value is None:
            continue
        el = etree.Element(f"{{{EXT_NS}}}{name}", nsmap={"lx": EXT_NS})
        el.text = _dt(value) if isinstance(value, datetime) else str(value)
        out.append(el)
    return out


def from_elements(elements: list[etree._Element] | None) -> NotificationMeta:
    """Read our elements from a model's ``any_``; unknown or malformed ones are ignored."""
    found: dict[str, str] = {}
    for el in elements or []:
        if not isinstance(el.tag, str):
            continue
        qn = etree.QName(el)
        if qn.namespace == EXT_NS and el.text:
            found[qn.localname] = el.text.strip()

    def when(name: str) -> datetime | None:
        try:
            return datetime.fromisoformat(found[name]).replace(tzinfo=None)
        except (KeyError, ValueError):
            return None

    purpose = found.get("purpose")
    message_id = found.get("messageId")
    ended = found.get("endedCounty")
    return NotificationMeta(
        message_id=message_id[:64] if message_id else None,
        registered_at=when("listingRegisteredTime"),
        effective_at=when("listingEffectiveTime"),
        purpose=purpose if purpose in PURPOSES else None,
        ended_county=ended if ended and len(ended) == 2 and ended.isdigit() else None,
        stands_in_for=when("standsInForChoiceTime"),
    )
