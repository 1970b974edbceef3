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
from producers.storage.models import (
    HomeRecord,
    Listing,
    OutboxMessage,
    Person,
    QueueEntry,
    ReceivedMessage,
)
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
    moved_to = _moved_away_to(region, s, pid, ctx.now) if home == region.county else None
    if moved_to is not None:
        code, message = _for_a_former_resident(region, s, pid, new, moved_to, event_at,
                                               effective_at, ctx, getattr(lt, "code", None),
                                               getattr(lt, "codeSystem", None),
                                               meta.stands_in_for)
    elif home == region.county:
        code, message = _at_home(region, s, pid, new, event_at, effective_at, meta, ctx,
                                 getattr(lt, "code", None), getattr(lt, "codeSystem", None))
    else:
        code, message = _at_listing_region(region, s, pid, new, home, event_at, effective_at,
                                           ctx)
    if key is not None:
        s.add(ReceivedMessage(dedup_key=key, caller_hsa_id=ctx.caller_hsa_id, person_id=pid,
                              received_at=ctx.now, result_code=code, result_text=message))
    return response(CONTRACT, code, message)


def _moved_away_to(region: Region, s: Session, pid: str, at: datetime) -> str | None:
    """The county a resident of ours lives in now, if they moved away while a notification
    naming us as home was on its way; None while they are ours (or we cannot tell).

    A hint from our own state — a listing at our units billed to another region (registered
    with the home county the resident had then, newer than a feed not yet read), or the
    population feed — is checked with the register, which may be ahead of our feed (the
    resident may have moved back here)."""
    me = region.county
    own = listings.current_listing(s, pid)
    person = listings.keep(s, s.get(Person, pid))
    hint = (own.home_county if own is not None and own.home_county != me
            else person.home_county if person is not None and person.home_county
            and person.home_county != me else None)
    if hint is None:
        return None
    # Our feed may lag behind a move back here: the register has the last word.
    lives_in = region.registered_home_county(pid)
    if lives_in == me:
        from producers import flows

        # the caller holds the person's lock, so the row is there (read just above)
        flows.resident_again(region, s, person or listings.lock_person(s, pid, at), at)
        return None
    return lives_in or hint


def _for_a_former_resident(region: Region, s: Session, pid: str, new: str, moved_to: str,
                           event_at: datetime, effective_at: datetime, ctx: CallContext,
                           type_code: str | None, type_system: str | None,
                           stands_in_for: datetime | None = None) -> tuple[str, str | None]:
    """A notification that names us as home reached us after the resident moved away: we
    are not the home region any more, so we neither record it nor count it. A listing at our
    units is treated as any listing region treats it, and the news goes on to the new home
    region as a hand-over (its record, never counted or refused there)."""
    me = region.county
    if new == me:
        # "Back to the home region": the listing in the caller's county ended. The new home
        # region may have that listing on record (from a hand-over): pass the end on, naming
        # the county whose listing it was.
        ended = ids.county_of_hsa_id(ctx.caller_hsa_id or "")
        if ended is None or ended == moved_to:
            return "OK", text("not_home_any_more", region=region.config.name)
        outbox.enqueue(s, me, moved_to, outbox.Notification(
            person_id=pid, new_county=moved_to, home_county=moved_to, type_code=None,
            type_system=None, registered_at=event_at, effective_at=effective_at,
            purpose="closure", ended_county=ended), ctx.now)
        return "OK", text("moved_away", region=region.config.name)
    _at_listing_region(region, s, pid, new, moved_to, event_at, effective_at, ctx)
    if moved_to != new:  # the listing region is the new home: it knows already
        # as on a move (flows._move): the new home records it, the listing region bills it
        # to the new home — it registered the choice with us as home, and its feed may never
        # show it otherwise (a move here and on, read as one)
        for to in (moved_to, new):
            outbox.enqueue(s, me, to, outbox.Notification(
                person_id=pid, new_county=new, home_county=moved_to, type_code=type_code,
                type_system=type_system, registered_at=event_at, effective_at=effective_at,
                purpose="handover", stands_in_for=stands_in_for), ctx.now)
    return "OK", text("moved_away", region=region.config.name)


