"""Code systems and identifier rules of the carelisting domain.

One place for what a personnummer, samordningsnummer, HSA-id and county code look like, so
that the producers, the population generator and ``listning validate`` agree. The checks
return a readable English reason (or ``None`` when the value is fine) instead of raising:
callers collect reasons into reports. Reasons never repeat a personal identity number.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from zoneinfo import ZoneInfo

from interactions import refdata

# OIDs of the identifier and code systems (carelisting-contracts.md §3)
PERSONNUMMER_OID = "1.2.752.129.2.1.3.1"
SAMORDNINGSNUMMER_OID = "1.2.752.129.2.1.3.3"
PERSON_OIDS = frozenset({PERSONNUMMER_OID, SAMORDNINGSNUMMER_OID})
HSA_ID_OID = "1.2.752.129.2.1.4.1"
COUNTY_OID = "1.2.752.129.2.2.1.18"  # KV län
LISTING_TYPE_CODE_SYSTEM = "1.2.752.129.5.1.27"
LISTING_TYPE_PV = "PV"
LISTING_TYPE_PV_NAME = "Primärvårdslistning"
NATIONAL_LISTING_TYPES = {LISTING_TYPE_PV: LISTING_TYPE_PV_NAME}

SAMORDNING_DAY_OFFSET = 60
HSA_ID_MAX_LENGTH = 31

_PERSONAL_ID = re.compile(r"[0-9]{12}")
HSA_ID_PATTERN = re.compile(r"[Ss][Ee](?P<org>[0-9]{10}|[0-9]{12})-[A-Za-z0-9]+")


# --- Luhn ------------------------------------------------------------------------------------

def luhn_check_digit(digits: str) -> int:
    """The Luhn check digit for ``digits`` (weights 2, 1, 2, … from the left, as Skatteverket
    and Bolagsverket use for 9-digit personnummer and organisation-number bodies)."""
    total = 0
    for i, ch in enumerate(digits):
        product = int(ch) * (2 if i % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return (10 - total % 10) % 10


# --- Personnummer and samordningsnummer ----------------------------------------------------

def is_samordningsnummer(extension: str) -> bool:
    """True when the day field is a samordningsnummer day (day + 60)."""
    return bool(_PERSONAL_ID.fullmatch(extension)) and int(extension[6:8]) > SAMORDNING_DAY_OFFSET


def birth_date_of(extension: str) -> date:
    """The birth date in a 12-digit personnummer or samordningsnummer (ValueError if none)."""
    if not _PERSONAL_ID.fullmatch(extension):
        raise ValueError("a personal identity number has 12 digits, YYYYMMDDNNNC")
    day = int(extension[6:8])
    if day > SAMORDNING_DAY_OFFSET:
        day -= SAMORDNING_DAY_OFFSET
    return date(int(extension[0:4]), int(extension[4:6]), day)


def check_personal_id(extension: str | None, root: str | None = None) -> str | None:
    """Why ``extension`` is not a personnummer/samordningsnummer (with OID ``root``), or None.

    Checks: 12 digits without hyphen, a real birth date not in the future (samordningsnummer:
    day + 60), the Luhn check digit over YYMMDDNNN, and that ``root`` (when given) is the OID
    of the kind of number the day field says it is.
    """
    if root is not None and root not in PERSON_OIDS:
        return (f"root {root!r} is neither the personnummer OID {PERSONNUMMER_OID} nor the "
                f"samordningsnummer OID {SAMORDNINGSNUMMER_OID}")
    if not extension:
        return "the personal identity number (extension) is missing"
    if not _PERSONAL_ID.fullmatch(extension):
        return "a personal identity number has 12 digits, YYYYMMDDNNNC, without hyphen"
    samordning = is_samordningsnummer(extension)
    kind = "samordningsnummer" if samordning else "personnummer"
    try:
        born = birth_date_of(extension)
    except ValueError:
        hint = " (samordningsnummer: day + 60)" if samordning else ""
        return f"the {kind} does not hold a real date{hint}"
    # Swedish dates: between 00:00 and 01:00 in Sweden a UTC server is still on yesterday
    if born > datetime.now(ZoneInfo("Europe/Stockholm")).date():
        return f"the {kind}'s birth date is in the future"
    expected = luhn_check_digit(extension[2:11])
    if int(extension[11]) != expected:
        return f"the {kind}'s check digit is {extension[11]}; the Luhn check digit is {expected}"
    if root == PERSONNUMMER_OID and samordning:
        return (f"a samordningsnummer (day + 60) carries root {PERSONNUMMER_OID}; "
                f"use {SAMORDNINGSNUMMER_OID}")
    if root == SAMORDNINGSNUMMER_OID and not samordning:
        return (f"a personnummer carries the samordningsnummer root {SAMORDNINGSNUMMER_OID}; "
                f"use {PERSONNUMMER_OID}")
    return None


def make_personal_id(birth_date: date, serial: int, samordning: bool = False) -> str:
    """A valid 12-digit personnummer (or samordningsnummer) for generators and tests.

    ``serial`` is the three-digit birth number NNN (0–999; its last digit is odd for men, even
    for women).
    """
    if not 0 <= serial <= 999:
        raise ValueError("serial is the three-digit birth number, 0-999")
    day = birth_date.day + (SAMORDNING_DAY_OFFSET if samordning else 0)
    body = f"{birth_date:%Y%m}{day:02d}{serial:03d}"
    return body + str(luhn_check_digit(body[2:]))


def personal_id_root(extension: str) -> str:
    """The OID that belongs with a (well-formed) personal identity number."""
    return SAMORDNINGSNUMMER_OID if is_samordningsnummer(extension) else PERSONNUMMER_OID


# --- HSA-id --------------------------------------------------------------------------------

def check_hsa_id(value: str | None) -> str | None:
    """Why ``value`` is not an HSA-id, or None.

    Form: ``SE`` + organisation number (10 digits, or 12 with a century/16 prefix) + ``-`` +
    letters and digits, at most 31 characters; the organisation number's last digit is its
    Luhn check digit.
    """
    if not value:
        return "the HSA-id is empty"
    m = HSA_ID_PATTERN.fullmatch(value)
    if not m:
        return ("an HSA-id is SE, the organisation number (10 or 12 digits, no hyphen), "
                "a hyphen and letters or digits, e.g. SE2321000016-1A2B")
    if len(value) > HSA_ID_MAX_LENGTH:
        return f"an HSA-id has at most {HSA_ID_MAX_LENGTH} characters"
    org = m["org"][-10:]
    if luhn_check_digit(org[:9]) != int(org[9]):
        return f"organisation number {org[:6]}-{org[6:]} in the HSA-id has a wrong check digit"
    return None


def is_hsa_id(value: str | None) -> bool:
    return check_hsa_id(value) is None


def normalise_hsa_id(value: str) -> str:
    """The form to store and compare HSA-ids in (they are case-insensitive)."""
    return value.strip().upper()


def same_hsa_id(a: str | None, b: str | None) -> bool:
    """HSA-ids compare case-insensitively (``se2321000016-abc`` is ``SE2321000016-ABC``)."""
    if a is None or b is None:
        return False
    return normalise_hsa_id(a) == normalise_hsa_id(b)


# --- Counties, regions and municipalities --------------------------------------------------

@dataclass(frozen=True)
class County:
    code: str  # two-digit KV län code, also the region's logical address
    name: str  # "Kalmar län"
    region_name: str  # "Region Kalmar län"
    region_org_number: str  # "232100-0073"
    population: int  # approximate, end of 2024

    @property
    def hsa_prefix(self) -> str:
        """The start of the region's HSA-ids, e.g. ``SE2321000073``."""
        return "SE" + self.region_org_number.replace("-", "")


