"""What the pages need from the outside world, as plain values.

Every call to a region goes through the service platform with ``ListingClient`` (mutual TLS,
the e-service's HSA-id in its certificate). Which regions can be reached is asked of the
catalogue (``GetLogicalAddresseesByServiceContract``, through the platform at the platform's
own logical address). The resident's home county comes from the population register, never
from a guess. All methods are blocking; the web layer runs them in worker threads.
"""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from consumers import values as v
from consumers.client import ClientError, InvalidResponse, ListingClient, SoapFault
from interactions import identifiers as ids
from interactions.contracts import all_contracts
from producers.population.api import PersonInfo, PopulationClient

log = logging.getLogger(__name__)

GLABSC = "GetLogicalAddresseesByServiceContract"
# The platform's own logical address, where the catalogue's GLABSC is routed
# (routing.catalogue.PLATFORM_HSA_ID; repeated here so the e-service does not import the
# platform's package).
PLATFORM_LOGICAL_ADDRESS = "SE5565594230-NTJP"
# Which regions are reachable is asked again after this long, so a region the catalogue
# connects while the e-service runs is offered within seconds (the answer is cheap).
REACH_CACHE_SECONDS = 5.0
# Each region's unit list (GetAvailableHealthcareFacilities, as Välj vårdcentral shows it) is
# kept this long: asking every connected region on every page view was 78 % of the
# e-service's SOAP calls (docs/performance.md, "A year of traffic"), and units change rarely.
# Only queue length, wait and whether a unit is full may be this old on the choice page;
# nothing is decided on them: the confirm page and its POST read the chosen unit again from its
# region (``Backend.unit``, app.py ``_offerable_unit``) before CreateListing is sent, and the
# region itself decides on the listing. A failed read is not kept, so the next page asks again.
UNITS_CACHE_SECONDS = 60.0
# A page that misses the unit cache asks every connected region at once (all 21 counties):
# with 4 threads it waited ceil(21/4) = 6 rounds of answers (0.58 s against 0.31 s with 21
# threads, 21 regions at 50 ms latency). Each thread keeps its own ListingClient (a requests
# session with its TLS connection to the platform; the zeep clients are per process) and its
# own malloc arena: about 1 MB RSS per thread, +18 MB for 21 threads instead of 4 on a
# ~100 MB process (docs/eservice.md). Pages share the pool; under load, calls wait here.
FANOUT_THREADS = len(ids.counties())
SWEDEN = ZoneInfo("Europe/Stockholm")
SHIPPED_REGIONS_DIR = Path(__file__).resolve().parents[2] / "producers" / "regions"


class PersonNotFound(LookupError):
    """The population register has no resident with that number (or they are not resident)."""


def swedish_now() -> datetime:
    """Swedish local time, naive: the form the contracts' dateTime values take."""
    return datetime.now(SWEDEN).replace(tzinfo=None, microsecond=0)


def region_name(code: str) -> str:
    try:
        return ids.county(code).region_name
    except KeyError:
        return f"län {code}"


def municipality_name(code: str | None) -> str | None:
    if not code:
        return None
    m = ids.municipalities().get(code)
    return m.name if m else None


# --- values the pages show ---------------------------------------------------------------

@dataclass(frozen=True)
class Doctor:
    id: str
    name: str
    title: str | None = None


@dataclass(frozen=True)
class ListingView:
    unit_id: str
    unit_name: str
    county: str
    listing_type: str
    valid_from: datetime | None
    valid_to: datetime | None
    doctor: Doctor | None
    in_queue: bool
    queue_position: int | None
    estimated_wait: int | None
    remaining_changes: int | None
    supports_personnel: bool

    @property
    def region_name(self) -> str:
        return region_name(self.county)

    @property
    def starts_later(self) -> bool:
        """The listing takes effect later (a region whose changes apply from tomorrow)."""
        return self.valid_from is not None and self.valid_from > swedish_now()


@dataclass
class MyListing:
    home_county: str
    home_connected: bool
    listings: list[ListingView] = field(default_factory=list)
    counties: list[str] = field(default_factory=list)
    # counties the resident is listed in that could not be read: (county, reason, reference)
    unread: list[tuple[str, str, str | None]] = field(default_factory=list)

    @property
    def current(self) -> list[ListingView]:
        return [x for x in self.listings if not x.in_queue]

    @property
    def queued(self) -> list[ListingView]:
        return [x for x in self.listings if x.in_queue]

    @property
    def remaining_changes(self) -> int | None:
        found = [x.remaining_changes for x in self.listings if x.remaining_changes is not None]
        return min(found) if found else None


