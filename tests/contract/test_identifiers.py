"""Identifier rules: what a producer, the population generator and the validator accept."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from interactions import identifiers as ids
from interactions.contracts import HERE as INTERACTIONS_DIR


@pytest.mark.parametrize("pnr", ["191212121212", "198503142468", "201609031230", "195811305712"])
def test_known_personnummer_are_valid(pnr: str) -> None:
    assert ids.check_personal_id(pnr) is None
    assert ids.check_personal_id(pnr, ids.PERSONNUMMER_OID) is None


@pytest.mark.parametrize(("pnr", "reason"), [
    ("191212121213", "check digit"),  # Luhn gives 2
    ("19121212121", "12 digits"),
    ("19121212-1212", "12 digits"),
    ("1912121212120", "12 digits"),
    ("191212121212\n", "12 digits"),
    ("199913321236", "real date"),  # month 13
    ("202302291234", "real date"),  # 2023 is no leap year
    ("191212921212", "real date"),  # day 92 - 60 = 32
    ("", "missing"),
    (None, "missing"),
])
def test_broken_personnummer_say_why(pnr: str | None, reason: str) -> None:
    assert reason in (ids.check_personal_id(pnr) or "")


def test_reasons_never_repeat_the_number() -> None:
    assert "191212121213" not in (ids.check_personal_id("191212121213") or "x")


def test_a_birth_date_in_the_future_is_refused() -> None:
    future = ids.make_personal_id(date.today() + timedelta(days=2), 123)
    assert "future" in (ids.check_personal_id(future) or "")


def test_samordningsnummer_day_plus_60_and_its_own_oid() -> None:
    s = ids.make_personal_id(date(1990, 7, 2), 238, samordning=True)
    assert s == "199007622385"
    assert ids.is_samordningsnummer(s)
    assert ids.birth_date_of(s) == date(1990, 7, 2)
    assert ids.check_personal_id(s, ids.SAMORDNINGSNUMMER_OID) is None
    assert ids.personal_id_root(s) == ids.SAMORDNINGSNUMMER_OID
    # the root must match the kind of number, both ways
    assert "samordningsnummer" in ids.check_personal_id(s, ids.PERSONNUMMER_OID)
    assert "personnummer" in ids.check_personal_id("191212121212", ids.SAMORDNINGSNUMMER_OID)
    assert "check digit" in ids.check_personal_id("199007622386")  # one off


def test_a_person_with_a_foreign_oid_is_refused() -> None:
    assert "OID" in ids.check_personal_id("191212121212", ids.HSA_ID_OID)


def test_generated_numbers_round_trip_for_every_day_of_a_leap_year() -> None:
    day = date(2024, 1, 1)
    while day.year == 2024:
        for samordning in (False, True):
            pnr = ids.make_personal_id(day, day.toordinal() % 1000, samordning)
            assert ids.check_personal_id(pnr, ids.personal_id_root(pnr)) is None, pnr
            assert ids.birth_date_of(pnr) == day
        day += timedelta(days=1)


def test_make_personal_id_refuses_a_serial_out_of_range() -> None:
    with pytest.raises(ValueError, match="serial"):
        ids.make_personal_id(date(1990, 1, 1), 1000)


def test_luhn_over_yymmddnnn() -> None:
    assert ids.luhn_check_digit("121212121") == 2  # 19121212-1212
    assert ids.luhn_check_digit("232100001") == 6  # Region Stockholm, 232100-0016


@pytest.mark.parametrize("hsa", [
    "SE2321000016-E8R1", "se2321000016-e8r1", "SE2321000073-4D5F", "SE5565594230-B8N",
    "SE162321000016-X1",  # 12-digit organisation number (16 prefix)
])
def test_valid_hsa_ids(hsa: str) -> None:
    assert ids.check_hsa_id(hsa) is None
    assert ids.is_hsa_id(hsa)


@pytest.mark.parametrize(("hsa", "reason"), [
    ("2321000016-E8R1", "SE, the organisation number"),
    ("SE232100-0016-E8R1", "SE, the organisation number"),
    ("SE2321000016", "SE, the organisation number"),
    ("SE2321000016-", "SE, the organisation number"),
    ("SE2321000016-ÅÄÖ", "SE, the organisation number"),
    ("SE2321000016-" + "A" * 19, "at most 31"),
    ("SE2321000017-E8R1", "check digit"),
    ("", "empty"),
])
def test_invalid_hsa_ids_say_why(hsa: str, reason: str) -> None:
    assert reason in (ids.check_hsa_id(hsa) or "")


def test_hsa_ids_compare_case_insensitively() -> None:
    assert ids.same_hsa_id("se2321000016-abc1", "SE2321000016-ABC1")
    assert not ids.same_hsa_id("SE2321000016-ABC1", "SE2321000016-ABC2")
    assert not ids.same_hsa_id(None, "SE2321000016-ABC1")


def test_the_21_counties_with_their_regions() -> None:
    counties = ids.counties()
    assert len(counties) == 21
    assert list(counties)[:3] == ["01", "03", "04"]
    sthlm, kalmar = counties["01"], counties["08"]
    assert (sthlm.name, sthlm.region_name, sthlm.region_org_number) == (
        "Stockholms län", "Region Stockholm", "232100-0016")
    assert (kalmar.name, kalmar.region_name) == ("Kalmar län", "Region Kalmar län")
    assert 10_500_000 < sum(c.population for c in counties.values()) < 10_700_000
    assert ids.region_hsa_prefix("01") == "SE2321000016"
    assert ids.region_hsa_prefix("09") == "SE2120000803"  # Gotland is a municipality-region


def test_every_region_org_number_has_a_valid_check_digit() -> None:
    # HSA-ids are built on them: a typo here would make every HSA-id of a region invalid.
    for c in ids.counties().values():
        assert ids.is_hsa_id(c.hsa_prefix + "-1"), c


@pytest.mark.parametrize("code", ["01", "03", "08", "14", "25"])
def test_county_codes(code: str) -> None:
    assert ids.is_county_code(code)
    assert ids.check_county(ids.COUNTY_OID, code) is None


@pytest.mark.parametrize("code", ["02", "11", "15", "16", "26", "00", "1", "8", "", None])
def test_not_county_codes(code: str | None) -> None:
    assert not ids.is_county_code(code)
    assert ids.check_county(ids.COUNTY_OID, code) is not None


def test_a_county_needs_the_kv_lan_oid() -> None:
    assert "OID" in ids.check_county(ids.PERSONNUMMER_OID, "01")


def test_unknown_county_lookup_names_the_valid_codes() -> None:
    with pytest.raises(KeyError, match="01, 03"):
        ids.region_hsa_prefix("02")


def test_county_of_a_regional_hsa_id() -> None:
    assert ids.county_of_hsa_id("se2321000073-4d5f") == "08"
    assert ids.county_of_hsa_id("SE5565594230-B8N") is None


def test_municipalities_belong_to_known_counties() -> None:
    munis = ids.municipalities()
    assert len(munis) == 290
    for m in munis.values():
        assert m.code[:2] == m.county_code and ids.is_county_code(m.county_code), m
        assert 55 < m.latitude < 70 and 10 < m.longitude < 25, m
    assert munis["0880"].name == "Kalmar"


def test_reference_data_ships_inside_the_package() -> None:
    # The installed project must not read the shared folder beside the clone.
    from interactions import refdata

    assert refdata.DIR.parent == INTERACTIONS_DIR
    assert (refdata.DIR / "counties.csv").is_file()
    assert (refdata.DIR / "municipalities.csv").is_file()


def test_listing_type_code_system() -> None:
    assert ids.NATIONAL_LISTING_TYPES == {"PV": "Primärvårdslistning"}
    assert ids.LISTING_TYPE_CODE_SYSTEM == "1.2.752.129.5.1.27"
