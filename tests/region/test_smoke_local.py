"""First checks: a resident lists at home, sees it, and the home region knows."""

from __future__ import annotations

from producers.inprocess import create, ctx_for, listed_units, listing_counties, wire


def test_resident_lists_at_a_unit_in_the_home_region(make_region, people, clock):
    r01 = make_region("01")
    pid = people.adult("01")
    unit = r01.config.units[0].hsa_id
    resp = wire(r01.handle(create(pid, unit), ctx_for(clock)))
    assert resp.resultCode == "OK", resp.resultText
    assert "listad" in resp.resultText
    assert listed_units(r01, pid) == [unit]
    assert listing_counties(r01, pid) == ["01"]