@dataclass(frozen=True)
class UnitView:
    id: str
    name: str
    county: str
    municipality: str | None
    has_queue: bool
    queue_length: int | None
    estimated_wait: int | None
    supports_personnel: bool
    listing_types: tuple[str, ...]

    @property
    def region_name(self) -> str:
        return region_name(self.county)


@dataclass
class UnitChoice:
    """What Välj vårdcentral may offer: ``mode`` is ``all`` (home connected: every reachable
    region), ``home_only`` (home region's units can be read but it is not connected for
    listing through the e-service: shown, not offered) or ``none`` (home not connected at
    all)."""

    home_county: str
    mode: str
    reach: list[str]
    units: list[UnitView] = field(default_factory=list)
    unreachable: list[tuple[str, str | None]] = field(default_factory=list)  # (county, ref)

    def selectable(self, unit: UnitView) -> bool:
        return self.mode == "all" and unit.county in self.reach


# --- the unit directory (stand-in for the HSA catalogue) --------------------------------

def load_unit_directory(dirs: list[Path]) -> dict[str, str]:
    """HSA-id (upper case) → municipality code, from region configuration files (``[[units]]``
    with ``hsa_id`` and ``municipality``). The contracts carry no address; 1177 reads it from
    the HSA catalogue, which the region configurations stand in for here."""
    found: dict[str, str] = {}
    for d in dirs:
        for path in sorted(d.glob("*.toml")):
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                log.warning("unit directory: skipping %s (%s)", path, exc)
                continue
            for unit in data.get("units", []):
                if isinstance(unit, dict) and unit.get("hsa_id") and unit.get("municipality"):
                    found[ids.normalise_hsa_id(str(unit["hsa_id"]))] = str(unit["municipality"])
    return found


# --- the backend ---------------------------------------------------------------------------

@dataclass
class BackendConfig:
    platform_url: str
    cert: Path | None
    key: Path | None
    ca: Path | None
    hsa_id: str
    population_url: str
    population_cert: Path | None = None
    population_key: Path | None = None
    population_ca: Path | None = None
    timeout: float = 20.0
    unit_dirs: list[Path] = field(default_factory=lambda: [SHIPPED_REGIONS_DIR])


