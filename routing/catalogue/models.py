"""The catalogue's tables (SQLAlchemy 2). Schema changes go through ``migrations/``.

Identifiers are kept as entered (for display and export) next to a case-folded ``*_key``
column that carries the uniqueness constraint and every lookup: HSA-ids, logical addresses
and contract namespaces are compared case-insensitively.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def key(value: str) -> str:
    """The normalised form every lookup and uniqueness check uses."""
    return value.strip().casefold()


class Base(DeclarativeBase):
    pass


class Component(Base):
    """A service component: a system, identified by its HSA-id (consumer and/or producer)."""

    __tablename__ = "tak_components"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hsa_id: Mapped[str] = mapped_column(String(64))
    hsa_key: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))

    endpoints: Mapped[list[Endpoint]] = relationship(back_populates="component",
                                                     cascade="all, delete-orphan")
    permissions: Mapped[list[Permission]] = relationship(back_populates="consumer",
                                                         cascade="all, delete-orphan")


class Contract(Base):
    """A service contract, by its Responder namespace; ``timeout_seconds`` for the producer call."""

    __tablename__ = "tak_contracts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(255))
    namespace_key: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    timeout_seconds: Mapped[float | None] = mapped_column(Float)


class Address(Base):
    """A logical address (in this domain a county code; ``*`` is the catch-all)."""

    __tablename__ = "tak_addresses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(128))
    address_key: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))


class Endpoint(Base):
    """A producer endpoint: URL and RIV profile, owned by a component."""

    __tablename__ = "tak_endpoints"
    __table_args__ = (UniqueConstraint("url", "profile", name="uq_tak_endpoints_url_profile"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    component_id: Mapped[int] = mapped_column(ForeignKey("tak_components.id"), index=True)
    url: Mapped[str] = mapped_column(String(1024))
    profile: Mapped[str] = mapped_column(String(16))

    component: Mapped[Component] = relationship(back_populates="endpoints")
    routes: Mapped[list[Route]] = relationship(back_populates="endpoint",
                                               cascade="all, delete-orphan")


class Route(Base):
    """Logical address × contract → endpoint, valid from/to (inclusive local dates)."""

    __tablename__ = "tak_routes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("tak_addresses.id"), index=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("tak_contracts.id"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("tak_endpoints.id"), index=True)
    from_date: Mapped[date] = mapped_column(Date)
    to_date: Mapped[date] = mapped_column(Date)

    address: Mapped[Address] = relationship()
    contract: Mapped[Contract] = relationship()
    endpoint: Mapped[Endpoint] = relationship(back_populates="routes")


class Permission(Base):
    """Consumer × contract × logical address, valid from/to (inclusive local dates)."""

    __tablename__ = "tak_permissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    component_id: Mapped[int] = mapped_column(ForeignKey("tak_components.id"), index=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("tak_contracts.id"), index=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("tak_addresses.id"), index=True)
    from_date: Mapped[date] = mapped_column(Date)
    to_date: Mapped[date] = mapped_column(Date)

    consumer: Mapped[Component] = relationship(back_populates="permissions")
    contract: Mapped[Contract] = relationship()
    address: Mapped[Address] = relationship()


class PublishedSnapshot(Base):
    """A published snapshot: the JSON the platform loads. The highest ``seq`` is current."""

    __tablename__ = "tak_snapshots"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[str] = mapped_column(String(64), unique=True)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    content: Mapped[str] = mapped_column(Text)
    # address -> description at publish time, for GetLogicalAddresseesByServiceContract answers
    address_descriptions: Mapped[str] = mapped_column(Text, default="{}")
