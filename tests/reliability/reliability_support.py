"""A world of in-process regions for the reliability tests: real SQLite databases, a real
population register, and a message layer between the regions that the tests control.

``FaultyNet`` carries UpdateListing through ``producers.inprocess.Network`` (validated XML both
ways, the extension elements as on the wire), but first asks its *plan* what to do with each
message: deliver it, deliver it twice, lose the answer (timeout after applying), hold it back
to deliver later (the sender sees a timeout; the message arrives after it, in any order), drop
it (the sender sees a timeout; nothing arrived), or refuse it (``NotDelivered``). A county in
``down`` cannot be reached at all.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from sqlalchemy import bindparam, event, func, select

from interactions import identifiers as ids
from producers import outbox, population_feed
from producers.config import shipped_config
from producers.context import CallContext, local_now
from producers.inprocess import Network
from producers.outbox import NotDelivered
from producers.population.model import PersonRow
from producers.population.register import PopulationRegister
from producers.region import Region
from producers.storage import open_database
from producers.storage.db import Database
from producers.storage.models import HomeRecord, Listing, ListingChange, OutboxMessage

COUNTIES = ("01", "03", "08")  # refuse+same day, refuse+first of next month, outbox+next day
MODES = ("deliver", "duplicate", "lose_answer", "delay", "drop", "refuse")

# Hypothesis profiles. ``ci`` (default): 200 schedules, about two minutes on one core (the
# suite's other worker runs other files meanwhile); ``LISTNING_SOAK=1`` runs many more and
# longer schedules (LISTNING_SOAK_EXAMPLES, LISTNING_SOAK_STEPS; benchmarks/convergence_soak.py
# runs them on every core).
SOAK = os.environ.get("LISTNING_SOAK") == "1"
_common = {"deadline": None, "derandomize": False, "print_blob": True,
           "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture]}
# CI replays the same schedules every time (derandomised, no example database): a red build
# is reproducible, and what the soak finds is pinned as a regression test instead.
settings.register_profile("reliability-ci", max_examples=200, stateful_step_count=40,
                          **{**_common, "derandomize": True, "database": None})
settings.register_profile("reliability-soak", max_examples=int(
    os.environ.get("LISTNING_SOAK_EXAMPLES", "1500")), stateful_step_count=int(
    os.environ.get("LISTNING_SOAK_STEPS", "120")), **_common)
PROFILE = settings.get_profile("reliability-soak" if SOAK else "reliability-ci")


class Clock:
    """The world's time: regions, contexts and the network read it; the tests move it on."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


@dataclass
class Held:
    sender: str
    to: str
    request: Any


class FaultyNet:
    """The message layer between the regions, with faults on demand (see the module doc)."""

    def __init__(self, clock: Clock) -> None:
        self.inner = Network(clock)
        self.clock = clock
        self.down: set[str] = set()
        self.plan: deque[str] = deque()
        self.held: list[Held] = []
        self.faults: Counter[str] = Counter()
        self.messages = 0

    @property
    def regions(self) -> dict[str, Region]:
        return self.inner.regions

    def _deliver(self, frm: str, to: str, request: Any) -> Any:
        self.messages += 1
        return self.inner.sender_for(frm)(to, request)

    def sender_for(self, county: str) -> Callable[[str, Any], Any]:
        def send(to: str, request: Any) -> Any:
            if to in self.down:
                self.faults["region_down"] += 1
                raise NotDelivered(f"VP009 region {to} cannot be reached")
            mode = self.plan.popleft() if self.plan else "deliver"
            if mode != "deliver":
                self.faults[mode] += 1
            if mode == "refuse":
                raise NotDelivered("VP007 the platform refused the message")
            if mode == "drop":
                raise TimeoutError("no answer (the message was lost on the way)")
            if mode == "delay":
                self.held.append(Held(county, to, request))
                raise TimeoutError("no answer in time (the message is still on its way)")
            answer = self._deliver(county, to, request)
            if mode == "duplicate":
                answer = self._deliver(county, to, request)
            if mode == "lose_answer":
                raise TimeoutError("the answer was lost")
            return answer
        return send

    def release(self, index: int, *, keep: bool = False) -> bool:
        """Deliver a held message late (out of order); with ``keep`` a copy stays held."""
        if not self.held:
            return False
        msg = self.held[index % len(self.held)]
        if msg.to in self.down:
            return False
        if not keep:
            self.held.remove(msg)
        self._deliver(msg.sender, msg.to, msg.request)  # nobody waits for this answer
        return True


