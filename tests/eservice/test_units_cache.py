"""Välj vårdcentral keeps each region's unit list for a while (``UNITS_CACHE_SECONDS``).

Against this folder's harness of its own (real region listing systems behind the platform
stand-in, which records every call it routes): the e-service's ``Backend`` as the web layer
uses it, with the caches' clock handed in so that "a minute later" needs no waiting.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from stack import ESERVICE_HSA_ID, Stack, start_stack

from consumers.client import SoapFault
from consumers.eservice.backend import UNITS_CACHE_SECONDS, Backend, BackendConfig, UnitView
from producers.config import shipped_config
from producers.population.model import PersonRow
from producers.population.test_persons import TOLVAN

GAHF = "GetAvailableHealthcareFacilities"
SODERMALM = shipped_config("01").units[1]  # Husläkarmottagningen Södermalm: cap 3, has a queue
HOME = "01"  # Tolvan's; the harness connects 01 and 08


class Clock:
    """A monotonic clock the test moves on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A harness of the module's own: these tests fill a unit and break a county."""
    s = start_stack(tmp_path_factory.mktemp("units-cache"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(own: Stack, clock: Clock) -> Iterator[Backend]:
    b = Backend(BackendConfig(platform_url=own.platform_url, cert=own.cert, key=own.key,
                              ca=own.ca, hsa_id=ESERVICE_HSA_ID,
                              population_url=own.population_url, timeout=10.0),
                monotonic=clock)
    try:
        yield b
    finally:
        b.close()


def gahf_calls(stack: Stack) -> dict[str, int]:
    """GetAvailableHealthcareFacilities calls the platform has routed, per county."""
    found: dict[str, int] = {}
    for contract, address in list(stack.platform.calls):
        if contract == GAHF:
            found[address] = found.get(address, 0) + 1
    return found


def sodermalm(units: list[UnitView]) -> UnitView:
    return next(u for u in units if u.id == SODERMALM.hsa_id)


def test_two_page_views_within_the_cache_time_ask_each_region_once(
        own: Stack, backend: Backend, clock: Clock) -> None:
    before = gahf_calls(own)
    first = backend.unit_choice(HOME)
    clock.now += UNITS_CACHE_SECONDS - 1
    second = backend.unit_choice(HOME)
    after = gahf_calls(own)
    assert {c: after.get(c, 0) - before.get(c, 0) for c in ("01", "08")} == {"01": 1, "08": 1}
    assert {u.county for u in first.units} == {"01", "08"}
    assert [u.id for u in second.units] == [u.id for u in first.units]
    assert second.unreachable == []


def test_after_the_cache_time_the_list_is_read_again_and_a_change_shows(
        own: Stack, backend: Backend, clock: Clock) -> None:
    assert not sodermalm(backend.unit_choice(HOME).units).has_queue
    with own.register.engine.connect() as conn:
        adults = conn.execute(select(PersonRow.person_id).where(
            PersonRow.county == "01", PersonRow.birth_date < "1990-01-01",
            PersonRow.person_id != TOLVAN.person_id)
            .order_by(PersonRow.person_id)).scalars().all()[:SODERMALM.cap]
    own.fill_unit("01", SODERMALM.hsa_id, list(adults))  # full now, directly in the region

    clock.now += UNITS_CACHE_SECONDS / 2
    assert not sodermalm(backend.unit_choice(HOME).units).has_queue, "still the kept list"
    # what the confirm page shows and checks is read again, whatever the list says
    fresh = backend.unit("01", SODERMALM.hsa_id)
    assert fresh is not None and fresh.has_queue

    before = gahf_calls(own)
    clock.now += UNITS_CACHE_SECONDS / 2
    assert sodermalm(backend.unit_choice(HOME).units).has_queue, "read again: full, queue"
    after = gahf_calls(own)
    assert {c: after.get(c, 0) - before.get(c, 0) for c in ("01", "08")} == {"01": 1, "08": 1}


def test_a_region_that_failed_is_asked_again_on_the_next_page(
        own: Stack, backend: Backend) -> None:
    own.platform.broken.add("08")  # the platform answers VP009 for Kalmar
    try:
        failed = backend.unit_choice(HOME)
    finally:
        own.platform.broken.discard("08")
    assert [county for county, _ in failed.unreachable] == ["08"]
    assert {u.county for u in failed.units} == {"01"}

    before = gahf_calls(own)
    again = backend.unit_choice(HOME)  # at once: no time has passed on the caches' clock
    after = gahf_calls(own)
    assert again.unreachable == []
    assert {u.county for u in again.units} == {"01", "08"}
    assert after.get("08", 0) - before.get("08", 0) == 1, "the failed region is asked again"
    assert after.get("01", 0) - before.get("01", 0) == 0, "the one that answered is kept"


def test_a_region_failing_after_it_answered_still_shows_its_kept_units(
        own: Stack, backend: Backend) -> None:
    """Within the cache time the choice page still lists a region that has since stopped
    answering; choosing one of its units reads the unit again and fails there, visibly."""
    kalmar = [u for u in backend.unit_choice(HOME).units if u.county == "08"]
    assert kalmar
    own.platform.broken.add("08")
    try:
        kept = backend.unit_choice(HOME)
        assert kept.unreachable == []
        assert [u for u in kept.units if u.county == "08"] == kalmar
        with pytest.raises(SoapFault) as raised:
            backend.unit("08", kalmar[0].id)  # the confirm page: "Tekniskt fel"
        assert raised.value.vp_code == "VP009"
    finally:
        own.platform.broken.discard("08")