def _at_home(region: Region, s: Session, pid: str, new: str, event_at: datetime,
             effective_at: datetime, meta: ext.NotificationMeta, ctx: CallContext,
             type_code: str | None, type_system: str | None) -> tuple[str, str | None]:
    me = region.county
    record = s.get(HomeRecord, pid)
    own = listings.current_listing(s, pid)
    person = listings.keep(s, s.get(Person, pid))
    # Older than news that left the resident listed nowhere here (a closure, the end of a
    # listing elsewhere; ordered by the choice that ended): stale, whatever was recorded
    # since. Equal times are not stale, as everywhere (the later arrival wins: a choice made
    # again in the same second) — except a hand-over of the very listing that ended: same
    # county, same choice, and a hand-over is never a new choice.
    before_removal = (person is not None and person.home_event_at is not None
                      and (event_at < person.home_event_at
                           or (event_at == person.home_event_at and meta.purpose == "handover"
                               and new == person.home_event_county)))
    # (the county whose listing a closure or "back to the home region" ended)
    sender = meta.ended_county or ids.county_of_hsa_id(ctx.caller_hsa_id or "")
    # A listing in a region that has since reported the closure of the resident's unit there:
    # over, whatever we hold now (the closure may have come first: its notice was retried).
    # Remembered even when the closure itself is stale here: a passive listing made since
    # would otherwise give way to the closed choice's notice (beats_passive).
    if (meta.purpose == "closure" and new == me and person is not None
            and sender not in (None, me)
            and (person.home_closure_at is None or event_at >= person.home_closure_at)):
        person.home_closure_at, person.home_closure_county = event_at, sender
    closed_since = (person is not None and person.home_closure_at is not None
                    and new == person.home_closure_county and event_at < person.home_closure_at)
    # A hand-over of a passive listing: against the ends above it is as new as the listing
    # (made after them); against the choices we know, as old as the choice it stands in for
    # (a choice made after that one beats it, as it does a passive listing of ours below).
    if meta.purpose == "handover" and meta.stands_in_for is not None:
        event_at = min(event_at, meta.stands_in_for)
    # News of the resident's own choice (a change, a re-choice, a hand-over after a move)
    # beats a passive listing made here meanwhile, however old it is — unless it is older
    # than such news: the passive listing only stands in for a choice we did not know of.
    beats_passive = (meta.purpose != "closure" and own is not None and own.origin == "passive"
                     and record is not None and record.listing_county == me
                     and not before_removal and not closed_since)
    # A listing at our units chosen while the resident lived in another region, whose notice
    # still waits for that region's verdict: not known to stand yet (it may be refused at
    # the limit). News older than it is recorded, and the two are compared when the verdict
    # comes (flows.own_listing_settled) — judging by it now ended listings that stood.
    unsettled = own is not None and listings.awaiting_home(s, own)
    # What we know: the record, or a listing at our own units (which has no record when the
    # resident moved here while listed with us, and the hand-over has not arrived yet).
    known_at = max([t for t in (record.event_at if record is not None else None,
                                own.registered_at if own is not None and not unsettled
                                else None)
                    if t is not None], default=None)
    if closed_since and known_at is None:
        return "OK", text("stale_ignored")  # the unit it names has closed: nothing to end
    if before_removal and known_at is None:
        # Listed nowhere since that news: a region still holding the listing ends it.
        if new != me:
            listings.tell_to_end(s, me, new, pid, person.home_event_at, person.home_event_at,
                                 ctx.now)
        return "OK", text("stale_ignored")
    if not (known_at is not None and event_at < known_at) and own is None:
        # The resident chose one of our units after this news, and that listing has ended
        # since (a closure before they moved here, say): that choice replaced what the news
        # reports. Stale; a region still holding that listing ends it.
        chosen_here = listings.last_ended_choice(s, pid)
        if chosen_here is not None and event_at < chosen_here:
            if new != me:
                listings.tell_to_end(s, me, new, pid, chosen_here, chosen_here, ctx.now)
            return "OK", text("stale_ignored")
    if known_at is not None and (event_at < known_at or before_removal or closed_since) \
            and not beats_passive:
        # Stale: we already hold a newer listing. The region it names may still list the
        # resident, so tell it where the resident is listed now (it ends its listing).
        where = record.listing_county if record is not None else me
        if new not in (me, where):
            outbox.enqueue(s, me, new, outbox.Notification(
                person_id=pid, new_county=where, home_county=me,
                type_code=record.type_code if record is not None else own.type_code,
                type_system=record.type_system if record is not None else own.type_system,
                registered_at=known_at,
                effective_at=record.effective_at if record is not None else own.valid_from,
                purpose="forward"), ctx.now)
        return "OK", text("stale_ignored")
    if new == me:
        # Responsibility comes back (the listing elsewhere ended without a new choice).
        if record is not None and sender is not None and record.listing_county not in (me,
                                                                                         sender):
            if meta.purpose != "handover":
                return "OK", text("stale_ignored")  # about a listing we no longer hold
            # A hand-over is ordered by the choice it reports, newer than our record (not
            # stale, above): the region our record names must end its listing.
            listings.tell_to_end(s, me, record.listing_county, pid, event_at, effective_at,
                                 ctx.now)
        # The choice that ended was made after our own listing (a "listed nowhere" hand-over
        # names its time; a closure, the record's): that choice replaced ours — the notice
        # telling us so may still be on its way. Ours is over too: listed nowhere.
        ended_choice = (event_at if meta.purpose == "handover" and meta.ended_county
                        not in (None, me)
                        else record.event_at if meta.purpose == "closure" and record is not None
                        and record.listing_county == sender else None)
        if (own is not None and not unsettled and ended_choice is not None
                and own.registered_at < ended_choice):
            # ended when that choice took effect (the record's), else when it was made (a
            # "listed nowhere" hand-over carries the end's time, not the choice's): a gap of
            # hours at most, never two listings in force at once
            listings.end_listing(own, record.effective_at if meta.purpose == "closure"
                                 else ended_choice, "listed_elsewhere")
            s.flush()
            listings.admit_from_queue(region, s, own.unit_hsa_id, ctx.now)
            own = None
        if own is None or unsettled:
            # (Our listing still awaiting another home region's verdict is not known to stand:
            # it is recorded when the verdict comes, flows.own_listing_settled. Recording it
            # now left a record naming us when it was refused.)
            # Older news is stale from now on: older than the choice that ended (the record's,
            # or a hand-over's own), or, with no record, than the end itself.
            ended = (event_at if meta.purpose == "handover" or record is None
                     else record.event_at)
            # ... and where that listing was: the county a hand-over names as ended, else
            # the record's (it names the sender or us: stale above otherwise)
            where = ((meta.ended_county or me) if meta.purpose == "handover"
                     else record.listing_county if record is not None else (sender or me))
            if record is not None:
                history.home_record_ends(s, pid, effective_at, "returned")
                s.delete(record)  # listed nowhere until the resident (or passive listing) chooses
            if person is not None:
                listings.mark_listed_nowhere(person, ended, where)
            from producers import flows

            flows.passive_listing_if_due(region, s, pid, ctx.now, ignore_grace=True)
        else:
            # Our listing is the one in force, ordered by the newest choice we know of — never
            # by a closure's time: a closure is no choice, and a re-choice made elsewhere after
            # ours but before the closure must not look stale when it comes.
            chosen = max(t for t in (own.registered_at,
                                     record.event_at if record is not None else None,
                                     event_at if meta.purpose != "closure" else None)
                         if t is not None)
            listings.set_home_record(s, pid, me, ctx.now, own.valid_from, chosen,
                                     own.type_code, own.type_system)
        return "OK", None
    # The resident is listed in region `new` now.
    if meta.purpose == "rechoice" and own is None and record is not None \
            and record.listing_county == new:
        # Chosen again where we already have them: no change; older news is stale from now on.
        record.event_at = max(record.event_at, event_at)
        return "OK", None
    counts = meta.purpose in ("change", "rechoice") or (
        meta.purpose is None and (record is not None or own is not None))
    if counts and (record is not None or own is not None):
        if listings.limit_reached(region, s, pid, ctx.now):
            return "ERROR_MAXIMUM_ANNUAL_UPDATES_EXCEEDED", text(
                "annual_limit", limit=region.config.rules.changes_per_12_months,
                next_date=listings.next_change_date(region, s, pid, ctx.now))
        listings.record_change(s, pid, ctx.now, new, meta.message_id)
    # Older than our unsettled listing: recorded, our listing kept until its verdict.
    deferred = unsettled and event_at < own.registered_at
    if own is not None and not deferred:
        listings.end_listing(own, effective_at, "listed_elsewhere")
    if not deferred:
        s.execute(delete(QueueEntry).where(QueueEntry.person_id == pid))
        _withdraw_superseded(region, s, pid, new, ctx.now)
    before = listings.set_home_record(s, pid, new, ctx.now, effective_at, event_at,
                                      type_code, type_system)
    if before is not None and before not in (me, new):
        # three regions: the one that held the listing must end it (A → C)
        outbox.enqueue(s, me, before, outbox.Notification(
            person_id=pid, new_county=new, home_county=me, type_code=type_code,
            type_system=type_system, registered_at=event_at, effective_at=effective_at,
            purpose="forward"), ctx.now)
    if own is not None and not deferred:
        listings.admit_from_queue(region, s, own.unit_hsa_id, ctx.now)
    return "OK", None


