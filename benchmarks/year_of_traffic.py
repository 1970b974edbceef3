"""A year of traffic: a synthetic national year of listing traffic replayed through the pilot.

    .venv/bin/python benchmarks/year_of_traffic.py --start-pilot --regions 01,08
    .venv/bin/python benchmarks/year_of_traffic.py --start-pilot --regions all --events 2000
    .venv/bin/python benchmarks/year_of_traffic.py --endpoints pilot-data/endpoints.json
    .venv/bin/python benchmarks/year_of_traffic.py --regions all --year-only   # the model only

The year (issue 9, item 5): the event mix of a Swedish year, from annual figures (the
constants below, documented in docs/performance.md, "A year of traffic"): listing
changes at a unit of the home region or of another region (1177 e-service: the unit is read
with GetAvailableHealthcareFacilities, then CreateListing), "Min listning" views
(GetListingCounty at the home region, then GetListing at each county it names and at home),
"Välj vårdcentral" page views (GetAvailableHealthcareFacilities at every connected region, as
``consumers/eservice/backend.py`` ``unit_choice`` does), and the population register's moves
between counties, births, deaths and emigrations. Every kind is spread over the counties in
proportion to counties.csv (another region's unit and a move's destination by a gravity
model of the county centres), and over the days and hours of the year by the profiles below.

Since a year is millions of events, the benchmark replays a time-compressed SAMPLE of it
(``--events``) with the same mix and per-county proportions, in the year's order, as fast as
``--workers`` concurrent e-service sessions go (or at ``--rate`` events/s), and says what the
sustained rate means for the full year and its peak hour. Deterministic for a seed and a
population (the pilot's is: seed 1).

Through the real pilot: SOAP calls go to the platform with the 1177 e-service's certificate
(``pki/eservice.pem`` next to ``endpoints.json``), after one warm-up call per region before
the clock starts; population events are written to the pilot's population register
(``population.db``, as ``listning population move|birth|death|emigrate`` do) and reach the
regions through its change feed; afterwards the benchmark waits until every region's feed
position has caught up and every outbox is drained, and counts the platform's calls
(region-to-region UpdateListing included) from its message log. If a part of the pilot dies
during a repeat, the run says so and stops repeating (exit status 1).

``--start-pilot`` runs ``listning pilot --free-ports --data-dir TMP --population N --regions R``
as a child, waits for ``endpoints.json``, replays ``--repeat`` samples (new seeds, new persons)
and stops it with SIGINT as Ctrl-C does (also on an error, Ctrl-C or SIGTERM). Memory per
process (RSS, PSS) and CPU seconds per part come from /proc (``benchmarks/all_regions.py``'s
helpers). Appends to ``benchmarks/results/year_of_traffic.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py would shadow the standard library's platform module.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import bisect  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import ssl  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402
from typing import Any, ClassVar  # noqa: E402

REPO = HERE.parent
sys.path.insert(0, str(REPO))

from interactions.contracts import all_contracts  # noqa: E402
from interactions.identifiers import (  # noqa: E402
    COUNTY_OID,
    LISTING_TYPE_CODE_SYSTEM,
    LISTING_TYPE_PV,
    counties,
    municipalities,
    personal_id_root,
)

RESULTS = REPO / "benchmarks" / "results" / "year_of_traffic.json"
DOMAIN_NS = "urn:riv:supportprocess:logistics:carelisting:2"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


def _load_all_regions() -> Any:
    """benchmarks/all_regions.py (its /proc helpers: descendants, part_name, memory)."""
    spec = importlib.util.spec_from_file_location("all_regions", HERE / "all_regions.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


all_regions = _load_all_regions()

# --- the year ----------------------------------------------------------------------------------

# Annual figures for Sweden (≈ 10.56 million residents: the sum of counties.csv). Sources are
# SCB's round figures of recent years; the listing figures are estimates (see the docs).
CHANGE_SHARE = 0.07  # listing changes per resident and year (5–10 %)
CROSS_SHARE = 0.03  # of them at a unit of another region
READ_LISTING_PER_YEAR = 2_500_000  # "Min listning" views in 1177 (≈ 0.24 per resident)
BROWSE_PER_CHOICE = 1.5  # "Välj vårdcentral" page views per listing change
MOVE_SHARE = 0.03  # moves between counties per resident and year (SCB: ≈ 300,000)
BIRTHS, DEATHS, EMIGRATIONS = 100_000, 95_000, 70_000
WITHIN_COUNTY_MOVE_SHARE = 0.09  # moves within a county: no feed entry, not replayed
IMMIGRATIONS = 100_000  # the register has no immigration change: not replayed

KINDS = ("choice", "choice_cross", "read_listing", "browse_units", "move", "birth", "death",
         "emigration")
POPULATION_KINDS = frozenset({"move", "birth", "death", "emigration"})
KIND_TEXT = {
    "choice": "listing change, unit in the home region (GAHF unit + CreateListing)",
    "choice_cross": "listing change, unit in another region (GAHF unit + CreateListing)",
    "read_listing": "Min listning (GetListingCounty @home + GetListing @each)",
    "browse_units": "Välj vårdcentral (GAHF @every connected region)",
    "move": "move between counties (population register → feed)",
    "birth": "birth (population register → feed)",
    "death": "death (population register → feed)",
    "emigration": "emigration (population register → feed)",
}

# When in the year: e-service traffic by month and weekday (Mondays, January and the weeks
# after the summer are busiest; July is quiet), by hour (mornings and evenings). Population
# events are registered on working days in office hours (Skatteverket's feed).
MONTH = (1.25, 1.10, 1.05, 1.00, 0.95, 0.90, 0.60, 1.05, 1.15, 1.05, 1.00, 0.80)
WEEKDAY = (1.35, 1.20, 1.10, 1.05, 0.90, 0.60, 0.80)  # Monday first
HOUR = (0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 4.0, 7.0, 7.5, 7.0, 6.5, 6.0, 6.0, 5.5, 5.5, 5.5,
        5.5, 6.0, 6.5, 6.5, 5.0, 3.0, 1.0)
OFFICE_WEEKDAY = (1.0, 1.0, 1.0, 1.0, 1.0, 0.02, 0.02)
OFFICE_HOUR = tuple(1.0 if 7 <= h < 17 else 0.02 for h in range(24))


def annual_counts(residents: int) -> dict[str, float]:
    choices = CHANGE_SHARE * residents
    return {
        "choice": choices * (1 - CROSS_SHARE),
        "choice_cross": choices * CROSS_SHARE,
        "read_listing": READ_LISTING_PER_YEAR * residents / NATIONAL_RESIDENTS,
        "browse_units": BROWSE_PER_CHOICE * choices,
        "move": MOVE_SHARE * residents,
        "birth": BIRTHS * residents / NATIONAL_RESIDENTS,
        "death": DEATHS * residents / NATIONAL_RESIDENTS,
        "emigration": EMIGRATIONS * residents / NATIONAL_RESIDENTS,
    }


NATIONAL_RESIDENTS = sum(c.population for c in counties().values())


def soap_calls_per_event(kind: str, n_regions: int, cross: float = CROSS_SHARE) -> float:
    """SOAP calls the e-service makes for one event (expected; region-to-region not counted)."""
    return {"choice": 2, "choice_cross": 2, "read_listing": 2 + cross,
            "browse_units": n_regions}.get(kind, 0)


def _day_weights(year_end: date, weekday: tuple, month: tuple | None) -> list[float]:
    days = [year_end - timedelta(days=364 - i) for i in range(365)]
    return [weekday[d.weekday()] * (month[d.month - 1] if month else 1.0) for d in days]


def peak_factors() -> dict[str, float]:
    """Busiest day over an average day, and the busiest hour's share of a day (e-service)."""
    w = _day_weights(date(2026, 11, 25), WEEKDAY, MONTH)
    return {"peak_day_factor": round(max(w) / statistics.fmean(w), 2),
            "peak_hour_share": round(max(HOUR) / sum(HOUR), 3)}


