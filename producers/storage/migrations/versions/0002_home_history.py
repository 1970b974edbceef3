"""Home-side listing history and payer changes (additive: two new tables).

``home_history`` starts with one open period per existing home record; ``payer_changes`` starts
empty (no earlier change of payer was recorded).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'home_history',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('person_id', sa.String(length=12), nullable=False),
        sa.Column('listing_county', sa.String(length=2), nullable=False),
        sa.Column('valid_from', sa.DateTime(), nullable=False),
        sa.Column('valid_to', sa.DateTime(), nullable=True),
        sa.Column('effective_at', sa.DateTime(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(), nullable=False),
        sa.Column('event_at', sa.DateTime(), nullable=False),
        sa.Column('type_code', sa.String(length=64), nullable=True),
        sa.Column('type_system', sa.String(length=128), nullable=True),
        sa.Column('end_reason', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_home_history_person', 'home_history', ['person_id', 'valid_to'])
    op.create_index('ix_home_history_county', 'home_history', ['listing_county', 'valid_from'])
    op.create_table(
        'payer_changes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('listing_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.String(length=12), nullable=False),
        sa.Column('from_county', sa.String(length=2), nullable=False),
        sa.Column('to_county', sa.String(length=2), nullable=False),
        sa.Column('changed_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['listing_id'], ['listings.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_payer_changes_listing_id', 'payer_changes', ['listing_id'])
    op.create_index('ix_payer_changes_changed_at', 'payer_changes', ['changed_at'])
    # what is known today: each home record as an open period
    op.execute(
        "INSERT INTO home_history (person_id, listing_county, valid_from, valid_to, "
        "effective_at, recorded_at, event_at, type_code, type_system) "
        "SELECT person_id, listing_county, "
        "CASE WHEN effective_at > since THEN effective_at ELSE since END, NULL, "
        "effective_at, since, event_at, type_code, type_system FROM home_records")


def downgrade() -> None:
    op.drop_table('payer_changes')
    op.drop_table('home_history')
