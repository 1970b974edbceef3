"""Tables of the simulated population register, and the values read from them.

The register is a stand-in for Skatteverket's Navet, not part of a region's listing system:
its schema is made with ``create_all`` rather than migrations, because a simulator's database
is regenerated at will and never upgraded in place (``listning population generate --replace``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from interactions.identifiers import is_samordningsnummer, personal_id_root

CHANGE_KINDS = ("move", "birth", "death", "emigration")


class Base(DeclarativeBase):
    metadata = MetaData()


class PersonRow(Base):
    __tablename__ = "persons"

    person_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    first_name: Mapped[str] = mapped_column(String(60))
    last_name: Mapped[str] = mapped_column(String(60))
    sex: Mapped[str] = mapped_column(String(1))  # "F" or "M" (the birth number's last digit)
    birth_date: Mapped[date] = mapped_column(Date)
    county: Mapped[str] = mapped_column(String(2), index=True)
    municipality: Mapped[str] = mapped_column(String(4))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    deceased_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    emigrated_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class GuardianshipRow(Base):
    __tablename__ = "guardianships"

    child_id: Mapped[str] = mapped_column(
        String(12), ForeignKey("persons.person_id", ondelete="CASCADE"), primary_key=True)
    guardian_id: Mapped[str] = mapped_column(
        String(12), ForeignKey("persons.person_id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index("ix_guardianships_guardian", "guardian_id"),)


class ChangeRow(Base):
    """The change feed: append-only; ``seq`` only grows (readers page on it)."""

    __tablename__ = "changes"
    __table_args__ = ({"sqlite_autoincrement": True},)  # never reuse a sequence number

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[str] = mapped_column(String(12), index=True)
    from_county: Mapped[str | None] = mapped_column(String(2), nullable=True)
    to_county: Mapped[str | None] = mapped_column(String(2), nullable=True)
    municipality: Mapped[str | None] = mapped_column(String(4), nullable=True)
    date: Mapped[date] = mapped_column(Date)
    recorded_at = mapped_column(DateTime, server_default=func.current_timestamp())


@dataclass(frozen=True)
class Person:
    person_id: str
    first_name: str
    last_name: str
    sex: str
    birth_date: date
    county: str
    municipality: str
    latitude: float
    longitude: float
    deceased_on: date | None = None
    emigrated_on: date | None = None

    @property
    def root(self) -> str:
        """The OID for this person's number (personnummer or samordningsnummer)."""
        return personal_id_root(self.person_id)

    @property
    def samordningsnummer(self) -> bool:
        return is_samordningsnummer(self.person_id)

    @property
    def status(self) -> str:
        if self.deceased_on:
            return "deceased"
        if self.emigrated_on:
            return "emigrated"
        return "resident"

    @property
    def home_county(self) -> str | None:
        """The county the person is registered in; None once deceased or emigrated."""
        return self.county if self.status == "resident" else None

    def age(self, on: date | None = None) -> int:
        on = on or date.today()
        born = self.birth_date
        return on.year - born.year - ((on.month, on.day) < (born.month, born.day))

    @classmethod
    def from_row(cls, row: Any) -> Person:
        return cls(row.person_id, row.first_name, row.last_name, row.sex, row.birth_date,
                   row.county, row.municipality, row.latitude, row.longitude,
                   row.deceased_on, row.emigrated_on)


@dataclass(frozen=True)
class Change:
    """One entry of the change feed."""

    seq: int
    kind: str  # "move" | "birth" | "death" | "emigration"
    person_id: str
    from_county: str | None
    to_county: str | None
    municipality: str | None  # where the person now lives (move, birth)
    date: date

    @classmethod
    def from_row(cls, row: Any) -> Change:
        return cls(row.seq, row.kind, row.person_id, row.from_county, row.to_county,
                   row.municipality, row.date)

    def to_json(self) -> dict[str, object]:
        return {"seq": self.seq, "kind": self.kind, "person_id": self.person_id,
                "from_county": self.from_county, "to_county": self.to_county,
                "municipality": self.municipality, "date": self.date.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Change:
        return cls(int(data["seq"]), str(data["kind"]), str(data["person_id"]),  # type: ignore[arg-type]
                   data.get("from_county"), data.get("to_county"),  # type: ignore[arg-type]
                   data.get("municipality"),  # type: ignore[arg-type]
                   date.fromisoformat(str(data["date"])))