@dataclass(frozen=True)
class Municipality:
    code: str  # four digits; the first two are the county code
    name: str
    county_code: str
    latitude: float
    longitude: float


def _rows(name: str) -> list[dict[str, str]]:
    with (refdata.DIR / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@cache
def counties() -> dict[str, County]:
    """The 21 counties keyed by two-digit code, in code order."""
    return {
        r["county_code"]: County(
            r["county_code"], r["county_name"], r["region_name"], r["region_org_number"],
            int(r["population_approx"]),
        )
        for r in _rows("counties.csv")
    }


@cache
def municipalities() -> dict[str, Municipality]:
    """The 290 municipalities keyed by four-digit code."""
    return {
        r["municipality_code"]: Municipality(
            r["municipality_code"], r["municipality_name"], r["county_code"],
            float(r["latitude"]), float(r["longitude"]),
        )
        for r in _rows("municipalities.csv")
    }


def is_county_code(code: str | None) -> bool:
    """True for one of the 21 two-digit county codes ("01", "08", …; not "1" or "02")."""
    return code is not None and code in counties()


def county(code: str) -> County:
    """The county for a code (KeyError with the valid codes when unknown)."""
    try:
        return counties()[code]
    except KeyError:
        raise KeyError(f"unknown county code {code!r}; known: {', '.join(counties())}") from None


def region_hsa_prefix(code: str) -> str:
    """The HSA-id prefix of the region with county code ``code``, e.g. "SE2321000016" for 01."""
    return county(code).hsa_prefix


def county_of_hsa_id(hsa_id: str) -> str | None:
    """The county code of the region whose organisation number starts ``hsa_id``, if any."""
    upper = normalise_hsa_id(hsa_id)
    for c in counties().values():
        if upper.startswith(c.hsa_prefix + "-"):
            return c.code
    return None


def check_county(root: str | None, extension: str | None) -> str | None:
    """Why an IIType is not a county (KV län OID and one of the 21 codes), or None."""
    if root != COUNTY_OID:
        return f"root {root!r} is not the county (KV län) OID {COUNTY_OID}"
    if not extension:
        return "the county code (extension) is missing"
    if not is_county_code(extension):
        return (f"{extension!r} is not a county code; the codes are "
                f"{', '.join(counties())}")
    return None