def year_model(regions: list[str]) -> dict[str, Any]:
    pops = {c: counties()[c].population for c in regions}
    residents = sum(pops.values())
    annual = annual_counts(residents)
    national = annual_counts(NATIONAL_RESIDENTS)
    calls = {k: annual[k] * soap_calls_per_event(k, len(regions)) for k in KINDS}
    peaks = peak_factors()
    total = sum(annual.values())
    return {
        "regions": regions, "residents": residents, "national_residents": NATIONAL_RESIDENTS,
        "annual_events": {k: round(v) for k, v in annual.items()},
        "annual_events_total": round(total),
        "annual_soap_calls_from_eservice": round(sum(calls.values())),
        "national_annual_events": {k: round(v) for k, v in national.items()},
        "national_annual_events_total": round(sum(national.values())),
        "national_annual_soap_calls_from_eservice": round(sum(
            national[k] * soap_calls_per_event(k, 21) for k in KINDS)),
        "not_replayed_per_year": {
            "moves within a county (no feed entry)": round(WITHIN_COUNTY_MOVE_SHARE * residents),
            "immigrations (no such register change)": round(
                IMMIGRATIONS * residents / NATIONAL_RESIDENTS)},
        **peaks,
        "assumptions": {
            "listing changes per resident and year": CHANGE_SHARE,
            "share of changes at a unit of another region": CROSS_SHARE,
            "Min listning views per year (national)": READ_LISTING_PER_YEAR,
            "Välj vårdcentral page views per listing change": BROWSE_PER_CHOICE,
            "moves between counties per resident and year": MOVE_SHARE,
            "births, deaths, emigrations per year (national)": [BIRTHS, DEATHS, EMIGRATIONS],
            "month weights": MONTH, "weekday weights (Mon..Sun)": WEEKDAY,
            "hour weights (e-service)": HOUR,
        },
    }


# --- the sample --------------------------------------------------------------------------------

@dataclass
class Resident:
    pid: str
    county: str
    municipality: str
    birth: date

    def age(self, on: date) -> int:
        return on.year - self.birth.year - ((on.month, on.day) < (self.birth.month,
                                                                   self.birth.day))


@dataclass
class Event:
    i: int
    at: datetime  # when in the synthetic year
    kind: str
    county: str  # the resident's home county (where the event happens)
    pid: str = ""
    target: str = ""  # the unit's region (choices), the destination county (moves)
    unit: str = ""


def load_residents(population_db: Path, regions: list[str]) -> list[Resident]:
    from producers.population.test_persons import TEST_PERSONS

    test = {p.person_id for p in TEST_PERSONS}
    wanted = set(regions)
    with contextlib.closing(sqlite3.connect(f"file:{population_db}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT person_id, county, municipality, birth_date FROM persons "
            "WHERE deceased_on IS NULL AND emigrated_on IS NULL ORDER BY person_id").fetchall()
    return [Resident(r[0], r[1], r[2], date.fromisoformat(r[3])) for r in rows
            if r[1] in wanted and r[0] not in test]


@functools.cache
def county_centres() -> dict[str, tuple[float, float]]:
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for m in municipalities().values():
        s = sums[m.county_code]
        s[0] += m.latitude
        s[1] += m.longitude
        s[2] += 1
    return {c: (s[0] / s[2], s[1] / s[2]) for c, s in sums.items()}


@functools.cache
def gravity(origin: str, regions: tuple[str, ...]) -> tuple[list[str], list[float]]:
    """Other regions weighted by population / distance² (at least 50 km): mostly neighbours."""
    centres = county_centres()
    la0, lo0 = centres[origin]
    out, weights = [], []
    for c in regions:
        if c == origin:
            continue
        la, lo = centres[c]
        km = math.hypot((la - la0) * 111, (lo - lo0) * 111 * math.cos(math.radians(la0)))
        out.append(c)
        weights.append(counties()[c].population / max(km, 50.0) ** 2)
    return out, weights


def _apportion(n: int, shares: dict[str, float]) -> dict[str, int]:
    """n split by shares, largest remainders (the counts add up to n)."""
    total = sum(shares.values())
    raw = {k: n * v / total for k, v in shares.items()}
    out = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[:n - sum(out.values())]:
        out[k] += 1
    return out


class Sampler:
    """Draws a sample of the year for the connected ``regions`` from the pilot's residents.

    Writers (a listing change, a move, a death, an emigration, a newborn's guardian) are
    distinct persons within a run and across the repeats of one run (``used``). A move, death
    or emigration, and most "Min listning" views, concern someone who changed listing earlier
    in the sample (at least ``GAP`` events before: never two events of a person in flight at
    once), the others a resident the sample has not touched — the pilot starts with no
    listings, while almost every real resident is listed.
    """

    GAP = 200
    EARLIER_SHARE: ClassVar[dict[str, float]] = {"move": 0.5, "death": 0.5, "emigration": 0.5,
                                                 "read_listing": 0.8}

    def __init__(self, regions: list[str], configs: dict[str, Any], year_end: date) -> None:
        self.regions, self.configs, self.year_end = regions, configs, year_end
        self.by_county: dict[str, list[Resident]] = {}
        self.used: set[str] = set()
        self.pv_units = {c: [u for u in cfg.units if "PV" in u.listing_types]
                         for c, cfg in configs.items()}

    def residents(self, residents: list[Resident]) -> None:
        """The register's residents now (read again before each repeat: moves, deaths)."""
        self.by_county = defaultdict(list)
        for r in residents:
            self.by_county[r.county].append(r)

    def sample(self, n: int, seed: int) -> list[Event]:
        rng = random.Random(seed)
        annual = annual_counts(sum(counties()[c].population for c in self.regions))
        if len(self.regions) == 1:
            annual["choice"] += annual.pop("choice_cross")
            annual["move"] = 0
        per_kind = _apportion(n, annual)
        pops = [counties()[c].population for c in self.regions]
        days = [self.year_end - timedelta(days=364 - i) for i in range(365)]
        eday = _day_weights(self.year_end, WEEKDAY, MONTH)
        oday = _day_weights(self.year_end, OFFICE_WEEKDAY, None)
        events: list[Event] = []
        for kind, count in per_kind.items():
            office = kind in POPULATION_KINDS
            for _ in range(count):
                day = rng.choices(days, eday if not office else oday)[0]
                hour = rng.choices(range(24), OFFICE_HOUR if office else HOUR)[0]
                at = datetime(day.year, day.month, day.day, hour) + timedelta(
                    seconds=rng.randrange(3600))
                events.append(Event(0, at, kind, rng.choices(self.regions, pops)[0]))
        events.sort(key=lambda e: (e.at, e.kind, e.county))
        state = _SampleState(self, rng)
        out = []
        for i, e in enumerate(events):
            e.i = i
            if state.fill(e):
                out.append(e)
        for i, e in enumerate(out):
            e.i = i
        return out


class _SampleState:
    def __init__(self, s: Sampler, rng: random.Random) -> None:
        self.s, self.rng = s, rng
        self.fresh = {c: rng.sample(rs, len(rs)) for c, rs in sorted(s.by_county.items())}
        self.pos = dict.fromkeys(self.fresh, 0)
        self.home: dict[str, str] = {}  # pid → county, for persons the sample moved
        self.gone: set[str] = set()
        self.choosers: list[Resident] = []
        self.chooser_at: list[int] = []  # their events' indexes (ascending)
        self.left_alone: set[str] = set()  # choosers not yet moved, dead or emigrated

    def _fresh(self, county: str, ok: Any = None) -> Resident | None:
        """A resident of ``county`` no write of this run (or an earlier repeat) has used."""
        pool, used = self.fresh[county], self.s.used
        while self.pos[county] < len(pool) and pool[self.pos[county]].pid in used:
            self.pos[county] += 1
        for j in range(self.pos[county], len(pool)):
            r = pool[j]
            if r.pid not in used and (ok is None or ok(r)):
                used.add(r.pid)
                return r
        return None

    def _any(self, county: str, ok: Any) -> Resident | None:
        """Any resident of ``county`` still living there (reads need not be distinct)."""
        pool = self.fresh[county]
        for _ in range(50):
            r = self.rng.choice(pool)
            if r.pid not in self.gone and r.pid not in self.home and ok(r):
                return r
        return None

    def _earlier(self, e: Event, ok: Any = None, take: bool = True) -> Resident | None:
        """Someone who changed listing at least GAP events before ``e`` and lives in its
        county (``take``: not yet moved, dead or emigrated in this sample; then marked)."""
        n = bisect.bisect_left(self.chooser_at, e.i - self.s.GAP)
        for _ in range(50 if n else 0):
            r = self.choosers[self.rng.randrange(n)]
            if (r.pid in self.gone or self.home.get(r.pid, r.county) != e.county
                    or (take and r.pid not in self.left_alone) or (ok is not None and not ok(r))):
                continue
            if take:
                self.left_alone.discard(r.pid)
            return r
        return None

    def fill(self, e: Event) -> bool:
        """Give the event its person, unit or destination; False when none is left."""
        rng, s, end = self.rng, self.s, self.s.year_end

        def adult(r: Resident) -> bool:
            return r.age(end) >= 18

        r: Resident | None = None
        if e.kind in ("choice", "choice_cross"):
            r = self._fresh(e.county, adult)
            if r is None:
                return False
            e.target = e.county
            if e.kind == "choice_cross":
                others, w = gravity(e.county, tuple(s.regions))
                e.target = rng.choices(others, w)[0]
                units = [u for u in s.pv_units[e.target] if u.cap > 100]
                e.unit = rng.choices(units, [u.cap for u in units])[0].hsa_id
            else:
                units = s.pv_units[e.county]
                near = [u for u in units if u.municipality == r.municipality]
                pick = near if near and rng.random() < 0.7 else units
                e.unit = rng.choices(pick, [max(u.cap, 1) for u in pick])[0].hsa_id
            self.choosers.append(r)
            self.chooser_at.append(e.i)
            self.left_alone.add(r.pid)
        elif e.kind == "read_listing":
            if rng.random() < Sampler.EARLIER_SHARE[e.kind]:
                r = self._earlier(e, take=False)
            if r is None:
                r = self._any(e.county, adult)
        elif e.kind == "browse_units":
            pass
        elif e.kind == "birth":
            r = self._fresh(e.county, lambda x: 20 <= x.age(end) <= 45)
        else:  # move, death, emigration
            ok = {"death": lambda x: x.age(end) >= 60,
                  "emigration": lambda x: 20 <= x.age(end) <= 50}.get(e.kind, adult)
            if rng.random() < Sampler.EARLIER_SHARE[e.kind]:
                r = self._earlier(e, ok)
            if r is None and e.kind == "death":
                r = self._fresh(e.county, lambda x: x.age(end) >= 70)
            if r is None:
                r = self._fresh(e.county, ok)
            if r is not None and e.kind == "move":
                others, w = gravity(self.home.get(r.pid, r.county), tuple(s.regions))
                e.target = rng.choices(others, w)[0]
                self.home[r.pid] = e.target
            elif r is not None:
                self.gone.add(r.pid)
        if e.kind != "browse_units":
            if r is None:
                return False
            e.pid = r.pid
        return True


# --- SOAP: envelopes and the two clients -------------------------------------------------------

def _ii(tag: str, root: str, ext: str) -> str:
    return f"<m:{tag}><c:root>{root}</c:root><c:extension>{ext}</c:extension></m:{tag}>"


def request_body(contract: str, p: dict[str, Any]) -> str:
    """The request element (its own namespace as m:, the domain's as c:)."""
    ns = all_contracts()[contract].namespace
    if contract in ("GetListing", "GetListingCounty", "CreateListing"):
        pid = p["pid"]
        root = personal_id_root(pid)
        inner = (f"<m:actor><c:actorId><c:root>{root}</c:root><c:extension>{pid}</c:extension>"
                 f"</c:actorId><c:actorType>CITIZEN</c:actorType></m:actor>"
                 + _ii("personId", root, pid))
        if contract == "CreateListing":
            inner += (f"<m:healthcareFacilityHSAId>{p['unit']}</m:healthcareFacilityHSAId>"
                      f"<m:listingType><c:code>{LISTING_TYPE_PV}</c:code>"
                      f"<c:codeSystem>{LISTING_TYPE_CODE_SYSTEM}</c:codeSystem></m:listingType>")
            if p.get("home"):
                inner += _ii("homeCounty", COUNTY_OID, p["home"])
    elif contract == "GetAvailableHealthcareFacilities":
        inner = "".join(f"<m:healthcareFacilities>{u}</m:healthcareFacilities>"
                        for u in p.get("units", ()))
    else:
        raise ValueError(contract)
    return f'<m:{contract} xmlns:m="{ns}" xmlns:c="{DOMAIN_NS}">{inner}</m:{contract}>'


def envelope(contract: str, address: str, p: dict[str, Any]) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}"><s:Header>'
            f'<a:LogicalAddress xmlns:a="urn:riv:itintegration:registry:1">{address}'
            f'</a:LogicalAddress></s:Header><s:Body>{request_body(contract, p)}</s:Body>'
            f"</s:Envelope>").encode()


