"""A region's listing system: configuration + database + sender, and the entry point
``Region.handle(request_model, ctx) -> response_model`` that the SOAP producer calls.

One handler module per contract in ``producers/handlers/``; each runs in one database
transaction and answers every problem with the input as an ERROR with a Swedish resultText.
Anything else (a database outage, a bug) propagates: the producer turns it into a SOAP fault,
which RIV-TA defines as a technical error the consumer may retry.
"""

from __future__ import annotations

import importlib
import logging
import random
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import insert
from sqlalchemy.orm import Session

from producers.config import RegionConfig, resolve_database_url
from producers.context import CallContext, local_now
from producers.listings import birth_date_here, has_home_record, home_county_here, keep
from producers.outbox import Sender
from producers.storage import Database, open_database
from producers.storage.models import AccessLog, Person

log = logging.getLogger(__name__)
_ACCESS_LOG = insert(AccessLog.__table__)

CONTRACTS = (
    "CreateListing",
    "GetAvailableHealthcareFacilities",
    "GetAvailableHealthcarePersonnel",
    "GetListingCounty",
    "GetListing",
    "GetListingTypes",
    "UpdateListing",
    "PingForConfiguration",
)


class PopulationLookup(Protocol):
    """What a region asks the population register directly (producers.population fits)."""

    def guardians_of(self, pid: str) -> list[Any]: ...

    def home_county(self, pid: str) -> str | None: ...

    def person(self, pid: str) -> Any: ...  # with .municipality


def module_name(contract: str) -> str:
    """``CreateListing`` → ``producers.handlers.create_listing``."""
    return "producers.handlers." + re.sub(r"(?<!^)(?=[A-Z])", "_", contract).lower()


class Region:
    def __init__(self, config: RegionConfig, db: Database, sender: Sender | None = None,
                 population: PopulationLookup | None = None,
                 clock: Callable[[], datetime] = local_now,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.db = db
        self.sender = sender
        self.population = population
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - back-off jitter, not security
        self._handlers = {c: importlib.import_module(module_name(c)).handle for c in CONTRACTS}

    @classmethod
    def open(cls, config: RegionConfig, *, database_url: str | None = None,
             **kwargs: Any) -> Region:
        """The region on ``database_url``, else on its configuration's database
        (``resolve_database_url``)."""
        return cls(config, open_database(resolve_database_url(config, database_url)), **kwargs)

    @property
    def county(self) -> str:
        return self.config.county

    @property
    def hsa_id(self) -> str:
        return self.config.hsa_id

    def handle(self, request: Any, ctx: CallContext) -> Any:
        """Answer one request model with its response model (dispatch on the model class)."""
        name = type(request).__name__
        handler = self._handlers.get(name)
        if handler is None:
            raise TypeError(f"{name} is not a request this producer serves")
        return handler(self, request, ctx)

    # -- what several handlers need ---------------------------------------------------------

    def home_county_of(self, s: Session, pid: str) -> str | None:
        """The person's home county as this region knows it: the population feed first, then
        the register itself; a home record means the person is (or was) our resident."""
        county, has_record = home_county_here(s, pid)
        if county:
            return county
        if self.population is not None:
            try:
                county = self.population.home_county(pid)
            except Exception:  # the register is another system; absence is not our error
                log.warning("population register lookup failed", exc_info=True)
                county = None
            if county:
                return county
        if has_record is None:  # not read with the county (the session held the person)
            has_record = has_home_record(s, pid)
        return self.county if has_record else None

    def registered_home_county(self, pid: str) -> str | None:
        """The population register's answer now (ahead of our feed position, which may lag);
        None without a register, when it does not know, or when it cannot be reached."""
        if self.population is None:
            return None
        try:
            return self.population.home_county(pid) or None
        except Exception:  # the register is another system; absence is not our error
            log.warning("population register lookup failed", exc_info=True)
            return None

    def municipality_of(self, s: Session, pid: str) -> str | None:
        """Where the resident lives (for passive listing by proximity)."""
        person = keep(s, s.get(Person, pid))
        if person is not None and person.municipality:
            return person.municipality
        if self.population is None:
            return None
        try:
            found = self.population.person(pid)
        except Exception:
            log.warning("population register lookup failed", exc_info=True)
            return None
        return getattr(found, "municipality", None)

    def guardians_of(self, pid: str) -> list[str] | None:
        """Guardians' personal ids from the population register (None if it cannot answer)."""
        if self.population is None:
            return None
        try:
            found = self.population.guardians_of(pid)
        except Exception:
            log.warning("population register lookup failed", exc_info=True)
            return None
        return [g if isinstance(g, str) else getattr(g, "person_id", getattr(g, "pid", ""))
                for g in found]

    def birth_date(self, s: Session, pid: str) -> date:
        from interactions.identifiers import birth_date_of

        return birth_date_here(s, pid) or birth_date_of(pid)

    def log_access(self, s: Session, ctx: CallContext, contract: str, action: str,
                   person_id: str | None, actor: Any, result_code: str) -> None:
        actor_id = getattr(getattr(actor, "actorId", None), "extension", None)
        # One Core INSERT in the call's transaction: the ORM's unit of work for an object
        # nothing reads again cost several times the statement.
        s.connection().execute(_ACCESS_LOG, {
            "at": ctx.now, "person_id": person_id, "contract": contract, "action": action,
            "caller_hsa_id": ctx.caller_hsa_id, "original_consumer": ctx.original_consumer,
            "actor_type": getattr(actor, "actorType", None),
            "actor_id": str(actor_id)[:64] if actor_id else None,
            "correlation_id": ctx.correlation_id, "result_code": result_code})
        # INFO logs carry no personal identity number (patientdatalagen)
        log.info("%s %s by %s for %s: %s", contract, action, ctx.caller_hsa_id,
                 ctx.original_consumer, result_code)
