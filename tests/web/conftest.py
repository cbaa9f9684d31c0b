"""Fixtures for the web UI tests (helpers live in web_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from web_helpers import WebUser, add_user

from spyglass.kernel.meta.db import Database
from spyglass.kernel.meta.models import Role


@pytest.fixture
def db(client) -> Database:  # type: ignore[no-untyped-def]
    return client.app.state.runtime.db


@pytest.fixture
def user_factory(db: Database) -> Callable[..., WebUser]:
    return lambda email, org="acme", role=Role.owner, project="Web": add_user(
        db, email, org, role, project
    )
