"""What the reports count, read from one region's own database.

Two views of cross-region listing live in a region's database (contracts §6):

- as **listing region**, ``listings``: every listing at our units with its history
  (``valid_from``/``valid_to``) and ``home_county``, the region that pays for it now, and
  ``payer_changes``: from when another region pays for a listing (a resident who moved county);
- as **home region**, ``home_history``: for each of our residents, where they were listed,
  from when to when (the home records' history, ``producers.storage.history``).

A listing (or a period) is *in force at the end of a day* when it started before midnight and
had not ended by then; one that never took effect (``valid_to == valid_from``) is never counted.
Rows stream from server-side cursors (``yield_per``), so a person list of millions of rows is
written as it is read, in steady memory.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import IO

from sqlalchemy import Connection, String, and_, cast, func, or_, select

from interactions import identifiers as ids
from producers.config import RegionConfig
from producers.storage.models import HomeHistory, Listing, PayerChange, QueueEntry

STREAM_ROWS = 10_000


def day_end(d: date) -> datetime:
    """Midnight after ``d``: the instant a day's snapshot is taken at."""
    return datetime.combine(d + timedelta(days=1), time.min)


def in_force_at(t: datetime):  # type: ignore[no-untyped-def]
    """SQL condition: the listing is in force just before ``t``."""
    return and_(Listing.valid_from < t, or_(Listing.valid_to.is_(None), Listing.valid_to >= t))


def payer_at(t: datetime):  # type: ignore[no-untyped-def]
    """SQL: the region paying for a listing just before ``t`` — ``home_county``, unless the
    payer has changed since (``payer_changes``: the first change at or after ``t`` says who paid
    before it). Columns ``listing_id``, ``county``; join on the listing, outer."""
    first = (select(PayerChange.listing_id, PayerChange.from_county.label("county"),
                    func.row_number().over(partition_by=PayerChange.listing_id,
                                           order_by=(PayerChange.changed_at, PayerChange.id))
                    .label("n"))
             .where(PayerChange.changed_at >= t).subquery())
    return select(first.c.listing_id, first.c.county).where(first.c.n == 1).subquery("payer")


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
    # listings whose payer has changed since: counted for the region that paid then
    payer = payer_at(t)
    for unit, now_, then in conn.execute(
            select(Listing.unit_hsa_id, Listing.home_county, payer.c.county)
            .join(payer, payer.c.listing_id == Listing.id).where(in_force_at(t))):
        per_county[now_] -= 1
        per_county[then] += 1
        other[unit] += (then != cfg.county) - (now_ != cfg.county)
    per_county = +per_county  # drop the counties left at zero
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


def _by_unit_and_person(conn: Connection) -> tuple:
    """The person list's order: byte order (PostgreSQL's "C" collation, SQLite's default), the
    same on both databases and much quicker to sort than a language's collation."""
    if conn.dialect.name == "postgresql":
        return Listing.unit_hsa_id.collate("C"), Listing.person_id.collate("C")
    return Listing.unit_hsa_id, Listing.person_id


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
    t = day_end(at)
    payer = payer_at(t)
    paid_then = {lid: c for lid, c in conn.execute(select(payer.c.listing_id, payer.c.county))}
    q = (select(Listing.id, Listing.person_id, Listing.unit_hsa_id, Listing.type_code,
                Listing.type_system, since, Listing.personnel_hsa_id, Listing.home_county,
                Listing.origin)
         .where(in_force_at(t)).order_by(*_by_unit_and_person(conn)))
    for part in _stream(conn, q).partitions():
        out = []
        for lid, pid, unit_id, tcode, tsys, day, doctor, home, origin in part:
            if paid_then:
                home = paid_then.get(lid, home)
            name, staff = units.get(unit_id, no_unit)
            out.append((pid, unit_id, name, tcode, types.get((tcode, tsys), tcode), day,
                        doctor or "", staff.get(doctor, "") if doctor else "",
                        queue.get(pid, ""), home, counties.get(home, home), origin))
        yield out


def listed_rows(conn: Connection, cfg: RegionConfig, at: date) -> Iterator[tuple]:
    """``listed_chunks`` one row at a time."""
    for chunk in listed_chunks(conn, cfg, at):
        yield from chunk


# --- listed, streamed by PostgreSQL itself --------------------------------------------------------

