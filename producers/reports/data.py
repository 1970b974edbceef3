"""What the reports count, read from one region's own database.

Two views of cross-region listing live in a region's database (contracts §6):

- as **listing region**, ``listings``: every listing at our units with its history
  (``valid_from``/``valid_to``) and ``home_county``, the region that pays for it;
- as **home region**, ``home_records``: for each of our residents, the county where they are
  listed now (one row per resident, replaced on every change: no history), and ``outbox``: the
  UpdateListing messages we sent, which tell when a listing elsewhere ended (``forward``) or a
  resident moved away while listed elsewhere (``handover``).

A listing is *in force at the end of a day* when it started before midnight and had not ended
by then; a listing that never took effect (``valid_to == valid_from``) is never counted.
Rows stream from server-side cursors (``yield_per``), so a person list of millions of rows is
written as it is read, in steady memory.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import Connection, String, and_, cast, func, or_, select

from interactions import identifiers as ids
from producers.config import RegionConfig
from producers.storage.models import HomeRecord, Listing, OutboxMessage, QueueEntry

STREAM_ROWS = 10_000


def day_end(d: date) -> datetime:
    """Midnight after ``d``: the instant a day's snapshot is taken at."""
    return datetime.combine(d + timedelta(days=1), time.min)


def in_force_at(t: datetime):  # type: ignore[no-untyped-def]
    """SQL condition: the listing is in force just before ``t``."""
    return and_(Listing.valid_from < t, or_(Listing.valid_to.is_(None), Listing.valid_to >= t))


def county_name(code: str | None) -> str:
    if not code:
        return ""
    c = ids.counties().get(code)
    return c.name if c else code


def region_name(code: str) -> str:
    c = ids.counties().get(code)
    return c.region_name if c else code