def check_envelopes() -> None:
    """Every request this benchmark writes is schema-valid (checked once at start)."""
    from interactions.validation import read_envelope, validate_element
    from interactions.xmlload import parse_bytes

    pid, unit = "199001012380", "SE2321000016-0001"
    for contract, p in (("GetListing", {"pid": pid}), ("GetListingCounty", {"pid": pid}),
                        ("CreateListing", {"pid": pid, "unit": unit, "home": "08"}),
                        ("CreateListing", {"pid": pid, "unit": unit}),
                        ("GetAvailableHealthcareFacilities", {}),
                        ("GetAvailableHealthcareFacilities", {"units": [unit]})):
        env = read_envelope(parse_bytes(envelope(contract, "01", p)))
        problems = validate_element(env.payload)
        if problems:
            raise SystemExit(f"benchmark bug: {contract} request invalid: {problems[:3]}")


@dataclass
class Outcome:
    contract: str
    address: str
    ms: float
    code: str  # resultCode, "FAULT:VP004", "TIMEOUT", "TRANSPORT", "INVALID", "REGISTER:…"
    counties: list[str] = field(default_factory=list)  # GetListingCounty's answer
    items: int = 0  # facilities (GetAvailableHealthcareFacilities) or listings (GetListing)
    text: str = ""  # resultText or faultstring of an answer that is not OK/INFO (to explain it)

    @property
    def ok(self) -> bool:
        return self.code in ("OK", "INFO")


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def read_answer(contract: str, status: int,
                content: bytes) -> tuple[str, list[str], int, str]:
    from interactions.validation import read_envelope
    from interactions.xmlload import parse_bytes

    try:
        payload = read_envelope(parse_bytes(content)).payload
    except ValueError:
        return f"HTTP {status}", [], 0, ""
    if _local(payload.tag) == "Fault":
        text = (payload.findtext("faultstring") or "").strip()
        head = text.split(" ", 1)[0]
        vp = head if head.startswith("VP") and head[2:].isdigit() else None
        return f"FAULT:{vp or (payload.findtext('faultcode') or '?').strip()}", [], 0, text
    code, found, items, text = "NO-RESULTCODE", [], 0, ""
    for child in payload:
        name = _local(child.tag)
        if name == "resultCode":
            code = (child.text or "").strip()
        elif name == "resultText":
            text = (child.text or "").strip()
        elif name == "listingCounties":
            found += [(x.text or "").strip() for x in child if _local(x.tag) == "extension"]
        elif name in ("healthcareFacilities", "listings"):
            items += 1
    return code, found, items, text if code not in ("OK", "INFO") else ""


