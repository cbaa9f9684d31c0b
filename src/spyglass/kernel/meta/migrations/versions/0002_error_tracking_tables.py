"""error tracking tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:30:15.881991
"""
from alembic import op
import sqlalchemy as sa
import spyglass.kernel.meta.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('error_settings',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('fingerprint_rules', sa.Text(), nullable=False),
    sa.Column('stacktrace_rules', sa.Text(), nullable=False),
    sa.Column('sensitive_fields', sa.Text(), nullable=False),
    sa.Column('safe_fields', sa.Text(), nullable=False),
    sa.Column('scrub_ip_addresses', sa.Boolean(), nullable=False),
    sa.Column('rate_limit_per_minute', sa.Integer(), nullable=False),
    sa.Column('rate_limit_burst', sa.Integer(), nullable=False),
    sa.Column('spike_protection', sa.Boolean(), nullable=False),
    sa.Column('similarity_merge', sa.Boolean(), nullable=False),
    sa.Column('updated_at', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_error_settings_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', name=op.f('pk_error_settings'))
    )
    op.create_table('issues',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('short_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=1000), nullable=False),
    sa.Column('culprit', sa.String(length=500), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('variant', sa.String(length=32), nullable=False),
    sa.Column('similarity_text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('substatus', sa.String(length=16), nullable=False),
    sa.Column('first_seen', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('first_release', sa.String(length=200), nullable=False),
    sa.Column('resolved_at', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolved_in_release', sa.String(length=200), nullable=True),
    sa.Column('ignored_at', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ignore_until', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ignore_count', sa.BigInteger(), nullable=True),
    sa.Column('regressed_at', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('merged_into_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['merged_into_id'], ['issues.id'], name=op.f('fk_issues_merged_into_id_issues'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_issues_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issues')),
    sa.UniqueConstraint('project_id', 'short_id', name=op.f('uq_issues_project_id'))
    )
    with op.batch_alter_table('issues', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_issues_merged_into_id'), ['merged_into_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_issues_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_issues_status'), ['status'], unique=False)

    op.create_table('issue_hashes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=32), nullable=False),
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('how', sa.String(length=32), nullable=False),
    sa.Column('created_at', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], name=op.f('fk_issue_hashes_issue_id_issues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_issue_hashes_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issue_hashes')),
    sa.UniqueConstraint('project_id', 'hash', name=op.f('uq_issue_hashes_project_id'))
    )
    with op.batch_alter_table('issue_hashes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_issue_hashes_issue_id'), ['issue_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('issue_hashes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_issue_hashes_issue_id'))

    op.drop_table('issue_hashes')
    with op.batch_alter_table('issues', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_issues_status'))
        batch_op.drop_index(batch_op.f('ix_issues_project_id'))
        batch_op.drop_index(batch_op.f('ix_issues_merged_into_id'))

    op.drop_table('issues')
    op.drop_table('error_settings')
