"""Every shipped region file (all 21 counties) loads and is plausible for its county."""

from __future__ import annotations

import pytest

from interactions.identifiers import counties, municipalities
from producers.config import REGIONS_DIR, load_config

COUNTIES = list(counties())
SHIPPED = sorted(p.stem for p in REGIONS_DIR.glob("[0-9][0-9].toml"))


def test_every_county_has_a_region_file():
    assert SHIPPED == COUNTIES


@pytest.mark.parametrize("county", COUNTIES)
def test_region_file_loads_and_fits_its_county(county):
    cfg = load_config(REGIONS_DIR / f"{county}.toml")
    c = counties()[county]
    assert cfg.county == county
    assert cfg.name == c.region_name
    prefix = "SE" + c.region_org_number.replace("-", "") + "-"
    assert cfg.hsa_id.startswith(prefix)
    munis = municipalities()
    for u in cfg.units:
        assert u.hsa_id.startswith(prefix), u.hsa_id
        assert munis[u.municipality].county_code == county, (u.hsa_id, u.municipality)
        m = munis[u.municipality]
        # near the municipality's centre (large northern municipalities allow a margin)
        assert abs(u.latitude - m.latitude) < 0.5 and abs(u.longitude - m.longitude) < 0.8
        assert all(s.hsa_id.startswith(prefix) for s in u.staff), u.hsa_id
        assert bool(u.staff) <= u.fixed_doctor_contact
        assert u.listing_types[0] == "PV"
    staff = [s.hsa_id for u in cfg.units for s in u.staff]
    assert len(staff) == len(set(staff)), "a staff HSA-id is used twice in the region"
    assert cfg.listing_types[0].code == "PV"


def test_units_about_1200_and_caps_follow_population():
    cfgs = {c: load_config(REGIONS_DIR / f"{c}.toml") for c in COUNTIES}
    assert 1100 <= sum(len(cfg.units) for cfg in cfgs.values()) <= 1300
    all_ids = [u.hsa_id for cfg in cfgs.values() for u in cfg.units]
    assert len(all_ids) == len(set(all_ids))
    for code, cfg in cfgs.items():
        if code in ("01", "03", "08"):  # the hand-written pilot regions keep their few units
            continue
        capacity = sum(u.cap for u in cfg.units)
        population = counties()[code].population
        assert 1.0 * population <= capacity <= 1.5 * population, code
        assert any(u.cap <= 3 for u in cfg.units), f"{code}: a small unit for queues"
        in_county = {m.code for m in municipalities().values() if m.county_code == code}
        assert {u.municipality for u in cfg.units} == in_county, code


def test_rules_vary_between_regions():
    rules = [load_config(REGIONS_DIR / f"{c}.toml").rules for c in COUNTIES]
    for name in ("takes_effect", "passive_listing", "home_unreachable",
                 "citizen_may_act_from_age", "changes_per_12_months", "queue_at_cap"):
        assert len({getattr(r, name) for r in rules}) > 1, name