def month_bounds(month: str) -> tuple[date, date]:
    """``2026-10`` → (first day, last day); ``ValueError`` with a readable text otherwise."""
    parts = month.split("-")
    if (len(parts) != 2 or len(parts[0]) != 4 or len(parts[1]) != 2
            or not (parts[0].isdigit() and parts[1].isdigit()) or not 1 <= int(parts[1]) <= 12):
        raise ValueError(f"bad month {month!r}: expected YYYY-MM, e.g. 2026-10")
    first = date(int(parts[0]), int(parts[1]), 1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return first, last


def month_ends(last: date, count: int) -> list[date]:
    """The last days of the ``count - 1`` months before ``last``'s month, then ``last`` itself
    (oldest first): the points of the charts over time."""
    out = [last]
    first = last.replace(day=1)
    for _ in range(count - 1):
        end = first - timedelta(days=1)
        out.append(end)
        first = end.replace(day=1)
    return out[::-1]


def point_label(d: date) -> str:
    """``2026-10`` for a month's last day, the date itself otherwise."""
    return d.strftime("%Y-%m") if (d + timedelta(days=1)).day == 1 else d.isoformat()


def _stream(conn: Connection, q):  # type: ignore[no-untyped-def]
    return conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(q)


# --- listed -------------------------------------------------------------------------------------

LISTED_COLUMNS = ("person_id", "unit_hsa_id", "unit_name", "listing_type", "listing_type_name",
                  "since", "fixed_doctor_hsa_id", "fixed_doctor_name", "queue_status",
                  "home_county", "home_county_name", "origin")


@dataclass(frozen=True)
class UnitTotal:
    hsa_id: str
    name: str
    listed: int
    other_counties: int  # of them residents of other regions
    cap: int | None
    queued: int  # waiting in the unit's queue now


@dataclass
class ListedTotals:
    at: date
    units: list[UnitTotal]
    counties: list[tuple[str, str, int]]  # (code, name, listed), own county first

    @property
    def total(self) -> int:
        return sum(u.listed for u in self.units)

    @property
    def other_counties(self) -> int:
        return sum(u.other_counties for u in self.units)


def _queue_status(conn: Connection, cfg: RegionConfig) -> tuple[dict[str, str], Counter[str]]:
    """Each queued person's queue places as text, and the queue length per unit (now: the
    queue has no history)."""
    rows = conn.execute(select(QueueEntry.person_id, QueueEntry.unit_hsa_id)
                        .order_by(QueueEntry.unit_hsa_id, QueueEntry.queued_at, QueueEntry.id))
    status: dict[str, list[str]] = defaultdict(list)
    lengths: Counter[str] = Counter()
    for pid, unit in rows:
        lengths[unit] += 1
        u = cfg.unit(unit)
        status[pid].append(f"queued at {u.name if u else unit} (#{lengths[unit]})")
    return {p: "; ".join(v) for p, v in status.items()}, lengths


def listed_totals(conn: Connection, cfg: RegionConfig, at: date) -> ListedTotals:
    t = day_end(at)
    q = (select(Listing.unit_hsa_id, Listing.home_county, func.count())
         .where(in_force_at(t)).group_by(Listing.unit_hsa_id, Listing.home_county))
    per_unit: Counter[str] = Counter()
    other: Counter[str] = Counter()
    per_county: Counter[str] = Counter()
    for unit, home, n in conn.execute(q):
        per_unit[unit] += n
        per_county[home] += n
        if home != cfg.county:
            other[unit] += n
    _, queued = _queue_status(conn, cfg)
    units = [UnitTotal(u.hsa_id, u.name, per_unit.pop(u.hsa_id, 0), other.get(u.hsa_id, 0),
                       u.cap, queued.get(u.hsa_id, 0)) for u in cfg.units]
    units += [UnitTotal(h, "(not in the configuration)", n, other.get(h, 0), None,
                        queued.get(h, 0)) for h, n in sorted(per_unit.items())]
    counties = sorted(per_county.items(), key=lambda kv: (kv[0] != cfg.county, kv[0]))
    return ListedTotals(at, units, [(c, county_name(c), n) for c, n in counties])


def listed_count(conn: Connection, at: date) -> int:
    return conn.execute(select(func.count()).select_from(Listing)
                        .where(in_force_at(day_end(at)))).scalar_one()


def listed_chunks(conn: Connection, cfg: RegionConfig, at: date) -> Iterator[list[tuple]]:
    """Every listing in force at the end of ``at``, by unit then person (``LISTED_COLUMNS``),
    in chunks of ``STREAM_ROWS`` as they come from the server-side cursor."""
    queue, _ = _queue_status(conn, cfg)
    units = {u.hsa_id: (u.name, {s.hsa_id: s.name for s in u.staff}) for u in cfg.units}
    types = {(lt.code, lt.code_system): lt.display_name for lt in cfg.listing_types}
    counties = {c: v.name for c, v in ids.counties().items()}
    no_unit: tuple[str, dict[str, str]] = ("", {})
    # the day as text from the database: no datetime objects per row
    since = func.substr(cast(Listing.valid_from, String), 1, 10)
    q = (select(Listing.person_id, Listing.unit_hsa_id, Listing.type_code, Listing.type_system,
                since, Listing.personnel_hsa_id, Listing.home_county, Listing.origin)
         .where(in_force_at(day_end(at))).order_by(Listing.unit_hsa_id, Listing.person_id))
    for part in _stream(conn, q).partitions():
        out = []
        for pid, unit_id, tcode, tsys, day, doctor, home, origin in part:
            name, staff = units.get(unit_id, no_unit)
            out.append((pid, unit_id, name, tcode, types.get((tcode, tsys), tcode), day,
                        doctor or "", staff.get(doctor, "") if doctor else "",
                        queue.get(pid, ""), home, counties.get(home, home), origin))
        yield out


def listed_rows(conn: Connection, cfg: RegionConfig, at: date) -> Iterator[tuple]:
    """``listed_chunks`` one row at a time."""
    for chunk in listed_chunks(conn, cfg, at):
        yield from chunk


# --- out of county ------------------------------------------------------------------------------

OUT_COLUMNS = ("person_id", "listing_county", "listing_region", "listing_type", "since",
               "recorded_at")


@dataclass
class OutOfCounty:
    at: date
    per_region: list[tuple[str, str, int]]  # (county, region name, residents)
    per_type: list[tuple[str, str, int]]  # (county, listing type, residents)
    listed_at_home: int  # our residents listed at our own units (home records)

    @property
    def total(self) -> int:
        return sum(n for _, _, n in self.per_region)


def _home_elsewhere(cfg: RegionConfig, t: datetime):  # type: ignore[no-untyped-def]
    return and_(HomeRecord.listing_county != cfg.county, HomeRecord.effective_at < t,
                HomeRecord.since < t)


def out_of_county(conn: Connection, cfg: RegionConfig, at: date) -> OutOfCounty:
    t = day_end(at)
    q = (select(HomeRecord.listing_county, HomeRecord.type_code, func.count())
         .where(_home_elsewhere(cfg, t))
         .group_by(HomeRecord.listing_county, HomeRecord.type_code))
    per_region: Counter[str] = Counter()
    per_type: list[tuple[str, str, int]] = []
    for county, tcode, n in conn.execute(q):
        per_region[county] += n
        per_type.append((county, tcode or "(not given)", n))
    home = conn.execute(select(func.count()).select_from(HomeRecord).where(
        HomeRecord.listing_county == cfg.county, HomeRecord.effective_at < t)).scalar_one()
    return OutOfCounty(at, [(c, region_name(c), n) for c, n in sorted(per_region.items())],
                       sorted(per_type), home)


def out_of_county_rows(conn: Connection, cfg: RegionConfig, at: date) -> Iterator[tuple]:
    q = (select(HomeRecord.person_id, HomeRecord.listing_county, HomeRecord.type_code,
                HomeRecord.effective_at, HomeRecord.since)
         .where(_home_elsewhere(cfg, day_end(at)))
         .order_by(HomeRecord.listing_county, HomeRecord.person_id))
    for pid, county, tcode, eff, since in _stream(conn, q):
        yield (pid, county, region_name(county), tcode or "", eff.date().isoformat(),
               since.isoformat(sep=" "))


# --- settlement ---------------------------------------------------------------------------------

SETTLEMENT_COLUMNS = ("counterpart", "counterpart_region",
                      "ours_there_at_month_end", "ours_there_started", "ours_there_ended",
                      "theirs_here_at_month_end", "theirs_here_started", "theirs_here_ended")
SETTLEMENT_PERSON_COLUMNS = ("direction", "counterpart", "person_id", "unit_hsa_id",
                             "listing_type", "listing_from", "listing_to", "at_month_end",
                             "started_in_month", "ended_in_month", "end_reason")


@dataclass
class Counterpart:
    county: str
    ours_there_at_end: int = 0  # our residents listed in their region (we pay them)
    ours_there_started: int = 0
    ours_there_ended: int = 0
    theirs_here_at_end: int = 0  # their residents listed at our units (they pay us)
    theirs_here_started: int = 0
    theirs_here_ended: int = 0

    def row(self) -> tuple:
        return (self.county, region_name(self.county), self.ours_there_at_end,
                self.ours_there_started, self.ours_there_ended, self.theirs_here_at_end,
                self.theirs_here_started, self.theirs_here_ended)


@dataclass
class Settlement:
    month: str
    first: date
    last: date
    counterparts: list[Counterpart] = field(default_factory=list)
    persons: list[tuple] = field(default_factory=list)  # only when asked for

    def total(self) -> Counterpart:
        t = Counterpart("")
        for c in self.counterparts:
            for name in ("ours_there_at_end", "ours_there_started", "ours_there_ended",
                         "theirs_here_at_end", "theirs_here_started", "theirs_here_ended"):
                setattr(t, name, getattr(t, name) + getattr(c, name))
        return t


def _iso(d: datetime | None) -> str:
    return d.isoformat(sep=" ") if d else ""


def settlement(conn: Connection, cfg: RegionConfig, month: str, *,
               with_persons: bool = False) -> Settlement:
    """The month's settlement with every counterpart region (see the module text)."""
    first, last = month_bounds(month)
    start, end = datetime.combine(first, time.min), day_end(last)
    me = cfg.county
    result = Settlement(month, first, last)
    parts: dict[str, Counterpart] = {}

    def part(c: str) -> Counterpart:
        return parts.setdefault(c, Counterpart(c))

    # Their residents at our units: our listings, with full history.
    q = (select(Listing.person_id, Listing.home_county, Listing.unit_hsa_id, Listing.type_code,
                Listing.valid_from, Listing.valid_to, Listing.end_reason)
         .where(Listing.home_county != me, Listing.valid_from < end,
                or_(Listing.valid_to.is_(None), Listing.valid_to >= start),
                or_(Listing.valid_to.is_(None), Listing.valid_to > Listing.valid_from))
         .order_by(Listing.home_county, Listing.person_id, Listing.valid_from))
    for pid, home, unit, tcode, vfrom, vto, reason in _stream(conn, q):
        c = part(home)
        at_end = vto is None or vto >= end
        started = vfrom >= start
        ended = vto is not None and vto < end
        c.theirs_here_at_end += at_end
        c.theirs_here_started += started
        c.theirs_here_ended += ended
        if with_persons:
            result.persons.append(("theirs_here", home, pid, unit, tcode, _iso(vfrom), _iso(vto),
                                   at_end, started, ended, reason or ""))

    # Our residents elsewhere: the home records (the state now) ...
    q = (select(HomeRecord.person_id, HomeRecord.listing_county, HomeRecord.type_code,
                HomeRecord.effective_at, HomeRecord.since)
         .where(HomeRecord.listing_county != me, HomeRecord.effective_at < end,
                HomeRecord.since < end)
         .order_by(HomeRecord.listing_county, HomeRecord.person_id))
    for pid, county, tcode, eff, since in _stream(conn, q):
        c = part(county)
        c.ours_there_at_end += 1
        # ours from the later of the listing's start and when we learnt of it (a hand-over
        # after a move makes an older listing ours)
        started = max(eff, since) >= start
        c.ours_there_started += started
        if with_persons:
            result.persons.append(("ours_there", county, pid, "", tcode or "", _iso(eff), "",
                                   True, started, False, ""))
    # ... and what ended during the month, from the messages we sent about it.
    q = (select(OutboxMessage.to_county, OutboxMessage.purpose, OutboxMessage.payload,
                OutboxMessage.created_at)
         .where(OutboxMessage.purpose.in_(("forward", "handover")),
                OutboxMessage.status.not_in(("cancelled", "refused")),
                OutboxMessage.created_at >= start - timedelta(days=62),
                OutboxMessage.created_at < end + timedelta(days=62))
         .order_by(OutboxMessage.id))
    seen: set[tuple[str, str]] = set()
    for to, purpose, payload, created in conn.execute(q):
        pid, new = payload.get("person_id"), payload.get("new_county")
        if purpose == "forward" and new != to:
            county, when = to, datetime.fromisoformat(payload["effective_at"])
            reason = "listed_elsewhere"
        elif purpose == "handover" and new not in (None, me):
            county, when, reason = new, created, "moved_away"
        else:
            continue
        if not start <= when < end or (pid, county) in seen:
            continue
        seen.add((pid, county))
        part(county).ours_there_ended += 1
        if with_persons:
            result.persons.append(("ours_there", county, pid, "", payload.get("type_code") or "",
                                   "", _iso(when), False, False, True, reason))
    result.counterparts = [parts[c] for c in sorted(parts)]
    return result


# --- flows over time (charts) -------------------------------------------------------------------

@dataclass
class Flows:
    months: list[date]  # month ends, oldest first
    inflow: dict[str, list[int]]  # counterpart → their residents listed here at each month end
    outflow: dict[str, list[int]]  # counterpart → our residents listed there (home records)


def flows(conn: Connection, cfg: RegionConfig, last: date, count: int = 12) -> Flows:
    """Month-end snapshots of cross-region listings over ``count`` months up to ``last``."""
    months = month_ends(last, count)
    ends = [day_end(m) for m in months]
    inflow: dict[str, list[int]] = defaultdict(lambda: [0] * len(ends))
    q = (select(Listing.home_county, Listing.valid_from, Listing.valid_to)
         .where(Listing.home_county != cfg.county, Listing.valid_from < ends[-1],
                or_(Listing.valid_to.is_(None), Listing.valid_to >= ends[0])))
    for home, vfrom, vto in _stream(conn, q):
        series = inflow[home]
        for i, t in enumerate(ends):
            if vfrom < t and (vto is None or vto >= t):
                series[i] += 1
    outflow: dict[str, list[int]] = defaultdict(lambda: [0] * len(ends))
    q = (select(HomeRecord.listing_county, HomeRecord.effective_at)
         .where(HomeRecord.listing_county != cfg.county, HomeRecord.effective_at < ends[-1]))
    for county, eff in _stream(conn, q):
        series = outflow[county]
        for i, t in enumerate(ends):
            if eff < t:
                series[i] += 1
    return Flows(months, dict(sorted(inflow.items())), dict(sorted(outflow.items())))
