"""The home region remembers the order key of the last news it applied for a resident even
when that news removed the home record ("listed nowhere"), so an older notification arriving
later is recognised as stale (additive: one nullable column).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('persons') as batch:
        batch.add_column(sa.Column('home_event_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('persons') as batch:
        batch.drop_column('home_event_at')
