"""Trace sampling policies per project (spyglass.otel.sampling).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 11:50:00.000000
"""
from alembic import op
import sqlalchemy as sa
import spyglass.kernel.meta.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trace_sampling',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('keep_errors', sa.Boolean(), nullable=False),
    sa.Column('slow_ms', sa.Integer(), nullable=False),
    sa.Column('percent', sa.Float(), nullable=False),
    sa.Column('updated_at', spyglass.kernel.meta.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_trace_sampling_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', name=op.f('pk_trace_sampling'))
    )


def downgrade() -> None:
    op.drop_table('trace_sampling')
