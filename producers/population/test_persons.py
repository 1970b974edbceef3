"""The fixed test persons every generated population holds, for the README, the e-service's
login page and the tests. Their numbers are valid (Luhn) and never drawn by the generator."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class TestPerson:
    person_id: str
    first_name: str
    last_name: str
    sex: str
    birth_date: date
    county: str
    municipality: str
    description: str  # what the person is good for, in a sentence
    guardians: tuple[str, ...] = field(default=())

    __test__ = False  # not a pytest test class


TOLVAN = TestPerson(
    "191212121212", "Tolvan", "Tolvansson", "M", date(1912, 12, 12), "01", "0180",
    "Skatteverket's classic test person: an adult resident of Stockholm (01).")
KALMAR_RESIDENT = TestPerson(
    "196804222385", "Karin", "Nilsson", "F", date(1968, 4, 22), "08", "0880",
    "An adult resident of Kalmar län (08): lists across the regions from the other side.")
GUARDIAN = TestPerson(
    "198609033827", "Sara", "Lindberg", "F", date(1986, 9, 3), "01", "0180",
    "An adult in Stockholm (01), guardian of Nils.")
CHILD = TestPerson(
    "201906152416", "Nils", "Lindberg", "M", date(2019, 6, 15), "01", "0180",
    "A child under 13 in Stockholm (01), listed by his guardian Sara.",
    guardians=(GUARDIAN.person_id,))
SAMORDNING = TestPerson(
    "199103643863", "Maria", "Costa", "F", date(1991, 3, 4), "01", "0180",
    "A resident with a samordningsnummer (day 64 = 4 + 60) in Stockholm (01).")

# Guardians before their children: the order rows are written in.
TEST_PERSONS: tuple[TestPerson, ...] = (TOLVAN, KALMAR_RESIDENT, GUARDIAN, CHILD, SAMORDNING)
