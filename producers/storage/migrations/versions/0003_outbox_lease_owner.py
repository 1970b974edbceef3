"""Outbox leases name their holder (``host:pid``), so a restarted region takes back at once
the deliveries a killed predecessor left leased (additive: one nullable column).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('lease_owner', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('lease_owner')