@dataclass
class World:
    clock: Clock
    net: FaultyNet
    population: PopulationRegister
    regions: dict[str, Region]
    tmp: Path
    databases: list[Database] = field(default_factory=list)

    def region(self, county: str) -> Region:
        return self.regions[county]

    def ctx(self, caller: str = "SE5565594230-1177") -> CallContext:
        return CallContext(caller_hsa_id=caller, original_consumer=caller, now=self.clock())

    def read_feeds(self) -> None:
        for county, region in self.regions.items():
            if county not in self.net.down:
                population_feed.consume(region, self.population, self.clock())

    def pending(self) -> int:
        total = 0
        for region in self.regions.values():
            with region.db.transaction() as s:
                total += outbox.pending_count(s)
        return total

    def quiesce(self, max_rounds: int = 60) -> int:
        """Bring every region up, deliver every held message, read the feeds and run every
        outbox until nothing is pending; returns the rounds it took (fails if it never ends)."""
        self.net.down.clear()
        self.net.plan.clear()
        for rounds in range(1, max_rounds + 1):
            while self.net.held:
                self.net.release(0)
            self.read_feeds()
            for region in self.regions.values():
                outbox.run_due(region, self.clock())
            if not self.net.held and self.pending() == 0:
                self.read_feeds()
                if self.pending() == 0 and not self.net.held:
                    return rounds
            self.clock.advance(hours=1, seconds=30)  # past the longest back-off
        raise AssertionError(f"the outboxes did not drain in {max_rounds} rounds "
                             f"({self.pending()} pending)")

    def close(self) -> None:
        for db in self.databases:
            db.dispose()
        self.population.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Templates:
    """Migrated empty region databases and a generated population, made once per session and
    copied for every world (a fresh world per hypothesis example costs a few file copies)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.region_db = base / "region.sqlite"
        open_database(f"sqlite:///{self.region_db}").dispose()
        self.population_db = base / "population.sqlite"
        reg = PopulationRegister(f"sqlite:///{self.population_db}")
        reg.generate(600, seed=23, counties=list(COUNTIES))
        reg.close()

    def world(self, start: datetime | None = None) -> World:
        tmp = Path(tempfile.mkdtemp(prefix="world-", dir=self.base))
        clock = Clock(start or local_now().replace(hour=10, minute=0, second=0))
        net = FaultyNet(clock)
        shutil.copy(self.population_db, tmp / "population.sqlite")
        population = PopulationRegister(f"sqlite:///{tmp / 'population.sqlite'}")
        world = World(clock, net, population, {}, tmp)
        for county in COUNTIES:
            path = tmp / f"r{county}.sqlite"
            shutil.copy(self.region_db, path)
            db = open_database(f"sqlite:///{path}", upgrade=False)
            event.listen(db.engine, "connect", _no_fsync)
            world.databases.append(db)
            # a seeded back-off jitter: the same schedule retries at the same times, so that
            # hypothesis can replay and shrink what it found (it gave up as "flaky" once)
            region = Region(shipped_config(county), db, sender=net.sender_for(county),
                            population=population, clock=clock,
                            rng=random.Random(f"jitter-{county}"))
            world.regions[county] = region
            net.regions[county] = region
        return world


def _no_fsync(dbapi_conn: Any, _record: Any) -> None:
    """Throw-away test databases: commits need not reach the disk (speed only)."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=OFF")
    cur.close()


