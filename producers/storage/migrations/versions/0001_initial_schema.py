"""Initial schema of a region listing system (see producers/storage/models.py).

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('access_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('person_id', sa.String(length=12), nullable=True),
    sa.Column('contract', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('caller_hsa_id', sa.String(length=64), nullable=True),
    sa.Column('original_consumer', sa.String(length=64), nullable=True),
    sa.Column('actor_type', sa.String(length=32), nullable=True),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.Column('result_code', sa.String(length=48), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_log_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_log_person_id'), ['person_id'], unique=False)

    op.create_table('feed_position',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('guardian_consents',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('child_id', sa.String(length=12), nullable=False),
    sa.Column('guardian_id', sa.String(length=12), nullable=False),
    sa.Column('unit_hsa_id', sa.String(length=31), nullable=False),
    sa.Column('given_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('guardian_consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guardian_consents_child_id'), ['child_id'])

    op.create_table('home_records',
    sa.Column('person_id', sa.String(length=12), nullable=False),
    sa.Column('listing_county', sa.String(length=2), nullable=False),
    sa.Column('since', sa.DateTime(), nullable=False),
    sa.Column('effective_at', sa.DateTime(), nullable=False),
    sa.Column('event_at', sa.DateTime(), nullable=False),
    sa.Column('type_code', sa.String(length=64), nullable=True),
    sa.Column('type_system', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('person_id')
    )
    op.create_table('listing_changes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=12), nullable=False),
    sa.Column('changed_at', sa.DateTime(), nullable=False),
    sa.Column('to_county', sa.String(length=2), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('listing_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_listing_changes_person_id'), ['person_id'])

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('to_county', sa.String(length=2), nullable=False),
    sa.Column('person_id', sa.String(length=12), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('result_code', sa.String(length=48), nullable=True),
    sa.Column('result_text', sa.Text(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('on_refusal', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_due', ['status', 'next_attempt_at'], unique=False)

    op.create_table('persons',
    sa.Column('person_id', sa.String(length=12), nullable=False),
    sa.Column('id_root', sa.String(length=64), nullable=False),
    sa.Column('home_county', sa.String(length=2), nullable=True),
    sa.Column('municipality', sa.String(length=4), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('deceased', sa.Boolean(), nullable=False),
    sa.Column('emigrated', sa.Boolean(), nullable=False),
    sa.Column('passive_listing_after', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('person_id')
    )
    op.create_table('received_messages',
    sa.Column('dedup_key', sa.String(length=128), nullable=False),
    sa.Column('caller_hsa_id', sa.String(length=64), nullable=True),
    sa.Column('person_id', sa.String(length=12), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('result_code', sa.String(length=48), nullable=False),
    sa.Column('result_text', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('dedup_key')
    )
    op.create_table('unit_closures',
    sa.Column('unit_hsa_id', sa.String(length=31), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('unit_hsa_id')
    )
    op.create_table('listings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=12), nullable=False),
    sa.Column('unit_hsa_id', sa.String(length=31), nullable=False),
    sa.Column('type_code', sa.String(length=64), nullable=False),
    sa.Column('type_system', sa.String(length=128), nullable=False),
    sa.Column('personnel_hsa_id', sa.String(length=31), nullable=True),
    sa.Column('home_county', sa.String(length=2), nullable=False),
    sa.Column('valid_from', sa.DateTime(), nullable=False),
    sa.Column('valid_to', sa.DateTime(), nullable=True),
    sa.Column('registered_at', sa.DateTime(), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('end_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['persons.person_id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.create_index('ix_listings_person', ['person_id', 'valid_to'], unique=False)
        batch_op.create_index('ix_listings_unit', ['unit_hsa_id', 'valid_to'], unique=False)

    op.create_table('queue_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=12), nullable=False),
    sa.Column('unit_hsa_id', sa.String(length=31), nullable=False),
    sa.Column('type_code', sa.String(length=64), nullable=False),
    sa.Column('type_system', sa.String(length=128), nullable=False),
    sa.Column('personnel_hsa_id', sa.String(length=31), nullable=True),
    sa.Column('home_county', sa.String(length=2), nullable=False),
    sa.Column('queued_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.person_id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('person_id', 'unit_hsa_id', name='uq_queue_person_unit')
    )
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.create_index('ix_queue_unit', ['unit_hsa_id', 'queued_at'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_unit')

    op.drop_table('queue_entries')
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_index('ix_listings_unit')
        batch_op.drop_index('ix_listings_person')

    op.drop_table('listings')
    op.drop_table('unit_closures')
    op.drop_table('received_messages')
    op.drop_table('persons')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due')

    op.drop_table('outbox')
    with op.batch_alter_table('listing_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_listing_changes_person_id'))

    op.drop_table('listing_changes')
    op.drop_table('home_records')
    with op.batch_alter_table('guardian_consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_guardian_consents_child_id'))

    op.drop_table('guardian_consents')
    op.drop_table('feed_position')
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_log_person_id'))
        batch_op.drop_index(batch_op.f('ix_access_log_at'))

    op.drop_table('access_log')

