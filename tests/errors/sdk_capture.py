"""Envelopes made by the real ``sentry-sdk``, collected instead of sent.

Only delivery is replaced (a transport that keeps the serialized envelopes); the SDK builds
every event, session and attachment itself, exactly as it would for a live server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sentry_sdk
from sentry_sdk.transport import Transport


class Collecting(Transport):
    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[bytes] = []

    def capture_envelope(self, envelope) -> None:  # type: ignore[no-untyped-def]
        self.envelopes.append(envelope.serialize())

    def flush(self, timeout: float, callback: Callable[..., None] | None = None) -> None:
        return None

    def kill(self) -> None:
        return None


@contextmanager
def sdk(dsn: str = "http://public@localhost/1", **options: Any) -> Iterator[list[bytes]]:
    """Run code under an initialised SDK; yields the list that fills with envelopes."""
    transport = Collecting()
    sentry_sdk.init(dsn=dsn, transport=transport, default_integrations=False, **options)
    try:
        # A fresh isolation scope: attachments, users and tags do not leak between tests.
        with sentry_sdk.isolation_scope():
            yield transport.envelopes
        sentry_sdk.flush()
    finally:
        sentry_sdk.get_client().close()
