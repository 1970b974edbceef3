"""The catalogue's tables: components, contracts, addresses, endpoints, routes, permissions,
published snapshots.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tak_components",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("hsa_id", sa.String(64), nullable=False),
        sa.Column("hsa_key", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.String(255)),
    )
    op.create_table(
        "tak_contracts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("namespace_key", sa.String(255), nullable=False, unique=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("major", sa.Integer, nullable=False),
        sa.Column("minor", sa.Integer, nullable=False),
        sa.Column("timeout_seconds", sa.Float),
    )
    op.create_table(
        "tak_addresses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("address", sa.String(128), nullable=False),
        sa.Column("address_key", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.String(255)),
    )
    op.create_table(
        "tak_endpoints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("component_id", sa.Integer, sa.ForeignKey("tak_components.id"),
                  nullable=False, index=True),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("profile", sa.String(16), nullable=False),
        sa.UniqueConstraint("url", "profile", name="uq_tak_endpoints_url_profile"),
    )
    op.create_table(
        "tak_routes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("address_id", sa.Integer, sa.ForeignKey("tak_addresses.id"),
                  nullable=False, index=True),
        sa.Column("contract_id", sa.Integer, sa.ForeignKey("tak_contracts.id"),
                  nullable=False, index=True),
        sa.Column("endpoint_id", sa.Integer, sa.ForeignKey("tak_endpoints.id"),
                  nullable=False, index=True),
        sa.Column("from_date", sa.Date, nullable=False),
        sa.Column("to_date", sa.Date, nullable=False),
    )
    op.create_table(
        "tak_permissions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("component_id", sa.Integer, sa.ForeignKey("tak_components.id"),
                  nullable=False, index=True),
        sa.Column("contract_id", sa.Integer, sa.ForeignKey("tak_contracts.id"),
                  nullable=False, index=True),
        sa.Column("address_id", sa.Integer, sa.ForeignKey("tak_addresses.id"),
                  nullable=False, index=True),
        sa.Column("from_date", sa.Date, nullable=False),
        sa.Column("to_date", sa.Date, nullable=False),
    )
    op.create_table(
        "tak_snapshots",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("snapshot_id", sa.String(64), nullable=False, unique=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("address_descriptions", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("tak_snapshots", "tak_permissions", "tak_routes", "tak_endpoints",
                  "tak_addresses", "tak_contracts", "tak_components"):
        op.drop_table(table)