def _withdraw_superseded(region: Region, s: Session, pid: str, new: str,
                         now: datetime) -> None:
    """The resident is listed in ``new`` now: our notices still waiting to tell ``new`` that
    the resident is listed somewhere else are out of date — withdraw them. (The stale rule
    would make most of them harmless, but not one sent in the same second as this choice.)
    A notice already on its way cannot be withdrawn; the stale rule is all there is then."""
    rows = s.execute(select(OutboxMessage.id).where(
        OutboxMessage.person_id == pid, OutboxMessage.to_county == new,
        OutboxMessage.status == "pending", OutboxMessage.purpose == "forward",
        OutboxMessage.lease_until.is_(None))).scalars()
    for row_id in list(rows):
        row = s.get(OutboxMessage, row_id)
        if row is not None and row.payload.get("new_county") != new:
            row.status, row.finished_at = "cancelled", now
            row.last_error = "withdrawn: the resident chose this region again"


def _at_listing_region(region: Region, s: Session, pid: str, new: str, home: str,
                       event_at: datetime, effective_at: datetime,
                       ctx: CallContext) -> tuple[str, str | None]:
    own = listings.current_listing(s, pid)
    queued = listings.queue_entries_of(s, pid)
    if new == region.county:
        # Hand-over after a move: the listing here is now paid for by the new home region.
        if own is None and not queued:
            return "OK", text("not_for_this_region", region=region.config.name)
        person = listings.keep(s, s.get(Person, pid))
        if person is not None and person.home_county and person.home_county != home:
            # The feed has told us of a later move (the resident may even live here now):
            # the feed set the payer, an older hand-over must not undo it.
            return "OK", text("stale_ignored")
        for item in ([own] if own else []) + queued:
            history.change_payer(s, item, home, ctx.now)
        return "OK", None
    if own is not None and listings.outdates(s.get(Person, pid), own, event_at, new):
        # The resident chose us again after that (or, for a passive listing, the choice it
        # stands in for was made after that). The listings that choice replaced here are
        # over all the same: should the home region refuse it, none of them comes back.
        for old in s.execute(select(Listing).where(
                Listing.person_id == pid, Listing.end_reason == "changed",
                Listing.registered_at <= event_at)).scalars():
            old.end_reason = "listed_elsewhere"
        # Likewise for a re-choice (of this listing, or of one it replaced here) made after
        # this notification of a listing that was older: a refusal puts that listing back as
        # it was, and then this notification ends it.
        for row in s.execute(select(OutboxMessage).where(
                OutboxMessage.person_id == pid, OutboxMessage.purpose == "rechoice",
                OutboxMessage.status == "pending")).scalars():
            undo = row.on_refusal or {}
            if (not undo.get("ends")
                    and datetime.fromisoformat(undo["before"]["registered_at"]) <= event_at):
                row.on_refusal = {**undo, "ends": effective_at.isoformat()}
        return "OK", text("stale_ignored")
    for q in queued:
        if q.queued_at <= event_at:
            s.delete(q)
    if own is not None:
        listings.end_listing(own, effective_at, "listed_elsewhere")
        s.flush()
        listings.admit_from_queue(region, s, own.unit_hsa_id, ctx.now)
    return "OK", None