def can_copy(conn: Connection) -> bool:
    """Whether the person list can be streamed with ``COPY ... TO STDOUT`` (PostgreSQL through
    psycopg2); otherwise ``listed_chunks`` shapes the rows in Python."""
    if conn.dialect.name != "postgresql":
        return False
    cur = conn.connection.dbapi_connection.cursor()
    try:
        return hasattr(cur, "copy_expert")
    finally:
        cur.close()


def _map(cur, mapping: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    """A ``jsonb`` literal of the configuration's names, quoted by psycopg2: ``map ->> key`` is a
    lookup per row that needs no join (joins would not keep the rows' order)."""
    return cur.mogrify("%s::jsonb", (json.dumps(mapping, ensure_ascii=False),)).decode("utf-8")


def listed_copy_sql(conn: Connection, cfg: RegionConfig, at: date) -> str:
    """``listed_chunks`` as one SQL statement for ``COPY (...) TO STDOUT WITH CSV HEADER``.

    The listings in force are sorted while the rows are narrow (the inner query); the names
    are looked up afterwards in ``jsonb`` maps of the configuration, and the queue status and
    the payer at the time in maps the database builds once (``jsonb_object_agg``), so no join
    undoes the order and PostgreSQL sorts only once. Empty values are NULL, which COPY writes
    as nothing, as Python's csv writer writes an empty string."""
    t = day_end(at)
    cur = conn.connection.dbapi_connection.cursor()
    try:
        units = _map(cur, {u.hsa_id: u.name for u in cfg.units})
        staff = _map(cur, {f"{u.hsa_id}|{s.hsa_id}": s.name for u in cfg.units for s in u.staff})
        types = _map(cur, {f"{lt.code}|{lt.code_system}": lt.display_name
                           for lt in cfg.listing_types})
        counties = _map(cur, {c: v.name for c, v in ids.counties().items()})
        at_sql = cur.mogrify("%s", (t,)).decode("utf-8")
    finally:
        cur.close()
    payer = str(payer_at(t).compile(dialect=conn.dialect,
                                    compile_kwargs={"literal_binds": True}))
    return f"""
SELECT l.person_id, l.unit_hsa_id, NULLIF({units} ->> l.unit_hsa_id, '') AS unit_name,
       l.type_code AS listing_type,
       NULLIF(COALESCE({types} ->> (l.type_code || '|' || l.type_system), l.type_code), '')
           AS listing_type_name,
       l.since, NULLIF(l.personnel_hsa_id, '') AS fixed_doctor_hsa_id,
       NULLIF({staff} ->> (l.unit_hsa_id || '|' || l.personnel_hsa_id), '') AS fixed_doctor_name,
       NULLIF((SELECT jsonb_object_agg(person_id, status) FROM (
                   SELECT qe.person_id, string_agg(
                       'queued at ' || COALESCE({units} ->> qe.unit_hsa_id, qe.unit_hsa_id)
                       || ' (#' || qe.pos || ')', '; '
                       ORDER BY qe.unit_hsa_id, qe.queued_at, qe.id) AS status
                   FROM (SELECT person_id, unit_hsa_id, queued_at, id, row_number() OVER (
                             PARTITION BY unit_hsa_id ORDER BY queued_at, id) AS pos
                         FROM queue_entries) AS qe
                   GROUP BY qe.person_id) AS qs) ->> l.person_id, '') AS queue_status,
       l.home_county, NULLIF(COALESCE({counties} ->> l.home_county, l.home_county), '')
           AS home_county_name,
       l.origin
FROM (SELECT person_id COLLATE "C" AS person_id, unit_hsa_id COLLATE "C" AS unit_hsa_id,
             type_code, type_system, substr(CAST(valid_from AS VARCHAR), 1, 10) AS since,
             personnel_hsa_id,
             COALESCE((SELECT jsonb_object_agg(CAST(p.listing_id AS VARCHAR), p.county)
                       FROM ({payer}) AS p) ->> CAST(id AS VARCHAR), home_county)
                 AS home_county,
             origin
      FROM listings
      WHERE valid_from < {at_sql} AND (valid_to IS NULL OR valid_to >= {at_sql})
      ORDER BY 2, 1) AS l
ORDER BY l.unit_hsa_id, l.person_id
"""  # noqa: S608 (every value quoted by mogrify or SQLAlchemy)


class _CrlfRows:
    """The file COPY writes to: libpq hands over one CSV row per ``write``, ended by ``\\n``;
    Python's csv writer ends rows with ``\\r\\n``. Rows are re-ended so that both paths give the
    same bytes (a line break inside a quoted value is left alone, as the csv writer does)."""

    def __init__(self, out: IO[bytes], encoding: str, tick: Callable[[int], None] | None) -> None:
        self.out, self.tick, self.rows = out, tick, -1  # the header is no person row
        self.recode = None if encoding.replace("_", "").upper() in ("UTF8", "UNICODE") else (
            encoding)

    def write(self, row: bytes) -> int:
        if self.recode is not None:
            row = row.decode(self.recode).encode("utf-8")
        if row.endswith(b"\n"):
            row = row[:-1] + b"\r\n"
        self.rows += 1
        if self.tick is not None and self.rows > 0 and self.rows % STREAM_ROWS == 0:
            self.tick(STREAM_ROWS)
        return self.out.write(row)


def copy_listed(conn: Connection, cfg: RegionConfig, at: date, out: IO[bytes],
                tick: Callable[[int], None] | None = None) -> int:
    """Write the ``listed`` person list as CSV (header and rows, byte for byte what the csv
    writer makes of ``listed_chunks``) straight from PostgreSQL with ``COPY (SELECT ...) TO
    STDOUT`` in the report's snapshot; returns the rows written."""
    sql = listed_copy_sql(conn, cfg, at)
    dbapi = conn.connection.dbapi_connection
    sink = _CrlfRows(out, getattr(dbapi, "encoding", "UTF8"), tick)
    cur = dbapi.cursor()
    try:
        cur.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", sink,
                        size=1 << 16)
    finally:
        cur.close()
    if tick is not None and sink.rows % STREAM_ROWS:
        tick(sink.rows % STREAM_ROWS)
    return sink.rows


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


