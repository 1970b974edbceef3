"""Tables of a region listing system.

Times are naive ``datetime`` in Swedish local time, as on the wire (contracts §3). Personal
identity numbers are stored as the 12-digit extension; HSA-ids upper-cased.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


PID = String(12)
HSA = String(31)
COUNTY = String(2)


class Person(Base):
    """A person the region knows: its residents (from the population feed) and anyone who has
    dealt with its units. The row is also the lock that serialises changes for one person."""

    __tablename__ = "persons"
    person_id: Mapped[str] = mapped_column(PID, primary_key=True)
    id_root: Mapped[str] = mapped_column(String(64))
    home_county: Mapped[str | None] = mapped_column(COUNTY)  # None = not known
    municipality: Mapped[str | None] = mapped_column(String(4))
    birth_date: Mapped[date | None] = mapped_column(Date)
    deceased: Mapped[bool] = mapped_column(Boolean, default=False)
    emigrated: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when the feed says the person moved in: passive listing waits for the old home's
    # handover until this time.
    passive_listing_after: Mapped[datetime | None] = mapped_column(DateTime)
    # Home region: the order key (``listingRegisteredTime``) of the last news that removed the
    # home record — news older than that is stale although no record is left to compare with.
    home_event_at: Mapped[datetime | None] = mapped_column(DateTime)
    # ... and the county whose listing that news ended: a hand-over of that very listing
    # carries the same time, and is as stale (update_listing).
    home_event_county: Mapped[str | None] = mapped_column(COUNTY)
    # Home region: the last closure another region reported (its time, that region): news of
    # a listing there chosen before it is over, whatever else we hold (update_listing).
    home_closure_at: Mapped[datetime | None] = mapped_column(DateTime)
    home_closure_county: Mapped[str | None] = mapped_column(COUNTY)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Listing(Base):
    """A listing at one of the region's own units. History is kept: an ended listing gets
    ``valid_to``; the current one has ``valid_to`` NULL (or in the future)."""

    __tablename__ = "listings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(PID, ForeignKey("persons.person_id"))
    unit_hsa_id: Mapped[str] = mapped_column(HSA)
    type_code: Mapped[str] = mapped_column(String(64))
    type_system: Mapped[str] = mapped_column(String(128))
    personnel_hsa_id: Mapped[str | None] = mapped_column(HSA)
    home_county: Mapped[str] = mapped_column(COUNTY)  # the region that pays for it
    valid_from: Mapped[datetime] = mapped_column(DateTime)
    valid_to: Mapped[datetime | None] = mapped_column(DateTime)
    registered_at: Mapped[datetime] = mapped_column(DateTime)  # when the choice was made
    origin: Mapped[str] = mapped_column(String(16))  # choice | queue | passive
    end_reason: Mapped[str | None] = mapped_column(String(32))
    __table_args__ = (
        Index("ix_listings_person", "person_id", "valid_to"),
        Index("ix_listings_unit", "unit_hsa_id", "valid_to"),
    )


class QueueEntry(Base):
    """A resident waiting for a place at a full unit (they keep their listing meanwhile)."""

    __tablename__ = "queue_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(PID, ForeignKey("persons.person_id"))
    unit_hsa_id: Mapped[str] = mapped_column(HSA)
    type_code: Mapped[str] = mapped_column(String(64))
    type_system: Mapped[str] = mapped_column(String(128))
    personnel_hsa_id: Mapped[str | None] = mapped_column(HSA)
    home_county: Mapped[str] = mapped_column(COUNTY)
    queued_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (
        UniqueConstraint("person_id", "unit_hsa_id", name="uq_queue_person_unit"),
        Index("ix_queue_unit", "unit_hsa_id", "queued_at"),
    )


class HomeRecord(Base):
    """The home region's knowledge of where a resident is listed (one row per resident).

    ``event_at`` is the registration time of the listing this record describes: the order key
    of the stale-notification rule (docs/cross-region-protocol.md)."""

    __tablename__ = "home_records"
    person_id: Mapped[str] = mapped_column(PID, primary_key=True)
    listing_county: Mapped[str] = mapped_column(COUNTY)
    since: Mapped[datetime] = mapped_column(DateTime)  # when this region learnt it
    effective_at: Mapped[datetime] = mapped_column(DateTime)  # when the listing takes effect
    event_at: Mapped[datetime] = mapped_column(DateTime)
    type_code: Mapped[str | None] = mapped_column(String(64))
    type_system: Mapped[str | None] = mapped_column(String(128))


class ListingChange(Base):
    """One counted change of unit by a resident of this region (the 12-month limit)."""

    __tablename__ = "listing_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(PID, index=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime)
    to_county: Mapped[str] = mapped_column(COUNTY)
    message_id: Mapped[str | None] = mapped_column(String(64))


class GuardianConsent(Base):
    """One guardian's request for a child, waiting for the other guardian's (if required)."""

    __tablename__ = "guardian_consents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    child_id: Mapped[str] = mapped_column(PID, index=True)
    guardian_id: Mapped[str] = mapped_column(PID)
    unit_hsa_id: Mapped[str] = mapped_column(HSA)
    given_at: Mapped[datetime] = mapped_column(DateTime)


class OutboxMessage(Base):
    """An UpdateListing to send, written in the same transaction as the change it reports."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    to_county: Mapped[str] = mapped_column(COUNTY)
    person_id: Mapped[str] = mapped_column(PID)
    payload: Mapped[dict] = mapped_column(JSON)  # see producers.outbox.Notification
    purpose: Mapped[str] = mapped_column(String(16))  # producers.ext.PURPOSES
    # pending → delivered | refused | cancelled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(100))  # "host:pid" (outbox.py)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    result_code: Mapped[str | None] = mapped_column(String(48))
    result_text: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # What to undo here if the receiver refuses: {"listing_id": n, "restore_listing_id": m}
    on_refusal: Mapped[dict | None] = mapped_column(JSON)
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class ReceivedMessage(Base):
    """UpdateListing messages already handled, so that a redelivery is answered, not applied."""

    __tablename__ = "received_messages"
    dedup_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    caller_hsa_id: Mapped[str | None] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(PID)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    result_code: Mapped[str] = mapped_column(String(48))
    result_text: Mapped[str | None] = mapped_column(Text)


