"""UpdateListing: another region tells this one where a resident is now listed.

Two roles, by ``homeCounty``:
- this region is the **home region**: record where the resident is listed, end our own
  listing, count the change against the 12-month limit (ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED
  when it is used up), and forward to the region that held the listing before (A → C);
- this region is a **listing region**: the resident is listed elsewhere now, so end the
  listing at our unit — or, when ``newListingCounty`` is us, the resident moved and
  ``homeCounty`` is the new home region that pays for the listing.

De-duplication and the stale-notification rule: docs/cross-region-protocol.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from interactions import identifiers as ids
from producers import ext, listings, outbox
from producers.context import CallContext
from producers.handlers.common import county_code, peek_person_id, person_id, response, run
from producers.storage import history
from producers.storage.models import HomeRecord, Listing, QueueEntry, ReceivedMessage
from producers.texts import text

if TYPE_CHECKING:
    from producers.region import Region

CONTRACT = "UpdateListing"


def handle(region: Region, req: Any, ctx: CallContext) -> Any:
    return run(region, ctx, CONTRACT, "change", req, peek_person_id(req.personId),
               lambda s: _apply(region, s, req, ctx))


def dedup_key(ctx: CallContext, pid: str, new: str, home: str,
              meta: ext.NotificationMeta) -> str | None:
    if meta.message_id:
        return f"id:{meta.message_id}"
    if meta.registered_at is not None:  # a peer without message ids but with our time stamp
        return f"at:{ctx.caller_hsa_id}:{pid}:{new}:{home}:{meta.registered_at.isoformat()}"
    return None


def _apply(region: Region, s: Session, req: Any, ctx: CallContext) -> Any:
    pid = person_id(req.personId)
    new = county_code(req.newListingCounty)
    home = county_code(req.homeCounty)
    meta = ext.from_elements(req.any_)
    lt = req.listingType
    listings.lock_person(s, pid, ctx.now, req.personId.root)
    key = dedup_key(ctx, pid, new, home, meta)
    if key is not None:
        seen = s.get(ReceivedMessage, key)
        if seen is not None:  # a redelivery: answer as the first time, apply nothing
            return response(CONTRACT, seen.result_code, seen.result_text)
    # Fallback for peers that send no time stamps: the notification is as new as its arrival.
    event_at = meta.registered_at or ctx.now
    effective_at = meta.effective_at or event_at
    if home == region.county:
        code, message = _at_home(region, s, pid, new, event_at, effective_at, meta, ctx,
                                 getattr(lt, "code", None), getattr(lt, "codeSystem", None))
    else:
        code, message = _at_listing_region(region, s, pid, new, home, event_at, effective_at,
                                           ctx)
    if key is not None:
        s.add(ReceivedMessage(dedup_key=key, caller_hsa_id=ctx.caller_hsa_id, person_id=pid,
                              received_at=ctx.now, result_code=code, result_text=message))
    return response(CONTRACT, code, message)


def _at_home(region: Region, s: Session, pid: str, new: str, event_at: datetime,
             effective_at: datetime, meta: ext.NotificationMeta, ctx: CallContext,
             type_code: str | None, type_system: str | None) -> tuple[str, str | None]:
    me = region.county
    record = s.get(HomeRecord, pid)
    own = listings.current_listing(s, pid)
    # A hand-over after a move reports the resident's own choice: it beats a passive listing
    # made here meanwhile, however old it is.
    beats_passive = (meta.purpose == "handover" and own is not None and own.origin == "passive"
                     and record is not None and record.listing_county == me)
    if record is not None and event_at < record.event_at and not beats_passive:
        # Stale: we already hold a newer listing. The region it names may still list the
        # resident, so tell it where the resident is listed now (it ends its listing).
        if new not in (me, record.listing_county):
            outbox.enqueue(s, me, new, outbox.Notification(
                person_id=pid, new_county=record.listing_county, home_county=me,
                type_code=record.type_code, type_system=record.type_system,
                registered_at=record.event_at, effective_at=record.effective_at,
                purpose="forward"), ctx.now)
        return "OK", text("stale_ignored")
    if new == me:
        # Responsibility comes back (the listing elsewhere ended without a new choice).
        sender = ids.county_of_hsa_id(ctx.caller_hsa_id or "")
        if record is not None and sender is not None and record.listing_county not in (me,
                                                                                         sender):
            return "OK", text("stale_ignored")  # about a listing we no longer hold as current
        if own is None:
            if record is not None:
                history.home_record_ends(s, pid, effective_at, "returned")
                s.delete(record)  # listed nowhere until the resident (or passive listing) chooses
            from producers import flows

            flows.passive_listing_if_due(region, s, pid, ctx.now, ignore_grace=True)
        else:
            listings.set_home_record(s, pid, me, ctx.now, own.valid_from, event_at,
                                     own.type_code, own.type_system)
        return "OK", None
    # The resident is listed in region `new` now.
    counts = meta.purpose == "change" or (meta.purpose is None and (record is not None
                                                                     or own is not None))
    if counts and (record is not None or own is not None):
        if listings.limit_reached(region, s, pid, ctx.now):
            return "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED", text(
                "annual_limit", limit=region.config.rules.changes_per_12_months,
                next_date=listings.next_change_date(region, s, pid, ctx.now))
        listings.record_change(s, pid, ctx.now, new, meta.message_id)
    if own is not None:
        listings.end_listing(own, effective_at, "listed_elsewhere")
    s.execute(delete(QueueEntry).where(QueueEntry.person_id == pid))
    before = listings.set_home_record(s, pid, new, ctx.now, effective_at, event_at,
                                      type_code, type_system)
    if before is not None and before not in (me, new):
        # three regions: the one that held the listing must end it (A → C)
        outbox.enqueue(s, me, before, outbox.Notification(
            person_id=pid, new_county=new, home_county=me, type_code=type_code,
            type_system=type_system, registered_at=event_at, effective_at=effective_at,
            purpose="forward"), ctx.now)
    if own is not None:
        listings.admit_from_queue(region, s, own.unit_hsa_id, ctx.now)
    return "OK", None


def _at_listing_region(region: Region, s: Session, pid: str, new: str, home: str,
                       event_at: datetime, effective_at: datetime,
                       ctx: CallContext) -> tuple[str, str | None]:
    own = listings.current_listing(s, pid)
    queued = listings.queue_entries_of(s, pid)
    if new == region.county:
        # Hand-over after a move: the listing here is now paid for by the new home region.
        if own is None and not queued:
            return "OK", text("not_for_this_region", region=region.config.name)
        for item in ([own] if own else []) + queued:
            history.change_payer(s, item, home, ctx.now)
        return "OK", None
    if own is not None and own.registered_at > event_at:
        # The resident chose us again after that. The listings that choice replaced here are
        # over all the same: should the home region refuse it, none of them comes back.
        for old in s.execute(select(Listing).where(
                Listing.person_id == pid, Listing.end_reason == "changed",
                Listing.registered_at <= event_at)).scalars():
            old.end_reason = "listed_elsewhere"
        return "OK", text("stale_ignored")
    for q in queued:
        if q.queued_at <= event_at:
            s.delete(q)
    if own is not None:
        listings.end_listing(own, effective_at, "listed_elsewhere")
        s.flush()
        listings.admit_from_queue(region, s, own.unit_hsa_id, ctx.now)
    return "OK", None
