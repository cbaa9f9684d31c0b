"""Operations on users, organizations, memberships, projects, ingest keys and API tokens.

The CLI, the REST API and the web pages all call these, so the rules live in one place.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlparse

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from spyglass.kernel.auth.passwords import hash_password
from spyglass.kernel.auth.secrets import digest, new_api_token, new_public_key
from spyglass.kernel.meta.models import (
    ApiToken,
    Membership,
    Organization,
    Project,
    ProjectKey,
    Role,
    User,
    utcnow,
)

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
MIN_PASSWORD = 8


class AccountError(ValueError):
    """A request that breaks an account rule; its message is shown to the user."""


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:64] or "project"


# -- users ---------------------------------------------------------------------------------


def create_user(db: Session, email: str, password: str, is_admin: bool = False) -> User:
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise AccountError(f"not an email address: {email!r}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password must have at least {MIN_PASSWORD} characters")
    if db.scalar(select(User).where(User.email == email)):
        raise AccountError(f"a user with email {email} already exists")
    user = User(email=email, password_hash=hash_password(password), is_admin=is_admin)
    db.add(user)
    db.flush()
    return user


def user_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email.strip().lower()))


def user_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(User)) or 0


# -- organizations and members ---------------------------------------------------------------


def get_or_create_org(db: Session, name_or_slug: str, owner: User | None = None) -> Organization:
    slug = slugify(name_or_slug)
    org = db.scalar(select(Organization).where(Organization.slug == slug))
    if org is None:
        org = Organization(slug=slug, name=name_or_slug)
        db.add(org)
        db.flush()
    if owner is not None and role_in(db, owner, org) is None:
        db.add(Membership(org_id=org.id, user_id=owner.id, role=Role.owner.value))
        db.flush()
    return org


def role_in(db: Session, user: User, org: Organization) -> Role | None:
    """The user's role in the organization; instance admins act as owners everywhere."""
    if user.is_admin:
        return Role.owner
    m = db.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )
    return Role(m.role) if m else None


def orgs_of(db: Session, user: User) -> list[Organization]:
    if user.is_admin:
        return list(db.scalars(select(Organization).order_by(Organization.name)))
    return list(
        db.scalars(
            select(Organization)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Membership.user_id == user.id)
            .order_by(Organization.name)
        )
    )


def set_member(db: Session, org: Organization, email: str, role: Role) -> Membership:
    user = user_by_email(db, email)
    if user is None:
        raise AccountError(f"no user with email {email}; create the account first")
    m = db.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )
    if m is None:
        m = Membership(org_id=org.id, user_id=user.id, role=role.value)
        db.add(m)
    else:
        if m.role == Role.owner.value and role != Role.owner:
            _keep_an_owner(db, org, m)
        m.role = role.value
    db.flush()
    return m


def remove_member(db: Session, org: Organization, user_id: int) -> None:
    m = db.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user_id)
    )
    if m is None:
        raise AccountError("not a member of this organization")
    if m.role == Role.owner.value:
        _keep_an_owner(db, org, m)
    db.delete(m)
    db.flush()


def _keep_an_owner(db: Session, org: Organization, leaving: Membership) -> None:
    owners = db.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.org_id == org.id, Membership.role == Role.owner.value)
    )
    if (owners or 0) <= 1:
        raise AccountError("an organization must keep at least one owner")


def members_of(db: Session, org: Organization) -> list[Membership]:
    return list(
        db.scalars(
            select(Membership)
            .join(User, User.id == Membership.user_id)
            .where(Membership.org_id == org.id)
            .order_by(User.email)
        )
    )


# -- projects and ingest keys ----------------------------------------------------------------


def create_project(
    db: Session, org: Organization, name: str, retention_days: int = 90, platform: str = ""
) -> Project:
    name = name.strip()
    if not name:
        raise AccountError("a project needs a name")
    base = slugify(name)
    slug, n = base, 1
    while db.scalar(select(Project).where(Project.org_id == org.id, Project.slug == slug)):
        n += 1
        slug = f"{base}-{n}"
    project = Project(
        org_id=org.id, slug=slug, name=name, retention_days=retention_days, platform=platform
    )
    db.add(project)
    db.flush()
    add_key(db, project)
    return project


def projects_of(db: Session, org: Organization) -> list[Project]:
    return list(db.scalars(select(Project).where(Project.org_id == org.id).order_by(Project.name)))


def add_key(db: Session, project: Project, label: str = "Default") -> ProjectKey:
    key = ProjectKey(project_id=project.id, public_key=new_public_key(), label=label)
    db.add(key)
    db.flush()
    return key


def active_key(db: Session, project: Project) -> ProjectKey | None:
    return db.scalar(
        select(ProjectKey)
        .where(ProjectKey.project_id == project.id, ProjectKey.revoked_at.is_(None))
        .order_by(ProjectKey.id)
    )


def revoke_key(db: Session, key: ProjectKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.flush()


def rotate_key(db: Session, key: ProjectKey) -> ProjectKey:
    """Issue a replacement key with the same label and revoke the old one."""
    new = add_key(db, key.project, key.label)
    revoke_key(db, key)
    return new


def dsn(public_url: str, project: Project, key: ProjectKey) -> str:
    """A Sentry DSN: ``{scheme}://{public_key}@{host}{path}/{project_id}``."""
    u = urlparse(public_url)
    return f"{u.scheme}://{key.public_key}@{u.netloc}{u.path.rstrip('/')}/{project.id}"


# -- API tokens --------------------------------------------------------------------------------


@dataclass
class IssuedToken:
    token: str
    record: ApiToken


def create_api_token(db: Session, user: User, name: str = "") -> IssuedToken:
    token = new_api_token()
    record = ApiToken(user_id=user.id, name=name, token_hash=digest(token), prefix=token[:8])
    db.add(record)
    db.flush()
    return IssuedToken(token, record)


def user_for_token(db: Session, token: str) -> User | None:
    record = db.scalar(
        select(ApiToken).where(ApiToken.token_hash == digest(token), ApiToken.revoked_at.is_(None))
    )
    if record is None:
        return None
    record.last_used_at = utcnow()
    return record.user


def tokens_of(db: Session, user: User) -> list[ApiToken]:
    return list(
        db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )


def revoke_token(db: Session, user: User, token_id: int) -> None:
    record = db.get(ApiToken, token_id)
    if record is None or record.user_id != user.id:
        raise AccountError("no such token")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        db.flush()
