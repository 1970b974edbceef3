"""The simulated population register: persons, guardianships and the change feed.

Every change (``record_move``, ``record_birth``, ``record_death``, ``record_emigration``)
updates the person and appends to the feed in one transaction, so a reader of the feed never
sees a change the person table does not reflect, nor the reverse. SQLite by default (one
file), PostgreSQL by URL.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import AddConstraint, CreateIndex

from interactions.identifiers import (
    check_personal_id,
    is_county_code,
    make_personal_id,
    municipalities,
)
from listning.runtime import engine_url
from producers.population.generator import Batch, generate_population
from producers.population.model import (
    Base,
    Change,
    ChangeRow,
    GuardianshipRow,
    Person,
    PersonRow,
)
from producers.population.names import LAST_NAMES, first_names
from producers.population.test_persons import TEST_PERSONS

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (persons written, persons to write)
FEED_LOCK_KEY = 0x6C697374  # "list": the advisory lock that orders feed writers on PostgreSQL
MAX_PAGE = 10_000


class RegisterError(ValueError):
    """A change the register refuses (unknown person, wrong county, already deceased, …)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # the API server reads while the CLI writes
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(db_url: str, *, writer: bool = False) -> Engine:
    """An engine; ``writer=True`` on SQLite makes every transaction ``BEGIN IMMEDIATE``, so a
    change reads the person and appends to the feed holding the write lock from the start
    (pysqlite would begin only at the first UPDATE, after the read)."""
    url = engine_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        # One in-memory database is one connection: share it (the API serves from threads).
        engine = create_engine(url, poolclass=StaticPool,
                               connect_args={"check_same_thread": False})
    else:
        engine = create_engine(url, hide_parameters=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        if writer:
            def no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.isolation_level = None

            def begin_immediate(conn: Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

            event.listen(engine, "connect", no_implicit_begin)
            event.listen(engine, "begin", begin_immediate)
    return engine


class PopulationRegister:
    """The register at ``db_url`` (tables made when missing)."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.engine = make_engine(db_url)
        if self.engine.pool.__class__ is StaticPool:
            self._writer = self.engine  # in-memory: there is only the one connection
        else:
            self._writer = make_engine(db_url, writer=True)  # for the changes (record_*)
        Base.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()
        self._writer.dispose()

    # --- generation -------------------------------------------------------------------

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(PersonRow)) or 0

    def generate(self, n: int, seed: int, counties: Iterable[str] | None = None,
                 progress: Progress | None = None, *, as_of: date | None = None,
                 batch_size: int = 50_000) -> int:
        """Fill an empty register with ``n`` synthetic persons plus the test persons;
        returns how many persons were written. Refuses a register that has persons."""
        existing = self.count()
        if existing:
            raise RegisterError(f"the register already holds {existing} persons; "
                                "generate into an empty database (or use --replace)")
        total = n + len(TEST_PERSONS)
        written = 0
        batches = generate_population(n, seed, counties, as_of=as_of, batch_size=batch_size)
        with self.engine.begin() as conn:
            # On PostgreSQL, an empty register gets its keys, indexes and foreign keys built
            # once at the end instead of row by row (same transaction: all or nothing).
            deferred = _drop_constraints(conn) if conn.dialect.name == "postgresql" else []
            for batch in batches:
                _write_batch(conn, batch)
                written += len(batch.persons)
                if progress:
                    progress(written, total)
            _restore_constraints(conn, deferred)
        log.info("generated %d persons (seed %d)", written, seed)
        return written

    def drop_all(self) -> None:
        """Empty the register: drop and remake every table (``generate --replace``)."""
        Base.metadata.drop_all(self.engine)
        Base.metadata.create_all(self.engine)

    # --- reading ----------------------------------------------------------------------

    def person(self, pid: str) -> Person | None:
        with self.engine.connect() as conn:
            row = conn.execute(_PERSON, {"pid": pid}).first()
        return _person(row) if row else None

    def guardians_of(self, pid: str) -> list[Person]:
        q = (select(PersonRow).join(GuardianshipRow,
                                    GuardianshipRow.guardian_id == PersonRow.person_id)
             .where(GuardianshipRow.child_id == pid).order_by(PersonRow.person_id))
        with self.engine.connect() as conn:
            return [_person(r) for r in conn.execute(q)]

    def children_of(self, pid: str) -> list[Person]:
        q = (select(PersonRow).join(GuardianshipRow,
                                    GuardianshipRow.child_id == PersonRow.person_id)
             .where(GuardianshipRow.guardian_id == pid).order_by(PersonRow.person_id))
        with self.engine.connect() as conn:
            return [_person(r) for r in conn.execute(q)]

    def home_county(self, pid: str) -> str | None:
        """The county the person is registered in; None when unknown, deceased or emigrated."""
        p = self.person(pid)
        return p.home_county if p else None

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        """Feed entries with a sequence number above ``seq``, oldest first, at most ``limit``."""
        if limit < 1 or limit > MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        q = select(ChangeRow).where(ChangeRow.seq > seq).order_by(ChangeRow.seq).limit(limit)
        with self.engine.connect() as conn:
            return [Change.from_row(r) for r in conn.execute(q)]

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.max(ChangeRow.seq))) or 0

    # --- changes ----------------------------------------------------------------------

    def record_move(self, pid: str, to_county: str, municipality: str | None = None,
                    on: date | None = None) -> Change:
        """Move a resident to another county (to ``municipality``, or one of the county's
        chosen from the person id, so the same move lands in the same place)."""
        if not is_county_code(to_county):
            raise RegisterError(f"{to_county!r} is not a county code")
        munis = municipalities()
        rng = random.Random(pid + to_county)  # noqa: S311 -- the same move, the same place
        if municipality is None:
            options = sorted(m for m, v in munis.items() if v.county_code == to_county)
            municipality = rng.choice(options)
        elif municipality not in munis or munis[municipality].county_code != to_county:
            raise RegisterError(f"municipality {municipality!r} is not in county {to_county}")
        m = munis[municipality]
        with self._writer.begin() as conn:
            person = self._resident_for_update(conn, pid)
            if person.county == to_county:
                raise RegisterError(f"the person already lives in county {to_county}; a move "
                                    "in the feed is between counties")
            conn.execute(update(PersonRow).where(PersonRow.person_id == pid).values(
                county=to_county, municipality=municipality,
                latitude=round(m.latitude + rng.gauss(0, 0.04), 5),
                longitude=round(m.longitude + rng.gauss(0, 0.07), 5)))
            return _append(conn, "move", pid, person.county, to_county, municipality, on)

    def record_birth(self, guardians: list[str], *, sex: str | None = None,
                     first_name: str | None = None, last_name: str | None = None,
                     born: date | None = None, seed: int | None = None) -> Person:
        """A newborn in the home of ``guardians`` (one or two residents of the same county);
        returns the new person (a fresh, valid personnummer)."""
        if not 1 <= len(guardians) <= 2:
            raise RegisterError("a child has one or two guardians")
        born = born or date.today()
        rng = random.Random(seed)  # noqa: S311 -- synthetic data
        sex = sex or rng.choice("FM")
        if sex not in ("F", "M"):
            raise RegisterError("sex is F or M")
        with self._writer.begin() as conn:
            parents = [self._resident_for_update(conn, g) for g in guardians]
            if len({p.county for p in parents}) != 1:
                raise RegisterError("a newborn's guardians live in the same county")
            home = parents[0]
            taken = set(conn.execute(select(PersonRow.person_id).where(
                PersonRow.birth_date == born)).scalars())
            serials = list(range(0 if sex == "F" else 1, 1000, 2))  # even F, odd M
            rng.shuffle(serials)
            pid = next((x for x in (make_personal_id(born, s) for s in serials)
                        if x not in taken), None)
            if pid is None:
                raise RegisterError(f"no birth numbers left for {born}")
            row = dict(person_id=pid, first_name=first_name or rng.choice(
                           first_names(born.year, sex)),
                       last_name=last_name or home.last_name or rng.choice(LAST_NAMES),
                       sex=sex, birth_date=born, county=home.county,
                       municipality=home.municipality, latitude=home.latitude,
                       longitude=home.longitude, deceased_on=None, emigrated_on=None)
            conn.execute(insert(PersonRow), [row])
            conn.execute(insert(GuardianshipRow),
                         [{"child_id": pid, "guardian_id": g.person_id} for g in parents])
            _append(conn, "birth", pid, None, home.county, home.municipality, born)
        return Person(**row)  # type: ignore[arg-type]

    def record_death(self, pid: str, on: date | None = None) -> Change:
        return self._leave(pid, "death", "deceased_on", on)

    def record_emigration(self, pid: str, on: date | None = None) -> Change:
        return self._leave(pid, "emigration", "emigrated_on", on)

    def _leave(self, pid: str, kind: str, column: str, on: date | None) -> Change:
        on = on or date.today()
        with self._writer.begin() as conn:
            person = self._resident_for_update(conn, pid)
            conn.execute(update(PersonRow).where(PersonRow.person_id == pid)
                         .values({column: on}))
            return _append(conn, kind, pid, person.county, None, None, on)

    def _resident_for_update(self, conn: Connection, pid: str) -> Person:
        if conn.dialect.name == "postgresql":
            # One feed writer at a time, so that sequence numbers commit in order and a reader
            # paging with ?since=N can never skip a change that commits late.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": FEED_LOCK_KEY})
        q = select(PersonRow).where(PersonRow.person_id == pid)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is None:
            reason = check_personal_id(pid)
            raise RegisterError(reason or "no person with that number in the register")
        person = _person(row)
        if person.status != "resident":
            raise RegisterError(f"the person is {person.status}; no further changes")
        return person


def _person(row: Any) -> Person:
    return Person.from_row(row)  # a Core row: columns by name, like the mapped class


def _append(conn: Connection, kind: str, pid: str, from_county: str | None,
            to_county: str | None, municipality: str | None, on: date | None) -> Change:
    on = on or date.today()
    seq = conn.execute(insert(ChangeRow).values(
        kind=kind, person_id=pid, from_county=from_county, to_county=to_county,
        municipality=municipality, date=on).returning(ChangeRow.seq)).scalar_one()
    return Change(seq, kind, pid, from_county, to_county, municipality, on)


def _write_batch(conn: Connection, batch: Batch) -> None:
    _bulk_insert(conn, PersonRow.__table__, batch.persons)
    _bulk_insert(conn, GuardianshipRow.__table__,
                 [{"child_id": c, "guardian_id": g} for c, g in batch.guardianships])


# Asked for every request about someone a region has not met yet: built once (building the
# statement cost more than running it).
_PERSON = select(PersonRow).where(PersonRow.person_id == bindparam("pid"))
_BULK_TABLES = ("guardianships", "persons")  # dropped in this order (foreign keys first)


def _drop_constraints(conn: Connection) -> list[Any]:
    """Drop the register's foreign keys, indexes and primary keys (PostgreSQL, empty
    register); returns the DDL that makes them again, for ``_restore_constraints``."""
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    insp = inspect(conn)
    again: list[Any] = []
    for name in _BULK_TABLES:
        for fk in insp.get_foreign_keys(name):
            conn.execute(text(f'ALTER TABLE {name} DROP CONSTRAINT "{fk["name"]}"'))
        for ix in insp.get_indexes(name):
            conn.execute(text(f'DROP INDEX "{ix["name"]}"'))
        pk = insp.get_pk_constraint(name)
        if pk.get("name"):
            conn.execute(text(f'ALTER TABLE {name} DROP CONSTRAINT "{pk["name"]}"'))
    for name in reversed(_BULK_TABLES):  # primary keys first: the foreign keys need them
        again.append(AddConstraint(tables[name].primary_key))
    for name in reversed(_BULK_TABLES):
        again += [CreateIndex(ix) for ix in sorted(tables[name].indexes, key=lambda i: i.name)]
        again += [AddConstraint(fk.constraint) for fk in sorted(
            tables[name].foreign_keys, key=lambda f: f.parent.name)]
    return again


def _restore_constraints(conn: Connection, ddl: list[Any]) -> None:
    if not ddl:
        return
    conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    for statement in ddl:
        conn.execute(statement)


def _copy_value(v: object) -> str:
    """A value in COPY's text format: NULL as \\N; backslash, tab and line breaks escaped."""
    if v is None:
        return "\\N"
    s = str(v)
    if isinstance(v, str) and ("\\" in s or "\t" in s or "\n" in s or "\r" in s):
        s = (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
             .replace("\r", "\\r"))
    return s


def _bulk_insert(conn: Connection, table: Any, rows: list[dict[str, object]]) -> None:
    """COPY on PostgreSQL (psycopg2), executemany elsewhere."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2":
        columns = list(rows[0])
        text_ = "".join("\t".join([_copy_value(r[c]) for c in columns]) + "\n" for r in rows)
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.copy_expert(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN",
                            io.StringIO(text_), size=1 << 20)
        return
    conn.execute(insert(table), rows)