def _period_at(t: datetime):  # type: ignore[no-untyped-def]
    """SQL condition: the home-history period is in force just before ``t``."""
    return and_(HomeHistory.valid_from < t,
                or_(HomeHistory.valid_to.is_(None), HomeHistory.valid_to >= t))


def out_of_county(conn: Connection, cfg: RegionConfig, at: date) -> OutOfCounty:
    t = day_end(at)
    q = (select(HomeHistory.listing_county, HomeHistory.type_code, func.count())
         .where(HomeHistory.listing_county != cfg.county, _period_at(t))
         .group_by(HomeHistory.listing_county, HomeHistory.type_code))
    per_region: Counter[str] = Counter()
    per_type: list[tuple[str, str, int]] = []
    for county, tcode, n in conn.execute(q):
        per_region[county] += n
        per_type.append((county, tcode or "(not given)", n))
    home = conn.execute(select(func.count()).select_from(HomeHistory).where(
        HomeHistory.listing_county == cfg.county, _period_at(t))).scalar_one()
    return OutOfCounty(at, [(c, region_name(c), n) for c, n in sorted(per_region.items())],
                       sorted(per_type), home)


def out_of_county_rows(conn: Connection, cfg: RegionConfig, at: date) -> Iterator[tuple]:
    q = (select(HomeHistory.person_id, HomeHistory.listing_county, HomeHistory.type_code,
                HomeHistory.effective_at, HomeHistory.recorded_at)
         .where(HomeHistory.listing_county != cfg.county, _period_at(day_end(at)))
         .order_by(HomeHistory.listing_county, HomeHistory.person_id))
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


def payer_periods(conn: Connection, me: str, lo: datetime, hi: datetime) -> Iterator[tuple]:
    """Listings at our units paid for by another region, in force at some time in ``[lo, hi]``,
    cut where the paying region changed (a resident who moved county; ``payer_changes``):
    ``(person, payer, unit, listing type, from, to, end reason)``, ``to`` None while it lasts.
    A period that ends at a change of payer has the end reason ``moved``."""
    changes: dict[int, list[tuple[datetime, str, str]]] = defaultdict(list)
    recent = select(PayerChange.listing_id).where(PayerChange.changed_at >= lo)
    for lid, at, before, after in conn.execute(
            select(PayerChange.listing_id, PayerChange.changed_at, PayerChange.from_county,
                   PayerChange.to_county).where(PayerChange.changed_at >= lo)
            .order_by(PayerChange.listing_id, PayerChange.changed_at, PayerChange.id)):
        changes[lid].append((at, before, after))
    q = (select(Listing.id, Listing.person_id, Listing.home_county, Listing.unit_hsa_id,
                Listing.type_code, Listing.valid_from, Listing.valid_to, Listing.end_reason)
         .where(or_(Listing.home_county != me, Listing.id.in_(recent)), Listing.valid_from < hi,
                or_(Listing.valid_to.is_(None), Listing.valid_to >= lo),
                or_(Listing.valid_to.is_(None), Listing.valid_to > Listing.valid_from))
         .order_by(Listing.home_county, Listing.person_id, Listing.valid_from))
    for lid, pid, home, unit, tcode, vfrom, vto, reason in _stream(conn, q):
        cuts = changes.get(lid)
        if not cuts:
            yield pid, home, unit, tcode, vfrom, vto, reason
            continue
        a, payer = vfrom, cuts[0][1]
        for at, _before, after in cuts:
            b = max(a, at if vto is None else min(at, vto))
            if b > a and payer != me and a < hi and b >= lo:
                yield pid, payer, unit, tcode, a, b, "moved" if b == at else reason
            a, payer = b, after
        if (vto is None or vto > a) and payer != me and a < hi:
            yield pid, payer, unit, tcode, a, vto, reason