class Backend:
    """``units_cache_seconds`` and ``monotonic`` (the caches' clock) are there for tests."""

    def __init__(self, config: BackendConfig,
                 clock: Callable[[], date] = lambda: swedish_now().date(), *,
                 units_cache_seconds: float = UNITS_CACHE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.units_cache_seconds = units_cache_seconds
        self.monotonic = monotonic
        self._local = threading.local()
        self._reach: dict[str, tuple[float, list[str]]] = {}
        self._reach_lock = threading.Lock()
        # county -> (when read, its units); at most one entry per county
        self._units: dict[str, tuple[float, tuple[UnitView, ...]]] = {}
        self._units_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=FANOUT_THREADS,
                                        thread_name_prefix="eservice-call")
        self.unit_municipality = load_unit_directory(config.unit_dirs)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- clients, one per thread (requests sessions are not shared between threads) --

    def listing_client(self) -> ListingClient:
        client = getattr(self._local, "listing", None)
        if client is None:
            c = self.config
            client = ListingClient(c.platform_url, cert=c.cert, key=c.key, ca=c.ca,
                                   timeout=c.timeout, retries=2, backoff=0.3)
            self._local.listing = client
        return client

    def population_client(self) -> PopulationClient:
        client = getattr(self._local, "population", None)
        if client is None:
            c = self.config
            client = PopulationClient(c.population_url, cert=c.population_cert,
                                      key=c.population_key, ca=c.population_ca)
            self._local.population = client
        return client

    # -- the population register --

    def person(self, pid: str) -> PersonInfo:
        """The resident (raises ``PersonNotFound``; ``PopulationApiError`` when the register
        cannot be reached)."""
        p = self.population_client().person(pid)
        if p is None or p.status != "resident" or p.home_county is None:
            raise PersonNotFound("no resident with that number in the population register")
        return p

    def age(self, p: PersonInfo) -> int:
        return p.age(self.clock())

    # -- the catalogue --

    def reach(self, contract: str) -> list[str]:
        """The logical addresses (county codes) the e-service may call ``contract`` at today,
        from the catalogue; a catch-all permission (``*``) means every county."""
        now = self.monotonic()
        with self._reach_lock:
            cached = self._reach.get(contract)
            if cached and now - cached[0] < REACH_CACHE_SECONDS:
                return cached[1]
        namespace = all_contracts()[contract].namespace
        r = self.listing_client().call(
            GLABSC, PLATFORM_LOGICAL_ADDRESS, serviceConsumerHsaId=self.config.hsa_id,
            serviceContractNameSpace=namespace)
        if r.result_code not in ("OK", "INFO"):
            raise InvalidResponse(f"the catalogue answered {r.result_code}",
                                  contract=GLABSC, correlation_id=r.correlation_id)
        addresses = [rec.logicalAddress.strip() for rec in (r.response.logicalAddressRecord
                                                            or [])]
        if "*" in addresses:
            codes = list(ids.counties())
        else:
            codes = sorted({a for a in addresses if ids.is_county_code(a)})
        log.info("catalogue: %s reachable at %s (correlation id %s)", contract,
                 ",".join(codes) or "-", r.correlation_id)
        with self._reach_lock:
            self._reach[contract] = (now, codes)
        return codes

    # -- Min listning --

    def my_listing(self, subject: PersonInfo, actor: dict[str, Any]) -> MyListing:
        home = subject.home_county
        assert home is not None
        mine = MyListing(home, home in self.reach("GetListingCounty"))
        if not mine.home_connected:
            return mine
        client = self.listing_client()
        r = client.get_listing_county(home, actor=actor, personId=v.person(subject.person_id))
        log.info("GetListingCounty @%s %s (correlation id %s)", home, r.result_code,
                 r.correlation_id)
        if not r.ok:
            raise ResultError(r.result_code or "ERROR", r.response.resultText or "",
                              r.correlation_id)
        mine.counties = [c.extension for c in r.response.listingCounties or []
                         if c.extension]
        readable = set(self.reach("GetListing"))

        def read(county: str) -> list[ListingView] | tuple[str, str, str | None]:
            if county not in readable:
                return (county, "not_connected", None)
            try:
                g = self.listing_client().get_listing(county, actor=actor,
                                                      personId=v.person(subject.person_id))
            except ClientError as exc:
                log.warning("GetListing @%s failed: %s", county, exc.message)
                return (county, "technical", exc.correlation_id)
            log.info("GetListing @%s %s (correlation id %s)", county, g.result_code,
                     g.correlation_id)
            if not g.ok:
                return (county, g.response.resultText or g.result_code or "ERROR",
                        g.correlation_id)
            return [self._listing_view(county, x) for x in g.response.listings or []]

        # The home region too, even when it is not among the counties: it holds queue places
        # at its own units and fills in remainingChanges (carelisting-contracts.md §4-§6).
        to_read = [*mine.counties, *([home] if home not in mine.counties else [])]
        now = swedish_now()
        for got in self._pool.map(read, to_read):
            if isinstance(got, tuple):
                mine.unread.append(got)
                continue
            mine.listings.extend(x for x in got if x.valid_to is None or x.valid_to > now)
        return mine

    @staticmethod
    def _listing_view(county: str, x: Any) -> ListingView:
        f = x.healthcareFacility
        lt = x.listingType
        doctor = None
        if x.healthcarePersonnel is not None:
            p = x.healthcarePersonnel
            doctor = Doctor(p.id, p.name, getattr(p, "title", None))
        return ListingView(
            unit_id=f.id, unit_name=f.name, county=county,
            listing_type=lt.displayName or lt.code, valid_from=x.validFromDate,
            valid_to=x.validToDate, doctor=doctor, in_queue=bool(x.isInQueue),
            queue_position=x.queuePosition, estimated_wait=x.estimatedWaitInQueue,
            remaining_changes=getattr(x, "remainingChanges", None),
            supports_personnel=bool(f.supportsHealthcarePersonnel))

    # -- Välj vårdcentral --

    def unit_choice(self, home: str) -> UnitChoice:
        """The units the resident can be offered (see ``UnitChoice``)."""
        can_list = self.reach("CreateListing")
        can_read = set(self.reach("GetAvailableHealthcareFacilities"))
        if home in can_list:
            choice = UnitChoice(home, "all", can_list)
            counties = [c for c in can_list if c in can_read]
        elif home in can_read:
            choice = UnitChoice(home, "home_only", can_list)
            counties = [home]
        else:
            return UnitChoice(home, "none", can_list)

        for got in self._pool.map(self._units_of, counties):
            if isinstance(got, tuple):
                choice.unreachable.append(got)
            else:
                choice.units.extend(got)
        # home region first, then by region and name
        choice.units.sort(key=lambda u: (u.county != home, u.county, u.name.casefold()))
        return choice

    def _units_of(self, county: str) -> list[UnitView] | tuple[str, str | None]:
        """The county's units, from the cache when read less than ``units_cache_seconds``
        ago; ``(county, correlation id)`` when they could not be read (never cached)."""
        now = self.monotonic()
        with self._units_lock:
            cached = self._units.get(county)
            if cached and now - cached[0] < self.units_cache_seconds:
                log.debug("GetAvailableHealthcareFacilities @%s from cache (%.0f s old)",
                          county, now - cached[0])
                return list(cached[1])
        # Not under the lock: a slow region must not hold up the others. Two pages missing
        # at once both ask; the last to answer is kept.
        try:
            r = self.listing_client().get_available_healthcare_facilities(county)
        except ClientError as exc:
            log.warning("GetAvailableHealthcareFacilities @%s failed: %s", county, exc.message)
            return (county, exc.correlation_id)
        if not r.ok:
            log.warning("GetAvailableHealthcareFacilities @%s %s (correlation id %s)", county,
                        r.result_code, r.correlation_id)
            return (county, r.correlation_id)
        units = tuple(self._unit_view(county, f) for f in r.response.healthcareFacilities or [])
        with self._units_lock:
            self._units[county] = (now, units)
        return list(units)

    def unit(self, county: str, hsa_id: str) -> UnitView | None:
        """One unit, read again from its region (never trusted from the form, never from
        the unit cache): what the confirm page shows and the choice is checked against."""
        r = self.listing_client().get_available_healthcare_facilities(
            county, healthcareFacilities=[hsa_id])
        if not r.ok:
            return None
        for f in r.response.healthcareFacilities or []:
            if ids.same_hsa_id(f.id, hsa_id):
                return self._unit_view(county, f)
        return None

    def _unit_view(self, county: str, f: Any) -> UnitView:
        return UnitView(
            id=f.id, name=f.name, county=county,
            municipality=municipality_name(
                self.unit_municipality.get(ids.normalise_hsa_id(f.id))),
            has_queue=bool(f.hasQueue), queue_length=getattr(f, "queueLength", None),
            estimated_wait=getattr(f, "estimatedWaitInQueue", None),
            supports_personnel=bool(f.supportsHealthcarePersonnel),
            listing_types=tuple(t.displayName or t.code for t in f.supportedListingTypes or []))

    # -- fast läkarkontakt --

    def personnel(self, county: str, unit_id: str, subject: PersonInfo) -> list[Doctor]:
        r = self.listing_client().get_available_healthcare_personnel(
            county, personId=v.person(subject.person_id), healthcareFacilityHSAId=unit_id)
        if not r.ok:
            raise ResultError(r.result_code or "ERROR", r.response.resultText or "",
                              r.correlation_id)
        return [Doctor(p.id, p.name, getattr(p, "title", None))
                for p in r.response.healthcarePersonnel or []]

    # -- the change --

    def create_listing(self, *, county: str, subject: PersonInfo, actor: dict[str, Any],
                       unit_id: str, doctor: str | None = None,
                       add_to_queue: bool | None = None) -> Any:
        """CreateListing at the unit's region; ``homeCounty`` when it is not the home one."""
        body: dict[str, Any] = {
            "actor": actor, "personId": v.person(subject.person_id),
            "healthcareFacilityHSAId": unit_id, "listingType": v.listing_type(),
        }
        if doctor:
            body["healthcarePersonnel"] = doctor
        if add_to_queue is not None:
            body["addToQueue"] = add_to_queue
        if county != subject.home_county:
            body["homeCounty"] = v.county(subject.home_county or "")
        r = self.listing_client().create_listing(county, **body)
        log.info("CreateListing @%s %s (correlation id %s)", county, r.result_code,
                 r.correlation_id)
        return r


class ResultError(Exception):
    """A read answered with an ERROR result: shown as the region's message."""

    def __init__(self, code: str, text: str, correlation_id: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code, self.text, self.correlation_id = code, text, correlation_id


__all__ = ["Backend", "BackendConfig", "ClientError", "PersonNotFound", "ResultError",
           "SoapFault"]
