"""The ``spyglass`` command line: serve, migrate, and manage users, projects and tokens."""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import Iterator

import click
import orjson
from sqlalchemy.orm import Session

from spyglass import __version__
from spyglass.clikit import data_dir_option
from spyglass.config import Settings
from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.db import Database


@click.group()
@click.version_option(__version__, prog_name="spyglass")
def main() -> None:
    """Spyglass: errors, replays, analytics, traces, metrics, logs and monitors in one install."""


@contextlib.contextmanager
def metadata(settings: Settings) -> Iterator[Session]:
    """A migrated metadata session; commands that only manage accounts need no telemetry store."""
    settings.ensure_data_dir()
    db = Database(settings.metadata_url)
    try:
        db.migrate()
        with db.session() as session:
            yield session
    finally:
        db.close()


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@data_dir_option
def serve(settings: Settings, host: str | None, port: int | None) -> None:
    """Start the HTTP server (migrates the schema first)."""
    import uvicorn

    from spyglass.app import create_app, load_features
    from spyglass.kernel.logging import configure_logging
    from spyglass.kernel.runtime import Runtime

    if host:
        settings.host = host
    if port:
        settings.port = port
    configure_logging(settings.log_level, settings.log_format)
    load_features()
    runtime = Runtime(settings)
    runtime.prepare_storage()
    first_login = bootstrap_admin(runtime.db, settings)
    app = create_app(settings, runtime)
    click.echo(f"Spyglass {__version__} listening on {settings.public_url}", err=True)
    if first_login:
        click.echo(first_login, err=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                access_log=False, server_header=False)


def bootstrap_admin(db: Database, settings: Settings) -> str:
    """On an empty install, create an admin, an organization and a first project.

    Returns the message telling the newcomer how to log in ("" when users already exist).
    The password is also kept, readable only by this user, in the data directory.
    """
    with db.session() as s:
        if accounts.user_count(s):
            return ""
        password = secrets.token_urlsafe(12)
        user = accounts.create_user(s, "admin@localhost", password, is_admin=True)
        org = accounts.get_or_create_org(s, "default", owner=user)
        accounts.create_project(s, org, "My first project", settings.default_retention_days)
    note = settings.data_dir / "initial-admin-password.txt"
    note.write_text(f"admin@localhost\n{password}\n")
    note.chmod(0o600)
    return (
        f"\nFirst start: log in at {settings.public_url}/login\n"
        f"  email:    admin@localhost\n  password: {password}\n"
        f"(also saved in {note}; change it with `spyglass user create` for real accounts)\n"
    )


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@data_dir_option
def demo(settings: Settings, host: str | None, port: int | None) -> None:
    """Start the server with a demo organization fed live by a demo app (real sentry-sdk)."""
    from spyglass.demo import run_demo

    run_demo(settings, host, port)


@main.command()
@data_dir_option
def migrate(settings: Settings) -> None:
    """Apply metadata schema migrations (Alembic) and create telemetry tables."""
    from spyglass.app import load_features
    from spyglass.kernel.runtime import Runtime

    load_features()
    runtime = Runtime(settings)
    try:
        runtime.prepare_storage()
    finally:
        runtime.stop()
    click.echo("schema is up to date")


@main.group()
def user() -> None:
    """Manage user accounts."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--admin", is_flag=True, help="Instance administrator (owner of every organization).")
@data_dir_option
def user_create(settings: Settings, email: str, password: str, admin: bool) -> None:
    """Create a user with an Argon2-hashed password."""
    with metadata(settings) as s:
        try:
            u = accounts.create_user(s, email, password, is_admin=admin)
        except accounts.AccountError as exc:
            _fail(str(exc))
        click.echo(f"created user {u.email}" + (" (admin)" if admin else ""))


@main.group()
def project() -> None:
    """Manage projects."""


@project.command("create")
@click.option("--org", "org_name", required=True, help="Organization (created if needed).")
@click.option("--name", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@data_dir_option
def project_create(settings: Settings, org_name: str, name: str, as_json: bool) -> None:
    """Create a project and its first ingest key; prints its DSN."""
    with metadata(settings) as s:
        org = accounts.get_or_create_org(s, org_name)
        try:
            p = accounts.create_project(s, org, name, settings.default_retention_days)
        except accounts.AccountError as exc:
            _fail(str(exc))
        key = accounts.active_key(s, p)
        assert key is not None
        info = {
            "id": p.id,
            "slug": p.slug,
            "name": p.name,
            "org": org.slug,
            "dsn": accounts.dsn(settings.public_url, p, key),
            "public_key": key.public_key,
        }
    if as_json:
        click.echo(orjson.dumps(info).decode())
    else:
        click.echo(f"created project {info['org']}/{info['slug']} (id {info['id']})")
        click.echo(f"DSN: {info['dsn']}")


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.option("--email", required=True, help="The user the token acts as.")
@click.option("--name", default="cli", help="A label to recognise the token by.")
@click.option("--json", "as_json", is_flag=True, help='Print {"token": "..."}.')
@data_dir_option
def token_create(settings: Settings, email: str, name: str, as_json: bool) -> None:
    """Create an API token (stored hashed; shown only now)."""
    with metadata(settings) as s:
        u = accounts.user_by_email(s, email)
        if u is None:
            _fail(f"no user with email {email}")
        issued = accounts.create_api_token(s, u, name)
    click.echo(orjson.dumps({"token": issued.token}).decode() if as_json else issued.token)


def _add_feature_commands() -> None:
    from spyglass.insights.cli import insights

    main.add_command(insights)


_add_feature_commands()