def adults(population: PopulationRegister, county: str, n: int, *,
           samordning: bool | None = False) -> list[str]:
    """``n`` living adults (20–70) registered in ``county``, in a stable order."""
    today = local_now().date()
    q = (select(PersonRow.person_id).where(
        PersonRow.county == county, PersonRow.deceased_on.is_(None),
        PersonRow.emigrated_on.is_(None),
        PersonRow.birth_date < today - timedelta(days=365 * 20),
        PersonRow.birth_date > today - timedelta(days=365 * 70)).order_by(PersonRow.person_id))
    with population.engine.connect() as conn:
        found = [p for p in conn.execute(q).scalars()
                 if samordning is None or ids.is_samordningsnummer(p) == samordning]
    if len(found) < n:
        raise LookupError(f"only {len(found)} such adults in county {county}")
    return found[:n]


# --- reading a region's database ----------------------------------------------------------------

def current_listings(region: Region, pid: str) -> list[Listing]:
    with region.db.transaction() as s:
        return list(s.execute(select(Listing).where(
            Listing.person_id == pid, Listing.valid_to.is_(None))).scalars())


def all_listings(region: Region, pid: str) -> list[Listing]:
    with region.db.transaction() as s:
        return list(s.execute(select(Listing).where(Listing.person_id == pid)
                              .order_by(Listing.id)).scalars())


def home_record(region: Region, pid: str) -> HomeRecord | None:
    with region.db.transaction() as s:
        return s.get(HomeRecord, pid)


def persons_with_two_current_listings(region: Region) -> list[str]:
    with region.db.transaction() as s:
        return list(s.execute(select(Listing.person_id).where(Listing.valid_to.is_(None))
                              .group_by(Listing.person_id).having(func.count() > 1)).scalars())


def duplicated_change_ids(region: Region) -> list[str]:
    """Message ids counted more than once against the 12-month limit (must be none)."""
    with region.db.transaction() as s:
        return list(s.execute(select(ListingChange.message_id).where(
            ListingChange.message_id.is_not(None)).group_by(ListingChange.message_id)
            .having(func.count() > 1)).scalars())


def changes_in_window(region: Region, now: datetime) -> dict[str, int]:
    since = now - timedelta(days=365)
    with region.db.transaction() as s:
        rows = s.execute(select(ListingChange.person_id, func.count()).where(
            ListingChange.changed_at > since).group_by(ListingChange.person_id)).all()
    return {pid: n for pid, n in rows}


def outbox_rows(region: Region, pid: str) -> list[OutboxMessage]:
    with region.db.transaction() as s:
        return list(s.execute(select(OutboxMessage).where(OutboxMessage.person_id == pid)
                              .order_by(OutboxMessage.id)).scalars())


# The invariants run after every step of every schedule: built once (building a statement
# costs more than running it on these small databases — a third of the machine's time).
_TWO_CURRENT = (select(Listing.person_id).where(Listing.valid_to.is_(None))
                .group_by(Listing.person_id).having(func.count() > 1))
_OVER_LIMIT = (select(ListingChange.person_id).where(ListingChange.changed_at > bindparam("since"))
               .group_by(ListingChange.person_id).having(func.count() > bindparam("limit")))
_COUNTED_TWICE = (select(ListingChange.message_id).where(ListingChange.message_id.is_not(None))
                  .group_by(ListingChange.message_id).having(func.count() > 1))


def invariants(region: Region, now: datetime) -> tuple[list[str], list[str], list[str]]:
    """What must hold at any time in one region (one transaction): persons with two current
    listings, persons over the 12-month limit, message ids counted twice — all empty."""
    window = {"since": now - timedelta(days=365),
              "limit": region.config.rules.changes_per_12_months}
    with region.db.transaction() as s:
        conn = s.connection()
        return (list(conn.execute(_TWO_CURRENT).scalars()),
                list(conn.execute(_OVER_LIMIT, window).scalars()),
                list(conn.execute(_COUNTED_TWICE).scalars()))
