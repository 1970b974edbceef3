"""The removal marker also names the county whose listing ended: a hand-over of that same
listing, ordered by the same choice, is then recognised as stale although its time equals the
marker's. And the home region remembers the last closure reported by another region: news of
a listing there chosen before it is stale (additive: three nullable columns).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('persons') as batch:
        batch.add_column(sa.Column('home_event_county', sa.String(2), nullable=True))
        batch.add_column(sa.Column('home_closure_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('home_closure_county', sa.String(2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('persons') as batch:
        batch.drop_column('home_closure_county')
        batch.drop_column('home_closure_at')
        batch.drop_column('home_event_county')