def settlement(conn: Connection, cfg: RegionConfig, month: str, *,
               with_persons: bool = False) -> Settlement:
    """The month's settlement with every counterpart region (see the module text)."""
    first, last = month_bounds(month)
    start, end = datetime.combine(first, time.min), day_end(last)
    me = cfg.county
    result = Settlement(month, first, last)
    parts: dict[str, Counterpart] = {}
    theirs: list[tuple] = []
    ours: list[tuple] = []

    def part(c: str) -> Counterpart:
        return parts.setdefault(c, Counterpart(c))

    # Their residents at our units: our listings, with full history and the payer's history.
    for pid, home, unit, tcode, vfrom, vto, reason in payer_periods(conn, me, start, end):
        if vfrom >= end or (vto is not None and vto < start):
            continue
        c = part(home)
        at_end = vto is None or vto >= end
        started = vfrom >= start
        ended = vto is not None and vto < end
        c.theirs_here_at_end += at_end
        c.theirs_here_started += started
        c.theirs_here_ended += ended
        if with_persons:
            theirs.append(("theirs_here", home, pid, unit, tcode, _iso(vfrom), _iso(vto),
                           at_end, started, ended, reason or ""))

    # Our residents elsewhere: the home history (where they were listed, from when to when).
    q = (select(HomeHistory.person_id, HomeHistory.listing_county, HomeHistory.type_code,
                HomeHistory.valid_from, HomeHistory.valid_to, HomeHistory.end_reason)
         .where(HomeHistory.listing_county != me, HomeHistory.valid_from < end,
                or_(HomeHistory.valid_to.is_(None), HomeHistory.valid_to >= start),
                or_(HomeHistory.valid_to.is_(None),
                    HomeHistory.valid_to > HomeHistory.valid_from))
         .order_by(HomeHistory.listing_county, HomeHistory.person_id, HomeHistory.valid_from))
    for pid, county, tcode, vfrom, vto, reason in _stream(conn, q):
        c = part(county)
        at_end = vto is None or vto >= end
        started = vfrom >= start
        ended = vto is not None and vto < end
        c.ours_there_at_end += at_end
        c.ours_there_started += started
        c.ours_there_ended += ended
        if with_persons:
            ours.append(("ours_there", county, pid, "", tcode or "", _iso(vfrom), _iso(vto),
                         at_end, started, ended, reason or ""))
    result.counterparts = [parts[c] for c in sorted(parts)]
    theirs.sort(key=lambda r: (r[1], r[2], r[5]))
    result.persons = theirs + ours
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
    for _pid, home, _unit, _tcode, vfrom, vto, _reason in payer_periods(conn, cfg.county,
                                                                        ends[0], ends[-1]):
        series = inflow[home]
        for i, t in enumerate(ends):
            if vfrom < t and (vto is None or vto >= t):
                series[i] += 1
    outflow: dict[str, list[int]] = defaultdict(lambda: [0] * len(ends))
    q = (select(HomeHistory.listing_county, HomeHistory.valid_from, HomeHistory.valid_to)
         .where(HomeHistory.listing_county != cfg.county, HomeHistory.valid_from < ends[-1],
                or_(HomeHistory.valid_to.is_(None), HomeHistory.valid_to >= ends[0])))
    for county, vfrom, vto in _stream(conn, q):
        series = outflow[county]
        for i, t in enumerate(ends):
            if vfrom < t and (vto is None or vto >= t):
                series[i] += 1
    return Flows(months, dict(sorted(inflow.items())), dict(sorted(outflow.items())))