class AccessLog(Base):
    """Who read or changed whose listing, when, through which contract, as which actor
    (patientdatalagen: every access to a resident's data is logged)."""

    __tablename__ = "access_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    person_id: Mapped[str | None] = mapped_column(PID, index=True)
    contract: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(8))  # read | change
    caller_hsa_id: Mapped[str | None] = mapped_column(String(64))
    original_consumer: Mapped[str | None] = mapped_column(String(64))
    actor_type: Mapped[str | None] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    result_code: Mapped[str] = mapped_column(String(48))


class UnitClosure(Base):
    __tablename__ = "unit_closures"
    unit_hsa_id: Mapped[str] = mapped_column(HSA, primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(DateTime)


class FeedPosition(Base):
    """How far the population-register feed has been consumed (one row)."""

    __tablename__ = "feed_position"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class HomeHistory(Base):
    """Where a resident of this region was listed, period by period (the home records' history,
    written by ``producers.storage.history``; the reports read it for past dates).

    A period counts from ``valid_from`` (the later of when the listing took effect and when
    this region learnt of it or became the resident's home region) to ``valid_to`` (NULL while
    it lasts), as listings do: in force at ``t`` when ``valid_from < t <= valid_to``. A change
    of unit within the same county continues the period."""

    __tablename__ = "home_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(PID)
    listing_county: Mapped[str] = mapped_column(COUNTY)
    valid_from: Mapped[datetime] = mapped_column(DateTime)
    valid_to: Mapped[datetime | None] = mapped_column(DateTime)
    effective_at: Mapped[datetime] = mapped_column(DateTime)  # when the listing took effect
    recorded_at: Mapped[datetime] = mapped_column(DateTime)  # when this region learnt it
    event_at: Mapped[datetime] = mapped_column(DateTime)
    type_code: Mapped[str | None] = mapped_column(String(64))
    type_system: Mapped[str | None] = mapped_column(String(128))
    # changed | returned | unit_closed | moved_away | death | emigration | removed
    end_reason: Mapped[str | None] = mapped_column(String(32))
    __table_args__ = (
        Index("ix_home_history_person", "person_id", "valid_to"),
        Index("ix_home_history_county", "listing_county", "valid_from"),
    )


class PayerChange(Base):
    """A listing at our units whose paying region changed (a resident who moved county): until
    ``changed_at`` ``from_county`` paid, from then ``to_county``. With ``Listing.home_county``
    (the payer now) this gives the payer at any time."""

    __tablename__ = "payer_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    listing_id: Mapped[int] = mapped_column(Integer, ForeignKey("listings.id"), index=True)
    person_id: Mapped[str] = mapped_column(PID)
    from_county: Mapped[str] = mapped_column(COUNTY)
    to_county: Mapped[str] = mapped_column(COUNTY)
    changed_at: Mapped[datetime] = mapped_column(DateTime, index=True)