class AiohttpCaller:
    """Pre-formatted envelopes over one pooled aiohttp session; answers read with the
    project's hardened parser (result code, fault code, counties), not schema-validated."""

    name = "aiohttp"

    def __init__(self, base_url: str, cert: Path, key: Path, ca: str, in_flight: int,
                 timeout: float) -> None:
        self.base_url, self.in_flight, self.timeout = base_url.rstrip("/"), in_flight, timeout
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.session: Any = None

    async def start(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(
            # a connection for every call that can be in flight: no waiting in the client
            connector=aiohttp.TCPConnector(ssl=self.ctx, limit=self.in_flight),
            timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def call(self, contract: str, address: str, p: dict[str, Any]) -> Outcome:
        import aiohttp

        c = all_contracts()[contract]
        body = envelope(contract, address, p)
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{c.soap_action}"',
                   "x-skltp-correlation-id": str(uuid.uuid4())}
        t = time.perf_counter()
        try:
            async with self.session.post(self.base_url + c.path, data=body,
                                         headers=headers) as resp:
                content, status = await resp.read(), resp.status
        except TimeoutError:
            return Outcome(contract, address, (time.perf_counter() - t) * 1000, "TIMEOUT")
        except aiohttp.ClientError as exc:
            return Outcome(contract, address, (time.perf_counter() - t) * 1000,
                           f"TRANSPORT:{type(exc).__name__}")
        ms = (time.perf_counter() - t) * 1000
        code, found, items, text = read_answer(contract, status, content)
        return Outcome(contract, address, ms, code, found, items, text)


class ThreadCaller:
    """``consumers.client.ListingClient`` (zeep builds, libxml2 validates every answer), one
    per thread of a pool of ``workers`` threads; no retries, so every fault is counted."""

    name = "threads"

    def __init__(self, base_url: str, cert: Path, key: Path, ca: str, in_flight: int,
                 timeout: float) -> None:
        self.args = (base_url, cert, key, ca, timeout)
        self.pool = ThreadPoolExecutor(min(in_flight, 128), thread_name_prefix="client")
        self.local = threading.local()
        self.clients: list[Any] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.pool.shutdown(wait=True)
        for c in self.clients:
            c.close()

    def _client(self) -> Any:
        from consumers.client import ListingClient

        c = getattr(self.local, "client", None)
        if c is None:
            base, cert, key, ca, timeout = self.args
            c = self.local.client = ListingClient(base, cert=cert, key=key, ca=ca,
                                                  timeout=timeout, retries=0)
            self.clients.append(c)
        return c

    def _call(self, contract: str, address: str, p: dict[str, Any]) -> Outcome:
        from consumers import values as v
        from consumers.client import ClientError, ClientTimeout, SoapFault

        body: dict[str, Any] = {}
        if "pid" in p:
            body = {"actor": v.actor(p["pid"]), "personId": v.person(p["pid"])}
        if contract == "CreateListing":
            body |= {"healthcareFacilityHSAId": p["unit"], "listingType": v.listing_type()}
            if p.get("home"):
                body["homeCounty"] = v.county(p["home"])
        elif contract == "GetAvailableHealthcareFacilities" and p.get("units"):
            body["healthcareFacilities"] = list(p["units"])
        t = time.perf_counter()
        try:
            r = self._client().call(contract, address, **body)
        except SoapFault as exc:
            return Outcome(contract, address, (time.perf_counter() - t) * 1000,
                           f"FAULT:{exc.vp_code or exc.faultcode}")
        except ClientTimeout:
            return Outcome(contract, address, (time.perf_counter() - t) * 1000, "TIMEOUT")
        except ClientError as exc:
            return Outcome(contract, address, (time.perf_counter() - t) * 1000,
                           f"{type(exc).__name__}")
        ms = (time.perf_counter() - t) * 1000
        res = r.response
        found = [x.extension for x in (getattr(res, "listingCounties", None) or [])]
        items = len(getattr(res, "healthcareFacilities", None) or getattr(res, "listings", None)
                    or [])
        code = r.result_code or "NO-RESULTCODE"
        text = "" if code in ("OK", "INFO") else str(getattr(res, "resultText", None) or "")
        return Outcome(contract, address, ms, code, found, items, text)

    async def call(self, contract: str, address: str, p: dict[str, Any]) -> Outcome:
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, self._call, contract, address, p)


# --- the replay --------------------------------------------------------------------------------

@dataclass
class EventResult:
    kind: str
    county: str
    start: float
    end: float
    code: str  # "OK" or the first failure's code
    calls: list[Outcome]
    lag: float = 0.0  # with --rate: seconds the event started after its planned time

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


class Replayer:
    def __init__(self, caller: Any, population_db: Path, regions: list[str]) -> None:
        from producers.population.register import PopulationRegister

        self.caller, self.regions = caller, regions
        self.warm: list[Outcome] = []
        self.register = PopulationRegister(f"sqlite:///{population_db}")
        # the register is one SQLite file: one writer thread, as one Navet feed writer
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="register")

    def close(self) -> None:
        self.writer.shutdown(wait=True)
        self.register.close()

    def _population(self, e: Event) -> Outcome:
        from producers.population.register import RegisterError

        t = time.perf_counter()
        try:
            if e.kind == "move":
                self.register.record_move(e.pid, e.target, on=e.at.date())
            elif e.kind == "birth":
                self.register.record_birth([e.pid], born=e.at.date(), seed=e.i)
            elif e.kind == "death":
                self.register.record_death(e.pid, on=e.at.date())
            else:
                self.register.record_emigration(e.pid, on=e.at.date())
            code = "OK"
        except RegisterError as exc:
            code = f"REGISTER:{str(exc)[:60]}"
        return Outcome("population register", e.county, (time.perf_counter() - t) * 1000,
                       code)

    async def run_event(self, e: Event) -> EventResult:
        start = time.perf_counter()
        call = self.caller.call
        calls: list[Outcome] = []
        if e.kind in POPULATION_KINDS:
            calls.append(await asyncio.get_running_loop().run_in_executor(
                self.writer, self._population, e))
        elif e.kind in ("choice", "choice_cross"):
            # the e-service reads the chosen unit again from its region, then lists
            first = await call("GetAvailableHealthcareFacilities", e.target, {"units": [e.unit]})
            calls.append(first)
            if first.ok:
                calls.append(await call("CreateListing", e.target, {
                    "pid": e.pid, "unit": e.unit,
                    "home": e.county if e.target != e.county else None}))
        elif e.kind == "read_listing":
            glc = await call("GetListingCounty", e.county, {"pid": e.pid})
            calls.append(glc)
            if glc.ok:
                where = [c for c in dict.fromkeys([*glc.counties, e.county])
                         if c in self.regions]
                calls += await asyncio.gather(*(call("GetListing", c, {"pid": e.pid})
                                                for c in where))
        elif e.kind == "browse_units":
            calls += await asyncio.gather(*(call("GetAvailableHealthcareFacilities", c, {})
                                            for c in self.regions))
        bad = next((c.code for c in calls if not c.ok), "OK")
        return EventResult(e.kind, e.county, start, time.perf_counter(), bad, calls)

    async def warm_up(self) -> list[Outcome]:
        """One call per region, one after another, before the clock starts: connections made
        and each region's first-request costs (its schemas compiled) paid outside the figures."""
        return [await self.caller.call("GetAvailableHealthcareFacilities", c, {})
                for c in self.regions]

    async def replay(self, events: list[Event], workers: int,
                     rate: float | None) -> tuple[list[EventResult], float, float]:
        await self.caller.start()
        self.warm = await self.warm_up()
        results: list[EventResult] = []
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        for e in events:
            queue.put_nowait(e)
        for _ in range(workers):
            queue.put_nowait(None)
        t0 = time.perf_counter()
        tty = sys.stderr.isatty()

        async def worker() -> None:
            while (e := await queue.get()) is not None:
                lag = 0.0
                if rate:
                    delay = t0 + e.i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    lag = max(0.0, -delay)
                r = await self.run_event(e)
                r.lag = lag
                results.append(r)

        async def progress() -> None:
            while True:
                await asyncio.sleep(2)
                if tty:
                    done = len(results)
                    el = time.perf_counter() - t0
                    print(f"\r  {done}/{len(events)} events, {done / el:6.1f}/s, {el:5.0f} s",
                          end="", file=sys.stderr, flush=True)

        ticker = asyncio.create_task(progress())
        try:
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            ticker.cancel()
            if tty:
                print(file=sys.stderr)
            await self.caller.close()
        return results, t0, time.perf_counter()


