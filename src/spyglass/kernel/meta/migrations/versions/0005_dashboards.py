"""Dashboards of metric charts (spyglass.otel.dashboards).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 11:35:44.849051
"""
from alembic import op
import sqlalchemy as sa
import spyglass.kernel.meta.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dashboards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('period', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_dashboards_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_dashboards_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dashboards'))
    )
    with op.batch_alter_table('dashboards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dashboards_project_id'), ['project_id'], unique=False)

    op.create_table('dashboard_panels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dashboard_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('query', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['dashboard_id'], ['dashboards.id'], name=op.f('fk_dashboard_panels_dashboard_id_dashboards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dashboard_panels'))
    )
    with op.batch_alter_table('dashboard_panels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dashboard_panels_dashboard_id'), ['dashboard_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('dashboard_panels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dashboard_panels_dashboard_id'))

    op.drop_table('dashboard_panels')
    with op.batch_alter_table('dashboards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dashboards_project_id'))

    op.drop_table('dashboards')
