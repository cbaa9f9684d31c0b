"""The command line, as a newcomer and an operator use it."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from spyglass.cli import main
from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.db import Database


@pytest.fixture
def run(settings):
    runner = CliRunner()
    env = {"SPYGLASS_DATABASE_URL": settings.database_url}

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        result = runner.invoke(main, [*args, "--data-dir", str(settings.data_dir)], env=env)
        return result

    return invoke


def test_user_project_token_flow(run, settings):
    assert run("migrate").exit_code == 0
    r = run("user", "create", "--email", "Dev@Example.com", "--password", "s3cret-pass", "--admin")
    assert r.exit_code == 0, r.output
    r = run("project", "create", "--org", "Acme Corp", "--name", "Checkout API", "--json")
    assert r.exit_code == 0, r.output
    info = orjson.loads(r.output)
    assert {"id", "slug", "org", "dsn", "public_key"} <= info.keys()
    assert info["org"] == "acme-corp" and info["slug"] == "checkout-api"
    assert info["dsn"] == f"http://{info['public_key']}@localhost:8000/{info['id']}"
    r = run("token", "create", "--email", "dev@example.com", "--json")
    token = orjson.loads(r.output)["token"]
    db = Database(settings.metadata_url)
    with db.session() as s:
        user = accounts.user_for_token(s, token)
        assert user is not None and user.email == "dev@example.com" and user.is_admin
        assert user.password_hash.startswith("$argon2id$")
    db.close()


def test_errors_are_clear(run):
    r = run("user", "create", "--email", "nobody", "--password", "long-enough")
    assert r.exit_code == 1 and "not an email address" in r.output
    r = run("user", "create", "--email", "a@b.c", "--password", "short")
    assert r.exit_code == 1 and "at least 8" in r.output
    r = run("token", "create", "--email", "ghost@example.com")
    assert r.exit_code == 1 and "no user" in r.output


def test_data_dir_comes_from_environment(settings, tmp_path):
    runner = CliRunner()
    other = tmp_path / "elsewhere"
    r = runner.invoke(main, ["user", "create", "--email", "e@x.io", "--password", "password1"],
                      env={"SPYGLASS_DATA_DIR": str(other),
                           "SPYGLASS_DATABASE_URL": settings.database_url})
    assert r.exit_code == 0, r.output
    assert (other / "secret.key").exists()


def test_every_subcommand_takes_data_dir():
    def walk(cmd, path):  # type: ignore[no-untyped-def]
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, [*path, name])
        else:
            yield path, cmd

    for path, cmd in walk(main, []):
        assert any(p.name == "data_dir" for p in cmd.params), path


def test_serve_bootstraps_an_admin_and_is_ready(server_factory, settings):
    import httpx

    server = server_factory()
    ready = httpx.get(server.url + "/readyz").json()
    assert ready["status"] == "pass"
    note = (settings.data_dir / "initial-admin-password.txt").read_text().split()
    assert note[0] == "admin@localhost"
    log = server.log_path.read_text()
    assert f"password: {note[1]}" in log and "/login" in log
    with httpx.Client(base_url=server.url) as http:
        login = http.post("/login", data={"email": note[0], "password": note[1]})
        assert login.status_code == 303
        assert http.cookies.get("spyglass_session")
        assert http.get("/api/v1/me").json()["email"] == "admin@localhost"
