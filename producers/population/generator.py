"""A synthetic Swedish population: deterministic for a seed (and reference date).

Realistic enough for the pilot and load tests: home counties in proportion to the counties'
populations (counties.csv), spread over each county's municipalities, an age pyramid close to
Sweden's, valid personnummer (about 1 % samordningsnummer), names by sex and generation, and
one or two guardians in the same county for every child. Persons are produced in batches so
that ten million of them never sit in memory at once.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from itertools import accumulate

from interactions.identifiers import SAMORDNING_DAY_OFFSET, municipalities
from interactions.identifiers import counties as all_counties
from producers.population.names import LAST_NAMES, first_names
from producers.population.test_persons import TEST_PERSONS

ADULT_AGE = 18
SAMORDNING_SHARE = 0.01
TWO_GUARDIANS_SHARE = 0.75

# Share of the population per five-year age band 0–4 … 95–99 (Statistics Sweden, about 2024).
AGE_BANDS = (5.4, 5.9, 6.1, 5.9, 5.8, 6.5, 7.0, 6.6, 6.3, 6.3, 6.4, 6.4, 5.8, 5.4, 5.2, 4.6,
             3.1, 1.7, 0.7, 0.2)

# Municipality codes ending in 80 are the county seat's (0180 Stockholm, 0880 Kalmar), 81–89
# the other large towns; there is no population per municipality in the reference data, so
# these weights stand in for it.
SEAT_WEIGHT, TOWN_WEIGHT, OTHER_WEIGHT = 6, 2, 1


@dataclass
class Batch:
    """Rows ready for the database: persons as column dicts, guardianships (child, guardian)."""

    persons: list[dict[str, object]] = field(default_factory=list)
    guardianships: list[tuple[str, str]] = field(default_factory=list)


def _municipality_weight(code: str) -> int:
    tail = int(code[2:])
    if tail == 80:
        return SEAT_WEIGHT
    return TOWN_WEIGHT if 81 <= tail <= 89 else OTHER_WEIGHT


class _SerialAllocator:
    """Unique birth numbers per birth date, sex and kind, scattered over 0–999 (not 001, 002
    …) by a fixed permutation, with the test persons' numbers reserved."""

    PER_SEX = 500  # serials whose last digit has the right parity

    def __init__(self, reserved: Iterable[str]) -> None:
        self.used: dict[tuple[date, bool, str], int] = {}
        self.reserved = set(reserved)

    def allocate(self, born: date, sex: str, samordning: bool) -> str:
        day = born
        while True:
            key = (day, samordning, sex)
            k = self.used.get(key, 0)
            while k < self.PER_SEX:
                j = (263 * k + day.toordinal()) % self.PER_SEX  # 263 is coprime to 500
                serial = 2 * j + (1 if sex == "M" else 0)  # odd for men, even for women
                k += 1
                pid = _personal_id(day, serial, samordning)
                if pid not in self.reserved:
                    self.used[key] = k
                    return pid
            self.used[key] = k
            day -= timedelta(days=1)  # this date is full: the day before


# The Luhn sum of a personnummer body splits into the date's six digits and the serial's
# three: both parts are cached, so ten million ids cost a lookup and an addition each
# (``make_personal_id`` gives the same ids; tests/region/test_population_bulk.py checks it).
def _luhn_part(digits: str, first_weight: int) -> int:
    total = 0
    for i, ch in enumerate(digits):
        product = int(ch) * (first_weight if i % 2 == 0 else 3 - first_weight)
        total += product - 9 if product > 9 else product
    return total


_SERIAL_LUHN = tuple(_luhn_part(f"{s:03d}", 2) for s in range(1000))


@cache
def _date_part(day: date, samordning: bool) -> tuple[str, int]:
    """``YYYYMMDD`` (day + 60 for a samordningsnummer) and the Luhn sum of its last six."""
    d = day.day + (SAMORDNING_DAY_OFFSET if samordning else 0)
    text = f"{day:%Y%m}{d:02d}"
    return text, _luhn_part(text[2:], 2)


def _personal_id(day: date, serial: int, samordning: bool) -> str:
    text, part = _date_part(day, samordning)
    return f"{text}{serial:03d}{(10 - (part + _SERIAL_LUHN[serial]) % 10) % 10}"


def _test_batch() -> Batch:
    batch = Batch()
    munis = municipalities()
    for tp in TEST_PERSONS:
        m = munis[tp.municipality]
        batch.persons.append(dict(
            person_id=tp.person_id, first_name=tp.first_name, last_name=tp.last_name,
            sex=tp.sex, birth_date=tp.birth_date, county=tp.county, municipality=tp.municipality,
            latitude=m.latitude, longitude=m.longitude, deceased_on=None, emigrated_on=None))
        batch.guardianships.extend((tp.person_id, g) for g in tp.guardians)
    return batch