# --- what happened around the calls ------------------------------------------------------------

def _sqlite_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def region_db(endpoints: dict[str, Any], code: str) -> Path:
    return Path(endpoints["regions"][code]["data_dir"]) / f"region-{code}.sqlite"


def feed_positions(endpoints: dict[str, Any]) -> dict[str, int]:
    out = {}
    for code in endpoints["regions"]:
        try:
            with contextlib.closing(_sqlite_ro(region_db(endpoints, code))) as db:
                row = db.execute("SELECT last_seq FROM feed_position WHERE id = 1").fetchone()
        except sqlite3.Error:
            row = None
        out[code] = row[0] if row else 0
    return out


def outbox_counts(endpoints: dict[str, Any]) -> Counter:
    counts: Counter = Counter()
    for code in endpoints["regions"]:
        try:
            with contextlib.closing(_sqlite_ro(region_db(endpoints, code))) as db:
                for status, purpose, result, n in db.execute(
                        "SELECT status, purpose, coalesce(result_code, ''), count(*) FROM outbox "
                        "GROUP BY 1, 2, 3"):
                    counts[f"{purpose} {status}" + (f" {result}" if result else "")] += n
        except sqlite3.Error:
            continue
    return counts


def wait_for_regions(endpoints: dict[str, Any], register_last: int, timeout: float,
                     since: float, alive: Any = None) -> dict[str, Any]:
    """Until every region's feed position reaches the register's last change and no outbox
    holds a pending message; seconds counted from ``since`` (the replay's end)."""
    deadline = time.monotonic() + timeout
    feed_at = outbox_at = None
    while time.monotonic() < deadline and (alive is None or alive()):
        pos = feed_positions(endpoints)
        if feed_at is None and min(pos.values()) >= register_last:
            feed_at = time.perf_counter() - since
        pending = sum(n for k, n in outbox_counts(endpoints).items() if " pending" in k)
        if outbox_at is None and feed_at is not None and pending == 0:
            outbox_at = time.perf_counter() - since
        if feed_at is not None and outbox_at is not None:
            break
        time.sleep(1)
    pos = feed_positions(endpoints)
    return {"register_last_seq": register_last, "feed_positions": pos,
            "behind": {c: register_last - p for c, p in pos.items() if p < register_last},
            "feed_caught_up_s": round(feed_at, 1) if feed_at is not None else None,
            "outbox_drained_s": round(outbox_at, 1) if outbox_at is not None else None}


def platform_legs(log_path: Path, t_from: datetime, t_to: datetime,
                  roles: dict[str, str]) -> dict[str, Any]:
    """The platform's calls in the window, by sender role and contract: the whole call as the
    platform saw it (resp-out ``duration_ms``), the producer's part (req-out to resp-in, to
    the millisecond) and the answers (HTTP status or VP code)."""
    rows: dict[str, dict[str, Any]] = {}
    sent: dict[str, datetime] = {}
    producer_ms: dict[str, float] = {}
    lo, hi = t_from.strftime("%Y-%m-%dT%H:%M:%S"), t_to.strftime("%Y-%m-%dT%H:%M:%S.999")
    try:
        lines = log_path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    for line in lines:
        if '"resp-out"' not in line and '"resp-in"' not in line and '"req-out"' not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not lo <= rec.get("time", "") <= hi:
            continue
        cid = rec.get("correlation_id", "")
        if rec.get("leg") == "req-out":
            sent[cid] = datetime.fromisoformat(rec["time"].replace("Z", "+00:00"))
            continue
        if rec.get("leg") == "resp-in":
            at = sent.pop(cid, None)
            if at is not None:
                producer_ms[cid] = (datetime.fromisoformat(rec["time"].replace("Z", "+00:00"))
                                    - at).total_seconds() * 1000
            continue
        role = roles.get(str(rec.get("sender", "")).upper(), rec.get("sender") or "unknown")
        key = f"{role} → {rec.get('contract')}"
        row = rows.setdefault(key, {"count": 0, "ms": [], "producer_ms": [], "codes": Counter()})
        row["count"] += 1
        row["ms"].append(float(rec.get("duration_ms") or 0))
        prt = producer_ms.pop(cid, None)
        if prt is not None:
            row["producer_ms"].append(prt)
        row["codes"][rec.get("vp_code") or str(rec.get("status"))] += 1
    out = {}
    for k, v in sorted(rows.items()):
        prod = pcts(v["producer_ms"])
        out[k] = {"count": v["count"], **pcts(v["ms"]),
                  "producer_p50_ms": prod["p50_ms"], "producer_p95_ms": prod["p95_ms"],
                  "codes": dict(v["codes"])}
    return out


# --- statistics --------------------------------------------------------------------------------

