"""The corpus of the ingest benchmark: envelopes made by the real ``sentry-sdk``.

The crash sites are those of the grouping benchmark (``benchmarks/grouping_corpus``: a small
fake shop with 72 places that raise or log, each with random data per request). Each request
here runs under a deeper, framework-like call chain (``framework.py``, not in-app), as a web
framework's frames would be, and its scope carries what a real service sends: a user (or
none), a release and environment, tags, request data, a dozen or so breadcrumbs from logging,
HTTP and database calls. The SDK builds every event itself, with local variables; only the
delivery is replaced by a transport that keeps the serialized envelope bytes.

The corpus is written as one gzip file of length-prefixed envelopes into a cache directory,
and rebuilt when missing (about half a minute).
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
SHOP_DIR = BENCH / "grouping_corpus"
CACHE = HERE / ".cache"
#: The DSN the corpus is made with; the load generator swaps in each target's own.
CORPUS_DSN = "http://0123456789abcdef0123456789abcdef@localhost/1"

RELEASES = ["shop@1.4.0", "shop@1.4.1", "shop@1.4.2", "shop@1.5.0-rc.1", "shop@1.5.0"]
ENVIRONMENTS = ["production"] * 6 + ["staging"] * 2 + ["canary"]
BROWSERS = [("Chrome", "131.0"), ("Firefox", "133.0"), ("Safari", "18.1"), ("Edge", "131.0")]
OSES = [("Windows", "11"), ("macOS", "15.1"), ("Android", "15"), ("iOS", "18.1"), ("Linux", "")]
HOSTS = [f"web-{i}.eu-west-1.internal" for i in range(6)]
SQL = ["SELECT id, total FROM orders WHERE user_id = %s", "UPDATE stock SET qty = qty - %s WHERE sku = %s",
       "SELECT * FROM products WHERE id = ANY(%s)", "INSERT INTO audit_log (kind, payload) VALUES (%s, %s)"]
UPSTREAMS = ["https://payments.internal/v2/charges", "https://search.internal/query",
             "https://mailer.internal/send", "https://fx.internal/rates"]


def corpus_path(size: int, seed: int) -> Path:
    return CACHE / f"envelopes-{size}-{seed}.bin.gz"


def _breadcrumbs(rng: random.Random, sentry_sdk: Any, route: str) -> None:
    sentry_sdk.add_breadcrumb(category="navigation", message=f"GET /{route.replace('.', '/')}",
                              level="info")
    for _ in range(rng.randint(3, 22)):
        kind = rng.random()
        if kind < 0.45:
            sentry_sdk.add_breadcrumb(
                type="query", category="query", message=rng.choice(SQL),
                data={"db.system": "postgresql", "duration_ms": round(rng.random() * 40, 2)})
        elif kind < 0.75:
            status = rng.choice([200, 200, 200, 201, 404, 502])
            sentry_sdk.add_breadcrumb(
                type="http", category="httplib",
                data={"method": rng.choice(["GET", "POST"]), "url": rng.choice(UPSTREAMS),
                      "status_code": status, "reason": "OK" if status < 400 else "Error"})
        else:
            logging.getLogger(rng.choice(["shopapp.cart", "shopapp.auth", "shopapp.cache"])).info(
                "cache %s for key %s (%d ms)", rng.choice(["hit", "miss"]),
                f"k{rng.randint(1, 10**6)}", rng.randint(1, 90))


def _scope(rng: random.Random, scope: Any, route: str, number: int) -> None:
    scope.set_transaction_name(f"/{route.replace('.', '/')}")
    scope.set_tag("route", route)
    scope.set_tag("server_name", rng.choice(HOSTS))
    scope.set_tag("region", rng.choice(["eu-west-1", "us-east-1", "ap-northeast-1"]))
    scope.set_tag("feature.new_checkout", rng.choice(["on", "off"]))
    browser, bver = rng.choice(BROWSERS)
    os_name, over = rng.choice(OSES)
    scope.set_context("browser", {"name": browser, "version": bver})
    scope.set_context("client_os", {"name": os_name, "version": over})
    if rng.random() < 0.8:
        uid = rng.randint(1, 4000)
        scope.set_user({"id": str(uid), "email": f"user{uid}@example.com",
                        "ip_address": f"203.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}"})
    scope.set_extra("request_number", number)
    scope.set_extra("cart_items", rng.randint(0, 12))


def generate(size: int = 6000, seed: int = 20261127) -> Path:
    """Capture ``size`` events from the shop's crash sites; write the envelopes."""
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.transport import Transport

    sys.path.insert(0, str(SHOP_DIR))
    sys.path.insert(0, str(HERE))
    for module in ("api", "billing", "catalog", "inventory", "jobs", "notify", "orders",
                   "reports", "search", "storage", "users"):
        __import__(f"shopapp.{module}")
    import framework
    from shopapp import web
    from sites import SITES

    envelopes: list[bytes] = []

    class Collecting(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            envelopes.append(envelope.serialize())

    logging.getLogger("shopapp").addHandler(logging.NullHandler())
    logging.getLogger("shopapp").propagate = False
    logging.getLogger("shopapp").setLevel(logging.INFO)
    rng = random.Random(seed)
    path = corpus_path(size, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One client per release and environment, as each deploy of the service would have.
    clients = {}
    for release in RELEASES:
        for environment in set(ENVIRONMENTS):
            clients[release, environment] = sentry_sdk.Client(
            dsn=CORPUS_DSN, transport=Collecting, release=release, environment=environment,
            default_integrations=False, max_breadcrumbs=100, send_default_pii=True,
            integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.WARNING)],
            in_app_include=["shopapp"], include_local_variables=True,
            )
    sentry_sdk.init(dsn=CORPUS_DSN, transport=Collecting, default_integrations=False,
                    integrations=[LoggingIntegration(level=logging.INFO,
                                                     event_level=logging.WARNING)])
    # Sites are not equally frequent: a few crash often, most rarely (Zipf-like weights).
    weights = [1.0 / (1 + rank) ** 0.8 for rank in range(len(SITES))]
    order = list(range(len(SITES)))
    rng.shuffle(order)
    number = 0
    while len(envelopes) < size:
        index = rng.choices(order, weights)[0]
        _site, make = SITES[index]
        route, request = make(rng)
        if index % 3 == 0:
            request["anonymous"] = rng.random() < 0.5
        client = clients[rng.choice(RELEASES), rng.choice(ENVIRONMENTS)]
        with sentry_sdk.isolation_scope() as scope:
            scope.set_client(client)
            _scope(rng, scope, route, number)
            _breadcrumbs(rng, sentry_sdk, route)
            try:
                framework.serve(rng.randint(2, 9), web.handle, route, request)
            except Exception:  # noqa: BLE001 - every crash site's failure is the point
                sentry_sdk.capture_exception()
        number += 1
    for client in clients.values():
        client.close()
    root = str(BENCH.parent).encode()
    with gzip.open(path, "wb", compresslevel=6) as f:
        for envelope in envelopes[:size]:
            data = _relocate(envelope, root, b"/srv/app")
            f.write(struct.pack("<I", len(data)))
            f.write(data)
    return path


def _relocate(envelope: bytes, old: bytes, new: bytes) -> bytes:
    """Paths of this checkout made machine-independent, with each item's ``length`` fixed."""
    header, _, rest = envelope.partition(b"\n")
    out = [header]
    while rest:
        item_header, _, rest = rest.partition(b"\n")
        meta = json.loads(item_header)
        length = meta.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length + 1:]
        payload = payload.replace(old, new)
        if length is not None:
            meta["length"] = len(payload)
        out += [json.dumps(meta, separators=(",", ":")).encode(), payload]
    return b"\n".join(out) + b"\n"


def load(size: int = 6000, seed: int = 20261127) -> list[bytes]:
    path = corpus_path(size, seed)
    if not path.exists():
        generate(size, seed)
    return list(_read(path))


def _read(path: Path) -> Iterator[bytes]:
    with gzip.open(path, "rb") as f:
        while header := f.read(4):
            (length,) = struct.unpack("<I", header)
            yield f.read(length)
