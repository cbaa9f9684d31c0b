"""releases

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:46:34.381855
"""
from alembic import op
import sqlalchemy as sa
import spyglass.kernel.meta.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('releases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=200), nullable=False),
    sa.Column('ref', sa.String(length=250), nullable=True),
    sa.Column('url', sa.String(length=1000), nullable=True),
    sa.Column('date_created', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('date_started', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('date_released', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('refs', sa.JSON(), nullable=False),
    sa.Column('commits', sa.JSON(), nullable=False),
    sa.Column('authors', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_releases_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_releases')),
    sa.UniqueConstraint('org_id', 'version', name=op.f('uq_releases_org_id'))
    )
    op.create_table('repositories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('url', sa.String(length=1000), nullable=True),
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('date_created', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_repositories_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repositories')),
    sa.UniqueConstraint('org_id', 'name', name=op.f('uq_repositories_org_id'))
    )
    op.create_table('release_deploys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('environment', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('url', sa.String(length=1000), nullable=True),
    sa.Column('date_started', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('date_finished', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_release_deploys_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_release_deploys'))
    )
    with op.batch_alter_table('release_deploys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_release_deploys_release_id'), ['release_id'], unique=False)

    op.create_table('release_projects',
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('created_at', spyglass.kernel.meta.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_release_projects_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_release_projects_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('release_id', 'project_id', name=op.f('pk_release_projects'))
    )
    with op.batch_alter_table('release_projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_release_projects_project_id'), ['project_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('release_projects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_projects_project_id'))

    op.drop_table('release_projects')
    with op.batch_alter_table('release_deploys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_deploys_release_id'))

    op.drop_table('release_deploys')
    op.drop_table('repositories')
    op.drop_table('releases')