def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def pcts(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    return {"p50_ms": round(pct(v, 50), 1), "p95_ms": round(pct(v, 95), 1),
            "p99_ms": round(pct(v, 99), 1), "max_ms": round(v[-1], 1) if v else float("nan")}


def summarise(results: list[EventResult], t0: float, t1: float) -> dict[str, Any]:
    wall = t1 - t0
    by_kind: dict[str, list[EventResult]] = defaultdict(list)
    by_contract: dict[str, list[Outcome]] = defaultdict(list)
    for r in results:
        by_kind[r.kind].append(r)
        for c in r.calls:
            by_contract[c.contract].append(c)
    kinds = {}
    for k in KINDS:
        rs = by_kind.get(k, [])
        if rs:
            kinds[k] = {"count": len(rs), "per_s": round(len(rs) / wall, 2),
                        **pcts([r.ms for r in rs]),
                        "errors": dict(Counter(r.code for r in rs if r.code != "OK"))}
    contracts = {}
    for name, cs in sorted(by_contract.items()):
        contracts[name] = {"count": len(cs), "per_s": round(len(cs) / wall, 2),
                           **pcts([c.ms for c in cs]),
                           "errors": dict(Counter(c.code for c in cs if not c.ok)),
                           # what the answers said (synthetic residents; a few of each kind)
                           "error_texts": dict(Counter(f"{c.code}: {c.text}"[:300]
                                                       for c in cs if not c.ok).most_common(5)),
                           "over_1s": sum(c.ms > 1000 for c in cs)}
        if name == "GetListing":
            contracts[name]["with_a_listing"] = sum(c.items > 0 for c in cs)
        elif name == "GetAvailableHealthcareFacilities":
            contracts[name]["facilities_mean"] = round(statistics.fmean(c.items for c in cs), 1)
    # the rate in 10-second windows: is it sustained?
    ends = sorted(r.end - t0 for r in results)
    windows = [0] * (int(wall // 10) + 1)
    for x in ends:
        windows[min(int(x // 10), len(windows) - 1)] += 1
    full = [w / 10 for w in windows[:int(wall // 10)]] or [len(results) / wall]
    soap = sum(len(cs) for n, cs in by_contract.items() if n != "population register")
    return {"events": len(results), "wall_s": round(wall, 1),
            "events_per_s": round(len(results) / wall, 2),
            "soap_calls": soap, "soap_calls_per_s": round(soap / wall, 2),
            "window_10s_events_per_s": {"min": min(full), "median": statistics.median(full),
                                        "max": max(full)},
            "events_ok": sum(r.code == "OK" for r in results),
            "start_lag_s": {"p50": round(pct(sorted(r.lag for r in results), 50), 2),
                            "p95": round(pct(sorted(r.lag for r in results), 95), 2),
                            "max": round(max((r.lag for r in results), default=0), 2)},
            "kinds": kinds, "contracts": contracts}


# --- processes: the pilot, memory and CPU ------------------------------------------------------

def cpu_seconds(pilot_pid: int) -> dict[str, float]:
    """utime + stime of every process under the pilot, by part (regions together too)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = defaultdict(float)
    for pid in all_regions.descendants(pilot_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        secs = (int(fields[11]) + int(fields[12])) / tick
        name = all_regions.part_name(pid, pilot_pid)
        out[name] += secs
        if name.startswith("region-"):
            out["regions (all)"] += secs
    return dict(out)


def pilot_parts(pilot_pid: int) -> dict[int, str]:
    return {pid: all_regions.part_name(pid, pilot_pid)
            for pid in all_regions.descendants(pilot_pid)}


def dead_parts(pilot_pid: int, parts: dict[int, str]) -> list[str]:
    """The parts (of those running before) that are gone: a crash, or the supervisor
    stopping everything after one part died."""
    alive = set(all_regions.descendants(pilot_pid)) if Path(f"/proc/{pilot_pid}").exists() \
        else set()
    return sorted(name for pid, name in parts.items() if pid not in alive)


def find_pilot(data_dir: Path) -> int | None:
    """The pid of a running ``listning pilot`` with this data directory, if any."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            args = [a.decode(errors="replace") for a in
                    (d / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        if "pilot" in args and "--data-dir" in args:
            i = args.index("--data-dir") + 1
            cwd = Path(os.readlink(d / "cwd")) if (d / "cwd").exists() else Path("/")
            if i < len(args) and (cwd / args[i]).resolve() == data_dir.resolve():
                return int(d.name)
    return None


class Pilot:
    """``listning pilot`` as a child; ``stop()`` is SIGINT (Ctrl-C) and a wait, whatever
    happened (call it from ``finally``)."""

    def __init__(self, regions: str, population: int, data_dir: Path, log_path: Path) -> None:
        self.data_dir, self.log_path = data_dir, log_path
        self.t0, self.t0_wall = time.monotonic(), time.time()
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "listning", "pilot", "--regions", regions,
                 "--free-ports", "--data-dir", str(data_dir), "--population", str(population)],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        self.pids: list[int] = []

    def wait_ready(self, timeout: float) -> float:
        path = self.data_dir / "endpoints.json"
        tty = sys.stderr.isatty()
        while not path.exists():
            if self.proc.poll() is not None:
                raise SystemExit(f"the pilot exited ({self.proc.returncode}):\n"
                                 + self.log_path.read_text()[-3000:])
            if time.monotonic() - self.t0 > timeout:
                raise SystemExit(f"the pilot was not ready in {timeout:.0f} s")
            if tty:
                logs = self.data_dir / "logs"
                n = len(list(logs.glob("*.log"))) if logs.exists() else 0
                print(f"\r  starting the pilot: {n} parts, {time.monotonic() - self.t0:4.0f} s",
                      end="", file=sys.stderr, flush=True)
            time.sleep(0.5)
        if tty:
            print(file=sys.stderr)
        self.pids = all_regions.descendants(self.proc.pid)
        return time.monotonic() - self.t0

    def preparation_seconds(self) -> float:
        """From the start until the first part's log opened: PKI, catalogue, population."""
        first = min(f.stat().st_ctime for f in (self.data_dir / "logs").glob("*.log"))
        return round(first - self.t0_wall, 1)

    def stop(self) -> dict[str, Any]:
        t = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # the pilot stops its parts in order
        try:
            rc = self.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            rc = self.proc.wait()
        left = [p for p in self.pids if Path(f"/proc/{p}").exists()
                and Path(f"/proc/{p}/stat").read_text().split()[2] != "Z"]
        return {"exit_status": rc, "seconds": round(time.monotonic() - t, 1),
                "processes_left": left}


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the finally that stops the pilot


# --- one repeat --------------------------------------------------------------------------------

def make_caller(kind: str, endpoints: dict[str, Any], workers: int, timeout: float) -> Any:
    """The e-service's client: its certificate from the pilot's pki/ directory; room for
    every call of every worker at once (a "Välj vårdcentral" view calls every region)."""
    pki = Path(endpoints["ca_cert"]).parent
    cls = AiohttpCaller if kind == "aiohttp" else ThreadCaller
    return cls(endpoints["platform_url"], pki / "eservice.pem", pki / "eservice.key",
               endpoints["ca_cert"], workers * max(len(endpoints["regions"]), 3), timeout)


def run_once(args: argparse.Namespace, endpoints: dict[str, Any], sampler: Sampler,
             seed: int, pilot_pid: int | None) -> dict[str, Any]:
    data_dir = Path(endpoints["logs"]).parent
    regions = sorted(endpoints["regions"])
    t = time.perf_counter()
    events = sampler.sample(args.events, seed)
    sample_s = time.perf_counter() - t
    sampled = Counter(e.kind for e in events)
    per_county = Counter(e.county for e in events)
    roles = {endpoints["regions"][c]["hsa_id"].upper(): "region" for c in regions}
    roles |= {"SE5565594230-1177": "e-service", endpoints["tester"]["hsa_id"].upper(): "tester"}
    parts = pilot_parts(pilot_pid) if pilot_pid else {}

    replayer = Replayer(make_caller(args.client, endpoints, args.workers, args.timeout),
                        data_dir / "population.db", regions)
    outbox_before = outbox_counts(endpoints)
    cpu_before = cpu_seconds(pilot_pid) if pilot_pid else {}
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    load_before = os.getloadavg()
    loads: list[float] = []
    stop_sampling = threading.Event()

    def sample_load() -> None:
        while not stop_sampling.wait(5):
            loads.append(os.getloadavg()[0])

    sampler_thread = threading.Thread(target=sample_load, daemon=True)
    sampler_thread.start()
    wall_from = datetime.now(UTC)
    try:
        results, t0, t1 = asyncio.run(replayer.replay(events, args.workers, args.rate))
        register_last = replayer.register.last_seq()
    finally:
        stop_sampling.set()
        replayer.close()
    cpu_replay = cpu_seconds(pilot_pid) if pilot_pid else {}
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    load_after = os.getloadavg()
    print(f"  replayed {len(results)} events in {t1 - t0:.1f} s; waiting for the regions' "
          "feeds and outboxes ...", file=sys.stderr, flush=True)
    catch_up = wait_for_regions(endpoints, register_last, args.catch_up_timeout, t1,
                                lambda: not pilot_pid or not dead_parts(pilot_pid, parts))
    wall_to = datetime.now(UTC)
    outbox_after = outbox_counts(endpoints)
    summary = summarise(results, t0, t1)
    cpu = {k: round(cpu_replay.get(k, 0) - cpu_before.get(k, 0), 1) for k in cpu_replay}
    dead = dead_parts(pilot_pid, parts) if pilot_pid else []
    cpu["benchmark (this process)"] = round(
        (self_after.ru_utime + self_after.ru_stime)
        - (self_before.ru_utime + self_before.ru_stime), 1)
    used = sum(v for k, v in cpu.items() if k != "regions (all)")  # every part, and us
    cost = None
    if pilot_pid and summary["events"]:
        cost = {"cpu_seconds": round(used, 1),
                "ms_per_event": round(used / summary["events"] * 1000, 1),
                "ms_per_soap_call": round(used / max(summary["soap_calls"], 1) * 1000, 2),
                # what the mix would reach with every core of the machine to itself
                "events_per_s_if_all_cores": round((os.cpu_count() or 1)
                                                   / (used / summary["events"]), 1),
                "share_of_machine": round(used / ((t1 - t0) * (os.cpu_count() or 1)), 2)}
    return {
        "seed": seed, "sample_seconds": round(sample_s, 1),
        "sampled": dict(sampled), "per_county": dict(sorted(per_county.items())),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "load_during_median": round(statistics.median(loads), 2) if loads else None,
        **summary,
        "catch_up": catch_up,
        "outbox_new": {k: v - outbox_before.get(k, 0) for k, v in sorted(outbox_after.items())
                       if v != outbox_before.get(k, 0)},
        "platform_legs": platform_legs(Path(endpoints["logs"]) / "platform-messages.jsonl",
                                       wall_from, wall_to, roles),
        "cpu_seconds_during_replay": dict(sorted(cpu.items())),
        "cpu_cost": cost,
        "warm_up": {o.address: [o.code, round(o.ms)] for o in replayer.warm},
        "pilot_parts_died": dead,
    }


# --- output ------------------------------------------------------------------------------------

def _n(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def print_year(model: dict[str, Any]) -> None:
    print(f"\nThe year for {len(model['regions'])} region(s), {_n(model['residents'])} residents "
          f"(national: {_n(model['national_residents'])})")
    print(f"  {'kind':<14}{'per year':>12}{'national':>12}  what")
    for k in KINDS:
        print(f"  {k:<14}{_n(model['annual_events'][k]):>12}"
              f"{_n(model['national_annual_events'][k]):>12}  {KIND_TEXT[k]}")
    print(f"  {'total':<14}{_n(model['annual_events_total']):>12}"
          f"{_n(model['national_annual_events_total']):>12}  events; SOAP calls from the "
          f"e-service {_n(model['annual_soap_calls_from_eservice'])} "
          f"(national {_n(model['national_annual_soap_calls_from_eservice'])})")
    for k, v in model["not_replayed_per_year"].items():
        print(f"  not replayed: {k}: {_n(v)}")
    print(f"  busiest day {model['peak_day_factor']}× an average day; busiest hour "
          f"{model['peak_hour_share'] * 100:.1f} % of a day")


def what_it_means(model: dict[str, Any], rate: float) -> dict[str, Any]:
    avg = model["annual_events_total"] / (365 * 86400)
    peak = (model["annual_events_total"] / 365 * model["peak_day_factor"]
            * model["peak_hour_share"] / 3600)
    nat = model["national_annual_events_total"]
    nat_peak = nat / 365 * model["peak_day_factor"] * model["peak_hour_share"] / 3600
    return {"year_hours_at_this_rate": round(model["annual_events_total"] / rate / 3600, 1),
            "average_rate_needed": round(avg, 3), "peak_hour_rate_needed": round(peak, 2),
            "headroom_at_peak_hour": round(rate / peak, 1),
            "national_year_hours_at_this_rate": round(nat / rate / 3600, 1),
            "national_peak_hour_rate_needed": round(nat_peak, 2)}


def print_run(run: dict[str, Any]) -> None:
    print(f"\nrepeat seed {run['seed']}: {run['events']} events, {run['soap_calls']} SOAP calls in "
          f"{run['wall_s']} s: {run['events_per_s']} events/s, {run['soap_calls_per_s']} calls/s "
          f"(10-s windows: min {run['window_10s_events_per_s']['min']:.1f}, median "
          f"{run['window_10s_events_per_s']['median']:.1f}); load {run['load_before'][0]:.1f}"
          f" → {run['load_after'][0]:.1f} (median during {run['load_during_median']})")
    head = f"  {'':<34}{'count':>7}{'per s':>8}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}  errors"
    print(head)
    for title, rows in (("event kind", run["kinds"]), ("contract", run["contracts"])):
        print(f"  {title}")
        for name, r in rows.items():
            errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "-"
            print(f"    {name:<32}{r['count']:>7}{r['per_s']:>8.2f}{r['p50_ms']:>8.0f}"
                  f"{r['p95_ms']:>8.0f}{r['p99_ms']:>8.0f}{r['max_ms']:>8.0f}  {errs}")
    for name, r in run["contracts"].items():
        for said, n in (r.get("error_texts") or {}).items():
            print(f"    {name} answered {n}×  {said}")
    gl, gahf = run["contracts"].get("GetListing"), run["contracts"].get(
        "GetAvailableHealthcareFacilities")
    if gl and gahf:
        print(f"  GetListing answers with a listing: {gl['with_a_listing']} of {gl['count']}; "
              f"GetAvailableHealthcareFacilities: {gahf['facilities_mean']} facilities per "
              "answer on average")
    if run["start_lag_s"]["max"] > 0:
        lag = run["start_lag_s"]
        print(f"  paced: events started after their planned time by p50 {lag['p50']} s, "
              f"p95 {lag['p95']} s, max {lag['max']} s")
    if run["platform_legs"]:
        print("  the platform's calls (its message log, replay and catch-up): count, p50/p95/"
              "p99 ms, the producer's p50/p95 ms, answers")
        for name, r in run["platform_legs"].items():
            codes = ", ".join(f"{k} {v}" for k, v in r["codes"].items())
            print(f"    {name:<46}{r['count']:>7}{r['p50_ms']:>7.0f}{r['p95_ms']:>7.0f}"
                  f"{r['p99_ms']:>7.0f}{r['producer_p50_ms']:>7.0f}{r['producer_p95_ms']:>7.0f}"
                  f"  {codes}")
    if run["warm_up"]:
        ms = sorted(v[1] for v in run["warm_up"].values())
        print(f"  warm-up (one call per region before the clock): {ms[len(ms) // 2]} ms median, "
              f"{ms[-1]} ms at most")
    c = run["catch_up"]
    print(f"  population feed: register at {c['register_last_seq']}; every region caught up "
          f"{c['feed_caught_up_s']} s after the replay; outboxes drained "
          f"{c['outbox_drained_s']} s after; behind: {c['behind'] or 'none'}")
    if run["outbox_new"]:
        print("  outbox messages (purpose status result): "
              + ", ".join(f"{k} {v}" for k, v in run["outbox_new"].items()))
    if run["cpu_seconds_during_replay"]:
        cpu = run["cpu_seconds_during_replay"]
        top = sorted(((v, k) for k, v in cpu.items() if not k.startswith("region-")),
                     reverse=True)
        print("  CPU seconds during the replay: "
              + ", ".join(f"{k} {v:.0f}" for v, k in top))
    if run.get("cpu_cost"):
        c = run["cpu_cost"]
        print(f"  CPU (pilot and benchmark): {c['ms_per_event']} ms per event, "
              f"{c['ms_per_soap_call']} ms per SOAP call; {c['share_of_machine'] * 100:.0f} % of "
              f"the machine; with all {os.cpu_count()} cores: ≈ {c['events_per_s_if_all_cores']}"
              " events/s")


def print_memory(mem: dict[str, Any], title: str) -> None:
    parts = mem["parts"]
    regions = [v for k, v in parts.items() if k.startswith("region-")]
    print(f"\nmemory {title}: {mem['processes']} processes, RSS {mem['total_rss_mb']:.0f} MB, "
          f"PSS {mem['total_pss_mb']:.0f} MB")
    for name, row in parts.items():
        if not name.startswith("region-"):
            print(f"  {name:<22}{row['rss_mb']:>8.1f} MB RSS{row['pss_mb']:>8.1f} MB PSS")
    if regions:
        rss = sorted(r["rss_mb"] for r in regions)
        pss = sorted(r["pss_mb"] for r in regions)
        print(f"  {len(regions)} regions: RSS {rss[0]:.1f}–{rss[-1]:.1f} MB (median "
              f"{statistics.median(rss):.1f}), PSS {pss[0]:.1f}–{pss[-1]:.1f} MB (median "
              f"{statistics.median(pss):.1f}), together {sum(pss):.0f} MB PSS")


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(values: list[float]) -> float:
        values = [v for v in values if v is not None and not math.isnan(v)]
        return round(statistics.median(values), 2) if values else float("nan")

    out: dict[str, Any] = {
        "events_per_s": med([r["events_per_s"] for r in runs]),
        "soap_calls_per_s": med([r["soap_calls_per_s"] for r in runs]),
        "load_during": med([r["load_during_median"] or r["load_after"][0] for r in runs]),
        "feed_caught_up_s": med([r["catch_up"]["feed_caught_up_s"] for r in runs]),
        "outbox_drained_s": med([r["catch_up"]["outbox_drained_s"] for r in runs]),
    }
    costs = [r["cpu_cost"] for r in runs if r.get("cpu_cost")]
    if costs:
        out["cpu_cost"] = {k: med([c[k] for c in costs]) for k in costs[0]}
    for section in ("kinds", "contracts"):
        names = sorted({n for r in runs for n in r[section]})
        out[section] = {n: {m: med([r[section][n][m] for r in runs if n in r[section]])
                            for m in ("count", "per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms")}
                        for n in names}
    return out


# --- main --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See docs/performance.md, 'A year of traffic'.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--endpoints", type=Path, metavar="FILE",
                       help="endpoints.json of a running pilot")
    where.add_argument("--start-pilot", action="store_true",
                       help="start `listning pilot` (in a temporary directory), stop it after")
    p.add_argument("--regions", default="01,08",
                   help="for --start-pilot and --year-only: 01,08 or all (default 01,08)")
    p.add_argument("--population", type=int, default=60000,
                   help="for --start-pilot: synthetic residents (default 60000)")
    p.add_argument("--events", type=int, default=2000,
                   help="events in the sample of the year (default 2000: a few minutes)")
    p.add_argument("--workers", type=int, default=16,
                   help="concurrent e-service sessions (default 16)")
    p.add_argument("--rate", type=float, metavar="EVENTS_PER_S",
                   help="start events at this rate instead of as fast as the workers go")
    p.add_argument("--client", choices=("aiohttp", "threads"), default="aiohttp",
                   help="aiohttp with pre-formatted envelopes (default), or threads with "
                   "consumers/client.py ListingClient")
    p.add_argument("--repeat", type=int, default=1, help="samples to replay (new seed, new "
                   "persons each time); the table quotes medians")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--year-end", type=date.fromisoformat,
                   help="last day of the synthetic year (default yesterday)")
    p.add_argument("--timeout", type=float, default=60, help="per SOAP call, seconds")
    p.add_argument("--catch-up-timeout", type=float, default=180,
                   help="seconds to wait for the regions' feeds and outboxes after the replay")
    p.add_argument("--data-dir", type=Path, help="for --start-pilot (default: a temporary one, "
                   "removed)")
    p.add_argument("--startup-timeout", type=float, default=1200)
    p.add_argument("--year-only", action="store_true", help="print the year's model and stop")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--note", help="free text stored with the run")
    args = p.parse_args(argv)

    from listning.pilot import parse_regions

    year_end = args.year_end or (date.today() - timedelta(days=1))
    if args.year_only:
        print_year(year_model(parse_regions(args.regions)))
        return 0
    if not args.endpoints and not args.start_pilot:
        p.error("give --endpoints FILE or --start-pilot (or --year-only)")
    check_envelopes()

    previous = {s: signal.signal(s, _terminate) for s in (signal.SIGTERM, signal.SIGHUP)}
    # Ctrl-C even when started in the background (a shell then ignores SIGINT for the job)
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="listning-year-"))
    pilot: Pilot | None = None
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {k: (str(v) if isinstance(v, Path | date) else v)
                     for k, v in vars(args).items() if k not in ("out",)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release(),
                    "mem_total_gb": round(all_regions._kb(Path("/proc/meminfo"), "MemTotal")
                                          / 2**20, 1),
                    "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
        "runs": [],
    }
    rc = 0
    try:
        if args.start_pilot:
            data_dir = (args.data_dir or work / "pilot-data").resolve()
            print(f"starting listning pilot --regions {args.regions} --population "
                  f"{args.population} in {data_dir}", file=sys.stderr, flush=True)
            pilot = Pilot(args.regions, args.population, data_dir, work / "pilot.out")
            ready = pilot.wait_ready(args.startup_timeout)
            result["startup_seconds"] = round(ready, 1)
            result["preparation_seconds"] = pilot.preparation_seconds()
            print(f"the pilot answered after {ready:.1f} s (preparing the data directory "
                  f"{result['preparation_seconds']} s)", file=sys.stderr, flush=True)
            endpoints_path = data_dir / "endpoints.json"
            pilot_pid: int | None = pilot.proc.pid
        else:
            endpoints_path = args.endpoints.resolve()
            pilot_pid = find_pilot(endpoints_path.parent)
        endpoints = json.loads(endpoints_path.read_text())
        regions = sorted(endpoints["regions"])
        model = year_model(regions)
        result["year"] = model
        print_year(model)
        if pilot_pid:
            time.sleep(3)  # every part past its first feed poll
            result["memory_before"] = mem = _memory(pilot_pid)
            print_memory(mem, "before the replay")

        from producers.config import load_config

        configs = {c: load_config(endpoints["regions"][c]["config"]) for c in regions}
        sampler = Sampler(regions, configs, year_end)
        for i in range(args.repeat):
            residents = load_residents(Path(endpoints["logs"]).parent / "population.db", regions)
            sampler.residents(residents)
            print(f"\n{len(residents)} residents of {','.join(regions)} in the pilot's register;"
                  f" sample of {args.events} events, {args.workers} workers, client "
                  f"{args.client}" + (f", {args.rate} events/s" if args.rate else ""),
                  file=sys.stderr, flush=True)
            run = run_once(args, endpoints, sampler, args.seed + i, pilot_pid)
            result["runs"].append(run)
            print_run(run)
            if run["pilot_parts_died"]:
                print(f"\nthe pilot lost {', '.join(run['pilot_parts_died'])} during the replay; "
                      "no further repeats (see its logs: " + endpoints["logs"] + ")",
                      file=sys.stderr)
                if pilot is not None:
                    result["pilot_output_tail"] = pilot.log_path.read_text()[-2000:]
                    print(result["pilot_output_tail"], file=sys.stderr)
                result["pilot_failed"] = True
                rc = 1
                break
        if pilot_pid:
            result["memory_after"] = mem = _memory(pilot_pid)
            print_memory(mem, "after the replay")
    except KeyboardInterrupt:
        print("\ninterrupted; stopping", file=sys.stderr)
        rc = 130
    finally:
        if pilot is not None:
            result["stop"] = stop = pilot.stop()
            print(f"\npilot stopped: exit status {stop['exit_status']} in {stop['seconds']} s, "
                  f"processes left: {stop['processes_left'] or 'none'}")
        for s, h in previous.items():
            signal.signal(s, h)
        shutil.rmtree(work, ignore_errors=True)
    result["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    runs = result["runs"]
    if runs:
        result["medians"] = med = medians(runs)
        result["what_it_means"] = means = what_it_means(result["year"], med["events_per_s"])
        print(f"\nmedian of {len(runs)}: {med['events_per_s']} events/s, "
              f"{med['soap_calls_per_s']} SOAP calls/s (load {med['load_during']})")
        print(f"  this year of {','.join(result['year']['regions'])} "
              f"({_n(result['year']['annual_events_total'])} events) at that rate: "
              f"{means['year_hours_at_this_rate']} hours; its busiest hour needs "
              f"{means['peak_hour_rate_needed']} events/s ({means['headroom_at_peak_hour']}× "
              f"headroom); the national year: {means['national_year_hours_at_this_rate']} "
              f"hours, busiest hour {means['national_peak_hour_rate_needed']} events/s")
        if args.out:
            old = json.loads(args.out.read_text()).get("runs", []) if args.out.exists() else []
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"runs": [*old, result]}, indent=1,
                                           ensure_ascii=False, default=str) + "\n")
            print(f"wrote {args.out}")
    stop = result.get("stop")
    if stop and (stop["exit_status"] != 0 or stop["processes_left"]):
        rc = rc or 1
    return rc


def _memory(pilot_pid: int) -> dict[str, Any]:
    mem = all_regions.memory(pilot_pid)
    return {"parts": mem, "processes": sum(m["processes"] for m in mem.values()),
            "total_rss_mb": round(sum(m["rss_mb"] for m in mem.values()), 1),
            "total_pss_mb": round(sum(m["pss_mb"] for m in mem.values()), 1)}


if __name__ == "__main__":
    sys.exit(main())