def generate_population(
    n: int,
    seed: int,
    counties: Iterable[str] | None = None,
    *,
    as_of: date | None = None,
    batch_size: int = 50_000,
) -> Iterator[Batch]:
    """``n`` synthetic persons (plus the test persons, first) living in ``counties`` (all 21
    when None), ages counted at ``as_of`` (today). The same arguments give the same people."""
    if n < 0:
        raise ValueError("n must not be negative")
    as_of = as_of or date.today()
    known = all_counties()
    codes = list(counties) if counties is not None else list(known)
    unknown = [c for c in codes if c not in known]
    if unknown or not codes:
        raise ValueError(f"unknown county codes {unknown}; known: {', '.join(known)}")
    rng = random.Random(seed)  # noqa: S311 -- synthetic data, reproducible by design
    # Cumulative weights, once: rng.choices() would rebuild them for every person.
    county_cum = list(accumulate(known[c].population for c in codes))
    munis_by_county = {c: [m for m in municipalities().values() if m.county_code == c]
                       for c in codes}
    muni_cum = {c: list(accumulate(_municipality_weight(m.code) for m in ms))
                for c, ms in munis_by_county.items()}
    band_cum = list(accumulate(AGE_BANDS))
    allocator = _SerialAllocator(tp.person_id for tp in TEST_PERSONS)

    test_batch = _test_batch()
    yield test_batch
    # Guardians of last resort, for a batch with no adult at all (only when n is tiny).
    spare_adults = [p for p in test_batch.persons
                    if ADULT_AGE <= _age(p["birth_date"], as_of) <= 70]  # type: ignore[arg-type]
    done = 0
    while done < n:
        size = min(batch_size, n - done)
        persons: list[dict[str, object]] = []
        for _ in range(size):
            band = _pick(band_cum, rng)
            age_days = int((band * 5 + rng.random() * 5) * 365.25)
            born = as_of - timedelta(days=age_days)
            sex = "F" if rng.random() < 0.5 else "M"
            pid = allocator.allocate(born, sex, rng.random() < SAMORDNING_SHARE)
            county = codes[_pick(county_cum, rng)]
            muni = munis_by_county[county][_pick(muni_cum[county], rng)]
            persons.append(dict(
                person_id=pid, first_name=rng.choice(first_names(born.year, sex)),
                last_name=rng.choice(LAST_NAMES), sex=sex, birth_date=born, county=county,
                municipality=muni.code,
                latitude=round(muni.latitude + rng.gauss(0, 0.04), 5),
                longitude=round(muni.longitude + rng.gauss(0, 0.07), 5),
                deceased_on=None, emigrated_on=None))
        yield Batch(persons, _assign_guardians(persons, rng, as_of, spare_adults))
        done += size


def _pick(cumulative: list[float], rng: random.Random) -> int:
    """An index drawn with the weights whose running sums are ``cumulative``."""
    return bisect(cumulative, rng.random() * cumulative[-1])


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _assign_guardians(persons: list[dict[str, object]], rng: random.Random, as_of: date,
                      spare_adults: list[dict[str, object]]) -> list[tuple[str, str]]:
    """One or two adults of the child's county for every child of the batch, by preference
    18–50 years older. A child in a county with no adult in the batch (only with tiny
    batches) moves to a guardian's home instead: a child never has a guardian elsewhere."""
    adults: dict[str, list[dict[str, object]]] = {}
    for p in persons:
        if _age(p["birth_date"], as_of) >= ADULT_AGE:  # type: ignore[arg-type]
            adults.setdefault(p["county"], []).append(p)  # type: ignore[arg-type]
    pairs: list[tuple[str, str]] = []
    if not adults:
        for p in spare_adults:
            adults.setdefault(p["county"], []).append(p)  # type: ignore[arg-type]
    for child in persons:
        born: date = child["birth_date"]  # type: ignore[assignment]
        if _age(born, as_of) >= ADULT_AGE:
            continue
        pool = adults.get(child["county"])  # type: ignore[arg-type]
        if not pool:
            host = rng.choice(rng.choice(list(adults.values())))
            child.update(county=host["county"], municipality=host["municipality"],
                         latitude=host["latitude"], longitude=host["longitude"])
            pool = adults[host["county"]]  # type: ignore[index]
        wanted = 1 if rng.random() > TWO_GUARDIANS_SHARE else 2
        chosen: list[dict[str, object]] = []
        for _ in range(30):
            if len(chosen) == wanted:
                break
            cand = rng.choice(pool)
            gap = born.year - cand["birth_date"].year  # type: ignore[attr-defined]
            if 18 <= gap <= 50 and cand not in chosen:
                chosen.append(cand)
        if not chosen:
            chosen.append(rng.choice(pool))
        child["last_name"] = chosen[0]["last_name"]
        pairs.extend((child["person_id"], g["person_id"]) for g in chosen)  # type: ignore[misc]
    return pairs
