"""The conformance suite's test data: which persons and units the producer under test has.

Like RIV-TA's ``data.xml``, one TOML file per producer names what the suite may use and the
state it expects them in before the run (the suite changes that state: run it against a fresh
region, or give it fresh persons)::

    county = "08"                        # the producer's county code (its logical address)
    name = "Region Kalmar län"
    hsa_id = "SE2321000073-LIST"         # the region's HSA-id (actor of REGION reads)

    [rules]
    changes_per_12_months = 2            # the region's change limit

    [persons.resident]                   # a resident of the county, listed nowhere
    id = "196804222385"
    county = "08"
    [persons.other_resident]             # a resident of another county, not listed here
    id = "191212121212"
    county = "01"
    [persons.child]                      # a child below the region's age to act alone
    id = "201906152416"
    county = "01"
    [persons.unlisted]                   # a person the suite never lists (may be the child)
    id = "201906152416"
    county = "01"

    [units]
    with_room = ["SE2321000073-01HC", "SE2321000073-03HC"]   # two units with room (PV)

    [cap]                                # a unit that is, or the suite brings, at its cap
    unit = "SE2321000073-02HC"
    queues = true                        # does it queue at its cap (addToQueue=true)?
    fill = [{id = "198609033827", county = "01"}, {id = "199103643863", county = "01"}]

    [staff]                              # optional: a unit with fixed doctor contact
    unit = "SE2321000016-01VC"
    personnel = ["SE2321000016-L001"]

    [guardian_consent]                   # optional, where both guardians must consent:
    child = {id = "201801012384", county = "01"}   # a child of the county with two guardians
    guardians = ["198001019802", "198202022386"]

    [listing_types]                      # optional: regional types not offered to others
    not_shared = [{code = "HLM", code_system = "1.2.752.129.2.2.1.18.01.27"}]

``region_testdata(config)`` builds one for a region from its configuration and the population's
test persons; ``write_region_testdata(config, path)`` writes it. The test persons are few and
shared by every region, so in a pilot ``write_pilot_testdata(configs, population_db, out_dir)``
is better: it gives each region its own unused persons from the generated population, so that
one region's run does not use up the persons of another's. ``load_testdata(path)`` reads and
checks one (``TestDataError`` lists every problem).
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import tomli_w

from interactions import identifiers as ids

log = logging.getLogger(__name__)


class TestDataError(ValueError):
    """A test-data file the suite cannot use (``problems``: one line each)."""

    __test__ = False

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True)
class TestPerson:
    id: str
    county: str

    __test__ = False

    @property
    def root(self) -> str:
        return ids.personal_id_root(self.id)


@dataclass(frozen=True)
class CapUnit:
    unit: str
    queues: bool
    fill: tuple[TestPerson, ...] = ()


@dataclass(frozen=True)
class StaffUnit:
    unit: str
    personnel: tuple[str, ...]


@dataclass(frozen=True)
class ConsentFamily:
    child: TestPerson
    guardians: tuple[str, str]


@dataclass(frozen=True)
class TestData:
    county: str
    name: str = ""
    hsa_id: str = ""
    changes_per_12_months: int = 2
    resident: TestPerson | None = None
    other_resident: TestPerson | None = None
    unlisted: TestPerson | None = None
    child: TestPerson | None = None
    with_room: tuple[str, ...] = ()
    cap: CapUnit | None = None
    staff: StaffUnit | None = None
    not_shared_types: tuple[tuple[str, str], ...] = ()
    guardian_consent: ConsentFamily | None = None
    source: str = "<memory>"

    __test__ = False

    def persons(self) -> list[TestPerson]:
        found = [p for p in (self.resident, self.other_resident, self.child, self.unlisted) if p]
        if self.cap:
            found += self.cap.fill
        family = self.guardian_consent
        if family:
            found.append(family.child)
            found += [TestPerson(g, family.child.county) for g in family.guardians]
        return list(dict.fromkeys(found))  # the child may also be the unlisted person

    def all_units(self) -> list[str]:
        units = list(self.with_room)
        if self.cap:
            units.append(self.cap.unit)
        if self.staff:
            units.append(self.staff.unit)
        return units


# --- reading -----------------------------------------------------------------------------------

def _person(p: list[str], where: str, value: Any) -> TestPerson | None:
    if not isinstance(value, dict):
        p.append(f"{where}: expected a table with id and county")
        return None
    pid, county = value.get("id"), value.get("county")
    if not isinstance(pid, str) or (why := ids.check_personal_id(pid)):
        p.append(f"{where}.id: {why if isinstance(pid, str) else 'missing or not a string'}")
        return None
    if not isinstance(county, str) or not ids.is_county_code(county):
        p.append(f"{where}.county: {county!r} is not a two-digit county code")
        return None
    return TestPerson(pid, county)


def _hsa(p: list[str], where: str, value: Any) -> str | None:
    if not isinstance(value, str) or (why := ids.check_hsa_id(value)):
        p.append(f"{where}: {why if isinstance(value, str) else 'missing or not a string'}")
        return None
    return value


def parse_testdata(data: dict[str, Any], source: str = "<memory>") -> TestData:
    p: list[str] = []
    county = data.get("county")
    if not isinstance(county, str) or not ids.is_county_code(county):
        p.append(f"county: {county!r} is not a two-digit county code")
        county = "00"
    rules = data.get("rules", {})
    limit = rules.get("changes_per_12_months", 2) if isinstance(rules, dict) else 2
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        p.append("rules.changes_per_12_months: expected a whole number >= 0")
        limit = 2
    persons = data.get("persons", {})
    if not isinstance(persons, dict):
        p.append("persons: expected a table")
        persons = {}
    roles: dict[str, TestPerson | None] = {}
    for role in ("resident", "other_resident", "child", "unlisted"):
        roles[role] = _person(p, f"persons.{role}", persons[role]) if role in persons else None
    for role in sorted(set(persons) - set(roles)):
        p.append(f"persons.{role}: unknown role (resident, other_resident, child, unlisted)")
    r = roles["resident"]
    if r is not None and r.county != county:
        p.append(f"persons.resident.county: {r.county} is not the producer's county {county}")
    o = roles["other_resident"]
    if o is not None and o.county == county:
        p.append(f"persons.other_resident.county: must be another county than {county}")
    units = data.get("units", {})
    with_room: list[str] = []
    for i, u in enumerate(units.get("with_room", []) if isinstance(units, dict) else []):
        h = _hsa(p, f"units.with_room[{i}]", u)
        if h:
            with_room.append(h)
    if len(with_room) < 2:
        p.append("units.with_room: name at least two units with room for new listings")
    cap = None
    if "cap" in data:
        c = data["cap"]
        unit = _hsa(p, "cap.unit", c.get("unit")) if isinstance(c, dict) else None
        queues = c.get("queues") if isinstance(c, dict) else None
        if not isinstance(queues, bool):
            p.append("cap.queues: expected true or false")
        fill = [_person(p, f"cap.fill[{i}]", f) for i, f in
                enumerate(c.get("fill", []) if isinstance(c, dict) else [])]
        if unit and isinstance(queues, bool):
            cap = CapUnit(unit, queues, tuple(f for f in fill if f))
    staff = None
    if "staff" in data:
        s = data["staff"] if isinstance(data["staff"], dict) else {}
        unit = _hsa(p, "staff.unit", s.get("unit"))
        personnel = [_hsa(p, f"staff.personnel[{i}]", x)
                     for i, x in enumerate(s.get("personnel", []))]
        if not personnel:
            p.append("staff.personnel: name at least one HSA-id")
        if unit and personnel and all(personnel):
            staff = StaffUnit(unit, tuple(x for x in personnel if x))
    not_shared: list[tuple[str, str]] = []
    lt = data.get("listing_types", {})
    for i, t in enumerate(lt.get("not_shared", []) if isinstance(lt, dict) else []):
        if isinstance(t, dict) and isinstance(t.get("code"), str) \
                and isinstance(t.get("code_system"), str):
            not_shared.append((t["code"], t["code_system"]))
        else:
            p.append(f"listing_types.not_shared[{i}]: expected {{code, code_system}}")
    consent = None
    if "guardian_consent" in data:
        g = data["guardian_consent"] if isinstance(data["guardian_consent"], dict) else {}
        child = _person(p, "guardian_consent.child", g.get("child"))
        guardians = g.get("guardians")
        if not isinstance(guardians, list) or len(guardians) != 2 or any(
                not isinstance(x, str) or ids.check_personal_id(x) for x in guardians):
            p.append("guardian_consent.guardians: expected two valid personal identity numbers")
        elif child:
            consent = ConsentFamily(child, (guardians[0], guardians[1]))
    known = {"county", "name", "hsa_id", "rules", "persons", "units", "cap", "staff",
             "listing_types", "guardian_consent"}
    for key in sorted(set(data) - known):
        p.append(f"{key}: unknown key")
    hsa_id = data.get("hsa_id", "")
    if hsa_id and (why := ids.check_hsa_id(str(hsa_id))):
        p.append(f"hsa_id: {why}")
    if p:
        raise TestDataError(source, p)
    return TestData(county, str(data.get("name", "")), str(hsa_id), limit, roles["resident"],
                    roles["other_resident"], roles["unlisted"], roles["child"],
                    tuple(with_room), cap, staff,
                    tuple(not_shared), consent, source)


def load_testdata(path: str | Path) -> TestData:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TestDataError(str(p), [f"cannot read the file: {exc.strerror}"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TestDataError(str(p), [f"not valid TOML: {exc}"]) from None
    return parse_testdata(data, str(p))


# --- writing, for a region of this project -------------------------------------------------------

@dataclass
class _Pool:
    persons: list[Any]
    used: set[str] = field(default_factory=set)

    def take(self, pred: Any) -> Any | None:
        for person in self.persons:
            if person.person_id not in self.used and pred(person):
                self.used.add(person.person_id)
                return person
        return None


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def region_testdata(config: Any, persons: Iterable[Any] | None = None,
                    today: date | None = None,
                    family: tuple[Any, list[str]] | None = None) -> dict[str, Any]:
    """Test data (as a TOML tree) for a region of this project, from its configuration
    (``producers.config.RegionConfig`` or a path to its TOML) and the population's test persons
    (``producers.population.test_persons.TEST_PERSONS``, or any objects with ``person_id``,
    ``county`` and ``birth_date``). ``family`` (a child of the county and its two guardians'
    ids) is used where the region wants both guardians' consent. Roles the persons cannot fill
    are left out; the suite then skips the cases that need them."""
    from producers.config import RegionConfig, load_config

    cfg: RegionConfig = config if isinstance(config, RegionConfig) else load_config(config)
    if persons is None:
        from producers.population.test_persons import TEST_PERSONS

        persons = TEST_PERSONS
    today = today or date.today()
    adult_age = max(18, cfg.rules.citizen_may_act_from_age)
    pool = _Pool(list(persons))

    def adult(p: Any) -> bool:
        return _age(p.birth_date, today) >= adult_age

    out: dict[str, Any] = {"county": cfg.county, "name": cfg.name, "hsa_id": cfg.hsa_id,
                           "rules": {"changes_per_12_months": cfg.rules.changes_per_12_months},
                           "persons": {}}
    resident = pool.take(lambda p: adult(p) and p.county == cfg.county)
    other = pool.take(lambda p: adult(p) and p.county != cfg.county)
    child = pool.take(lambda p: _age(p.birth_date, today) < cfg.rules.citizen_may_act_from_age)
    for role, found in (("resident", resident), ("other_resident", other), ("child", child)):
        if found is not None:
            out["persons"][role] = {"id": found.person_id, "county": found.county}

    pv_units = [u for u in cfg.units if ids.LISTING_TYPE_PV in u.listing_types]
    cap_unit = min(pv_units, key=lambda u: u.cap) if pv_units else None
    roomy = sorted((u for u in pv_units if u is not cap_unit and u.cap >= 50),
                   key=lambda u: -u.cap)
    out["units"] = {"with_room": [u.hsa_id for u in roomy[:2]]}
    if cap_unit is not None and cap_unit.cap <= 10:
        fill = []
        for _ in range(cap_unit.cap):
            found = pool.take(adult)
            if found is None:
                break
            fill.append({"id": found.person_id, "county": found.county})
        if len(fill) == cap_unit.cap:
            out["cap"] = {"unit": cap_unit.hsa_id,
                          "queues": cap_unit.queue_allowed and cfg.rules.queue_at_cap,
                          "fill": fill}
    unlisted = pool.take(lambda p: True) or child
    if unlisted is not None:
        out["persons"]["unlisted"] = {"id": unlisted.person_id, "county": unlisted.county}
    staffed = next((u for u in cfg.units if u.staff and u is not cap_unit), None)
    if staffed is not None:
        out["staff"] = {"unit": staffed.hsa_id, "personnel": [s.hsa_id for s in staffed.staff]}
    if family is not None and cfg.rules.both_guardians_must_consent:
        kid, guardians = family
        out["guardian_consent"] = {"child": {"id": kid.person_id, "county": kid.county},
                                   "guardians": list(guardians)}
    not_shared = [{"code": t.code, "code_system": t.code_system}
                  for t in cfg.listing_types if not t.shared]
    if not_shared:
        out["listing_types"] = {"not_shared": not_shared}
    return out


def write_region_testdata(config: Any, path: str | Path,
                          persons: Iterable[Any] | None = None,
                          family: tuple[Any, list[str]] | None = None) -> Path:
    """Write ``region_testdata(config, persons, family=family)`` to ``path`` (TOML)."""
    tree = region_testdata(config, persons, family=family)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Conformance test data for {tree['name']} (county {tree['county']}), written "
              "by consumers.conformance.testdata.\n# The suite lists these persons: run it "
              "against a fresh region database.\n")
    p.write_text(header + tomli_w.dumps(tree), encoding="utf-8")
    parse_testdata(tree, str(p))  # what we write must read back
    return p


# --- fresh persons from a generated population -----------------------------------------------

def population_persons(db_url: str, county: str, other_county: str,
                       used: set[str] | None = None) -> list[Any]:
    """Persons for one region's test data from the population register's database: one adult
    resident of ``county``, four adults of ``other_county`` and one child, none in ``used``
    (which is updated). Raises LookupError when the population has too few."""
    from sqlalchemy import select

    from producers.population.model import PersonRow
    from producers.population.register import PopulationRegister

    used = used if used is not None else set()
    today = date.today()
    reg = PopulationRegister(db_url)
    try:
        with reg.engine.connect() as conn:
            def pick(where_county: str, n: int, adult: bool) -> list[Any]:
                cutoff = today.replace(year=today.year - (20 if adult else 10))
                age_rule = PersonRow.birth_date < cutoff if adult else \
                    PersonRow.birth_date > cutoff
                rows = conn.execute(select(PersonRow).where(
                    PersonRow.county == where_county, age_rule,
                    PersonRow.deceased_on.is_(None), PersonRow.emigrated_on.is_(None),
                    PersonRow.person_id.not_in(used)).order_by(PersonRow.person_id)
                    .limit(n)).all()
                if len(rows) < n:
                    raise LookupError(f"the population has fewer than {n} unused "
                                      f"{'adults' if adult else 'children'} in county "
                                      f"{where_county}")
                used.update(r.person_id for r in rows)
                return list(rows)

            return [*pick(county, 1, True), *pick(other_county, 4, True),
                    *pick(other_county, 1, False)]
    finally:
        reg.close()


def population_family(db_url: str, county: str,
                      used: set[str] | None = None) -> tuple[Any, list[str]] | None:
    """A child under 10 resident in ``county`` with exactly two guardians, none of them in
    ``used`` (which is updated): (child row, [guardian ids]), or None."""
    from sqlalchemy import func, select

    from producers.population.model import GuardianshipRow, PersonRow
    from producers.population.register import PopulationRegister

    used = used if used is not None else set()
    today = date.today()
    reg = PopulationRegister(db_url)
    try:
        with reg.engine.connect() as conn:
            q = (select(GuardianshipRow.child_id)
                 .join(PersonRow, PersonRow.person_id == GuardianshipRow.child_id)
                 .where(PersonRow.county == county,
                        PersonRow.birth_date > today.replace(year=today.year - 10),
                        PersonRow.deceased_on.is_(None), PersonRow.emigrated_on.is_(None))
                 .group_by(GuardianshipRow.child_id).having(func.count() == 2)
                 .order_by(GuardianshipRow.child_id))
            for child_id in conn.execute(q).scalars().all():
                guardians = [g.person_id for g in reg.guardians_of(child_id)]
                if child_id in used or used & set(guardians):
                    continue
                used.update([child_id, *guardians])
                return _person_row(conn, child_id), guardians
    finally:
        reg.close()
    return None


def _person_row(conn: Any, pid: str) -> Any:
    from sqlalchemy import select

    from producers.population.model import PersonRow

    return conn.execute(select(PersonRow).where(PersonRow.person_id == pid)).first()


def write_pilot_testdata(configs: dict[str, str | Path], population_db_url: str,
                         out_dir: str | Path) -> dict[str, Path]:
    """``testdata-NN.toml`` in ``out_dir`` for each region (county → its TOML configuration),
    with persons no other region's test data uses — nor any earlier file in ``out_dir``, so
    calling it again gives fresh persons for a new run. Returns county → path."""
    from producers.config import load_config

    used: set[str] = set()
    for earlier in Path(out_dir).glob("testdata-*.toml"):  # never hand out a person twice
        try:
            used.update(p.id for p in load_testdata(earlier).persons())
        except TestDataError:
            log.warning("%s cannot be read; its persons may be handed out again", earlier)
    written: dict[str, Path] = {}
    counties = sorted(configs)
    for county in counties:
        cfg = load_config(configs[county])
        other = next((c for c in counties if c != county), "01" if county != "01" else "08")
        try:
            persons = population_persons(population_db_url, county, other, used)
        except LookupError as exc:  # a tiny population: the shared test persons it is
            log.warning("region %s: %s; using the test persons", county, exc)
            persons = None
        family = population_family(population_db_url, county, used) \
            if cfg.rules.both_guardians_must_consent else None
        written[county] = write_region_testdata(cfg, Path(out_dir) / f"testdata-{county}.toml",
                                                persons, family)
    return written
