"""apdex threshold

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 11:29:37.773450
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('error_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('apdex_threshold_ms', sa.Integer(), server_default='300', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('error_settings', schema=None) as batch_op:
        batch_op.drop_column('apdex_threshold_ms')

