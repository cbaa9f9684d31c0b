"""``spyglass demo``: a server with a demo organization that fills itself with live data.

It starts Spyglass as ``spyglass serve`` does (plus the first-start admin), creates the
organization "demo" with a user ``demo@example.com`` and two projects, and once the server
answers, a background thread runs :mod:`spyglass.demo_app` — a checkout backend with real
bugs — under the real ``sentry-sdk`` pointed at the project's DSN. Releases roll out over a
simulated day and a half: the feed starts 36 hours in the past and catches up with the present
in about a minute (event, transaction and session times are shifted), then runs live.

The browser project ("storefront") gets hand-built envelopes in the shape
``@sentry/browser`` sends, and CSP reports: running the real browser SDK would need a
headless browser, too heavy for a demo (``tests/browser`` drives the real one).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import itertools
import logging
import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import click
import httpx
import orjson

from spyglass.config import Settings
from spyglass.demo_otel import start_otel_shop
from spyglass.errors.useragent import contexts_from_user_agent
from spyglass.kernel.auth import accounts
from spyglass.kernel.auth.passwords import hash_password
from spyglass.kernel.meta.db import Database
from spyglass.kernel.meta.models import Role

DEMO_ORG = "demo"
DEMO_EMAIL = "demo@example.com"
BACKEND = ("checkout-api", "python")
BROWSER = ("storefront", "javascript")

#: How far back the simulated history starts, and how fast it catches up with the present.
HISTORY = dt.timedelta(hours=36)
CATCH_UP_S = 45.0
#: Shop requests per second while catching up, then live (nearly half of them fail).
RATE_CATCH_UP = 6.0
RATE_LIVE = 2.0
FLUSH_EVERY_S = 3.0

#: (release, rollout start before now, rollout duration): each user moves at their own point.
ROLLOUTS = [
    ("checkout@1.4.0", dt.timedelta(hours=36), dt.timedelta(0)),
    ("checkout@1.4.1", dt.timedelta(hours=29), dt.timedelta(hours=4)),
    ("checkout@1.5.0", dt.timedelta(hours=10), dt.timedelta(hours=6)),
]
BROWSER_ROLLOUTS = [
    ("storefront@3.2.0", dt.timedelta(hours=36), dt.timedelta(0)),
    ("storefront@3.3.0", dt.timedelta(hours=20), dt.timedelta(hours=3)),
]

FIRST = ["ada", "grace", "alan", "edsger", "barbara", "ken", "dennis", "margaret", "linus",
         "guido", "katherine", "john", "frances", "donald", "radia", "tim", "hedy", "niklaus",
         "sophie", "bjarne", "anita", "leslie", "shafi", "yukihiro", "joan"]
REGIONS = ["eu-west-1", "eu-central-1", "us-east-1", "ap-southeast-2"]


@dataclass
class DemoUser:
    index: int
    id: str
    email: str
    username: str
    region: str
    plan: str
    #: Where in a rollout this user upgrades (0 = first, 1 = last).
    rollout_slot: float


def demo_users(n: int = 50) -> list[DemoUser]:
    rng = random.Random(7)
    users = []
    for i in range(n):
        name = f"{FIRST[i % len(FIRST)]}{'' if i < len(FIRST) else i // len(FIRST) + 1}"
        users.append(DemoUser(i, f"u-{1000 + i}", f"{name}@example.com", name,
                              rng.choice(REGIONS), rng.choice(["free", "free", "pro", "team"]),
                              (i * 0.618034) % 1.0))
    return users


def release_for(rollouts: list[tuple[str, dt.timedelta, dt.timedelta]], user: DemoUser,
                ago: dt.timedelta) -> str:
    """The release this user runs ``ago`` before now."""
    current = rollouts[0][0]
    for release, start, duration in rollouts:
        if ago <= start - duration * user.rollout_slot:
            current = release
    return current


class SimClock:
    """Simulated time: from ``now - HISTORY``, catching up in ``CATCH_UP_S``, then real time."""

    def __init__(self, history: dt.timedelta = HISTORY, catch_up_s: float = CATCH_UP_S) -> None:
        self.started = time.monotonic()
        self.origin = dt.datetime.now(dt.UTC) - history
        self.speed = history.total_seconds() / catch_up_s

    def now(self) -> dt.datetime:
        real = dt.datetime.now(dt.UTC)
        return min(real, self.origin + dt.timedelta(
            seconds=(time.monotonic() - self.started) * self.speed))

    def catching_up(self) -> bool:
        return self.now() < dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)


# -- setup -----------------------------------------------------------------------------------


@dataclass
class DemoSetup:
    password: str
    #: project name → (project id, public key)
    projects: dict[str, tuple[int, str]]


def setup_demo(db: Database, settings: Settings) -> DemoSetup:
    """Create (or find again) the demo organization, user and projects. Idempotent."""
    note = settings.data_dir / "demo-password.txt"
    with db.session() as s:
        user = accounts.user_by_email(s, DEMO_EMAIL)
        password = note.read_text().strip() if note.exists() and user is not None else ""
        if user is None:
            password = secrets.token_urlsafe(12)
            user = accounts.create_user(s, DEMO_EMAIL, password)
        elif not password:  # the note was deleted: set a new password
            password = secrets.token_urlsafe(12)
            user.password_hash = hash_password(password)
        org = accounts.get_or_create_org(s, DEMO_ORG, owner=user)
        accounts.set_member(s, org, DEMO_EMAIL, Role.owner)
        existing = {p.name: p for p in accounts.projects_of(s, org)}
        projects = {}
        for name, platform in (BACKEND, BROWSER):
            project = existing.get(name) or accounts.create_project(
                s, org, name, settings.default_retention_days, platform=platform)
            key = accounts.active_key(s, project) or accounts.add_key(s, project)
            projects[name] = (project.id, key.public_key)
    note.write_text(password + "\n")
    note.chmod(0o600)
    return DemoSetup(password, projects)


def run_demo(settings: Settings, host: str | None, port: int | None) -> None:
    """Start the server with the demo data set up, and feed it from a background thread."""
    import uvicorn

    from spyglass import __version__
    from spyglass.app import create_app, load_features
    from spyglass.cli import bootstrap_admin
    from spyglass.kernel.logging import configure_logging
    from spyglass.kernel.runtime import Runtime

    if host:
        settings.host = host
    if port:
        settings.port = port
    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the feed's own requests
    load_features()
    runtime = Runtime(settings)
    runtime.prepare_storage()
    first_login = bootstrap_admin(runtime.db, settings)
    demo = setup_demo(runtime.db, settings)
    app = create_app(settings, runtime)
    click.echo(f"Spyglass {__version__} demo listening on {settings.public_url}", err=True)
    if first_login:
        click.echo(first_login, err=True)
    click.echo(
        f"\nDemo: log in at {settings.public_url}/login\n"
        f"  email:    {DEMO_EMAIL}\n  password: {demo.password}\n"
        f"Organization '{DEMO_ORG}': projects {', '.join(demo.projects)} fill in over the next "
        f"minute (a simulated day and a half of releases), then keep receiving live data.\n",
        err=True,
    )
    feeder = DemoFeeder(_local_url(settings), demo)
    threading.Thread(target=feeder.run, name="spyglass-demo-feed", daemon=True).start()
    # Four OpenTelemetry-instrumented services feeding traces, metrics and logs over OTLP.
    otel_shop = start_otel_shop(_local_url(settings), demo.projects[BACKEND[0]][1])
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                    access_log=False, server_header=False)
    finally:
        feeder.stop()
        otel_shop.stop()


def _local_url(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "::", "localhost", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.port}"


# -- the feed ----------------------------------------------------------------------------------

#: The simulated request being handled; before_send moves its events to the simulated time.
_VISIT: contextvars.ContextVar[Visit | None] = contextvars.ContextVar("spyglass_demo_visit",
                                                                      default=None)


@dataclass
class Visit:
    release: str
    environment: str
    server_name: str
    shift: dt.timedelta


def _shift(event: dict[str, Any], delta: dt.timedelta) -> None:
    def move(obj: dict[str, Any]) -> None:
        for key in ("timestamp", "start_timestamp"):
            value = obj.get(key)
            if isinstance(value, str):  # the SDK has serialized the event by now
                try:
                    moved = dt.datetime.fromisoformat(value) + delta
                except ValueError:
                    continue
                obj[key] = moved.isoformat().replace("+00:00", "Z")
            elif isinstance(value, dt.datetime):
                obj[key] = value + delta
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                obj[key] = value + delta.total_seconds()

    move(event)
    crumbs = event.get("breadcrumbs")
    for crumb in (crumbs.get("values", []) if isinstance(crumbs, dict) else crumbs or []):
        if isinstance(crumb, dict):
            move(crumb)
    for span in event.get("spans") or []:
        if isinstance(span, dict):
            move(span)


def _before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    visit = _VISIT.get()
    if visit is not None:
        event["release"] = visit.release
        event["environment"] = visit.environment
        event["server_name"] = visit.server_name
        _shift(event, visit.shift)
    return event


class DemoFeeder:
    def __init__(self, base_url: str, demo: DemoSetup) -> None:
        self.base_url = base_url
        self.demo = demo
        self.users = demo_users()
        self.rng = random.Random()
        self.clock = SimClock()
        self._stop = threading.Event()
        self._http = httpx.Client(timeout=10)

    def stop(self) -> None:
        self._stop.set()

    def dsn(self, project: str) -> str:
        pid, key = self.demo.projects[project]
        scheme, rest = self.base_url.split("://", 1)
        return f"{scheme}://{key}@{rest}/{pid}"

    def run(self) -> None:
        import sentry_sdk

        if not self._wait_ready():
            return
        sentry_sdk.init(
            dsn=self.dsn(BACKEND[0]),
            release=ROLLOUTS[0][0],
            environment="production",
            traces_sample_rate=0.3,
            send_default_pii=True,
            in_app_include=["spyglass.demo_app"],
            # Only what the demo app sends: no logging, threading or framework integrations,
            # which would report on the Spyglass server running in this same process.
            default_integrations=False,
            auto_enabling_integrations=False,
            auto_session_tracking=False,
            before_send=_before_send,
            before_send_transaction=_before_send,
            shutdown_timeout=0,
        )
        last_flush = time.monotonic()
        try:
            for n in itertools.count():
                if self._stop.is_set():
                    break
                started = time.monotonic()
                self.backend_visit()
                if n % 3 == 0:
                    self.browser_visit()
                if time.monotonic() - last_flush > FLUSH_EVERY_S:
                    sentry_sdk.flush(timeout=5)  # sessions are batched; send them now
                    last_flush = time.monotonic()
                rate = RATE_CATCH_UP if self.clock.catching_up() else RATE_LIVE
                self._stop.wait(max(0.0, 1 / rate - (time.monotonic() - started)))
        finally:
            sentry_sdk.flush(timeout=2)
            sentry_sdk.get_client().close(timeout=0)
            self._http.close()

    def _wait_ready(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if self._http.get(self.base_url + "/readyz").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return False

    # -- the Python backend, through the real sentry-sdk ----------------------------------

    def backend_visit(self) -> None:
        import sentry_sdk
        from sentry_sdk.utils import event_from_exception

        from spyglass import demo_app

        sim = self.clock.now()
        real = dt.datetime.now(dt.UTC)
        user = self._pick_user()
        release = release_for(ROLLOUTS, user, real - sim)
        visit = Visit(release, "production" if self.rng.random() < 0.9 else "staging",
                      f"checkout-{self.rng.randint(1, 3)}", sim - real)
        req = demo_app.new_request(self.rng, release, user.id)
        scenario = demo_app.pick(self.rng, req.version)
        if scenario.prepare:
            scenario.prepare(req)
        token = _VISIT.set(visit)
        try:
            with sentry_sdk.isolation_scope() as scope:
                scope.set_user({"id": user.id, "email": user.email, "username": user.username,
                                "ip_address": f"203.0.113.{user.index + 1}"})
                scope.set_tag("region", user.region)
                scope.set_tag("plan", user.plan)
                scope.set_tag("payment_method", self.rng.choice(["card", "card", "paypal",
                                                                 "invoice"]))
                scope.set_context("cart", {"items": len(req.cart["items"]), "coupon": req.coupon})
                scope.start_session(session_mode="application")
                if scope._session is not None:  # started now in the simulated past
                    scope._session.update(started=sim, release=release,
                                          environment=visit.environment)
                sentry_sdk.add_breadcrumb(category="navigation", message=f"{scenario.route}",
                                          data={"from": "/products"})
                sentry_sdk.add_breadcrumb(category="auth", message=f"session of {user.username}",
                                          level="info")
                with sentry_sdk.start_transaction(op="http.server", name=scenario.route,
                                                  source="route") as tx:
                    try:
                        scenario.handler(req)
                    except Exception as exc:  # noqa: BLE001 -- the app's bugs are the point
                        tx.set_status("internal_error")
                        if scenario.fatal:
                            event, hint = event_from_exception(
                                exc, client_options=sentry_sdk.get_client().options,
                                mechanism={"type": "excepthook", "handled": False})
                            event["level"] = "fatal"
                            sentry_sdk.capture_event(event, hint=hint)
                        else:
                            sentry_sdk.capture_exception(exc)
                    else:
                        tx.set_status("ok")
                scope.end_session()
        finally:
            _VISIT.reset(token)

    def _pick_user(self) -> DemoUser:
        # A few regulars and a long tail, as real traffic has.
        return self.users[min(int(self.rng.expovariate(1 / 12)), len(self.users) - 1)]

    # -- the browser project: hand-built envelopes (see the module docstring) --------------

    def browser_visit(self) -> None:
        sim = self.clock.now()
        real = dt.datetime.now(dt.UTC)
        user = self._pick_user()
        release = release_for(BROWSER_ROLLOUTS, user, real - sim)
        pid, key = self.demo.projects[BROWSER[0]]
        ua = self.rng.choice(BROWSER_AGENTS)
        roll = self.rng.random()
        items: list[tuple[dict[str, Any], dict[str, Any]]] = []
        status = "exited"
        if roll < 0.35:
            event = browser_error(self.rng, release, user, ua, sim)
            items.append(({"type": "event"}, event))
            status = "crashed" if event["level"] == "fatal" else "errored"
        items.append(({"type": "session"}, {
            "sid": uuid.uuid4().hex, "did": user.id, "init": True, "status": status,
            "errors": 1 if status != "exited" else 0, "started": _iso(sim),
            "timestamp": _iso(sim), "attrs": {"release": release, "environment": "production",
                                                "user_agent": ua}}))
        body = orjson.dumps({"sent_at": _iso(real), "sdk": BROWSER_SDK}) + b"\n"
        for header, payload in items:
            body += orjson.dumps(header) + b"\n" + orjson.dumps(payload) + b"\n"
        try:
            self._http.post(f"{self.base_url}/api/{pid}/envelope/?sentry_key={key}", content=body,
                            headers={"Content-Type": "text/plain;charset=UTF-8",
                                     "User-Agent": ua})
            if self.rng.random() < 0.08:
                self._http.post(f"{self.base_url}/api/{pid}/security/?sentry_key={key}",
                                content=csp_report(self.rng),
                                headers={"Content-Type": "application/csp-report",
                                         "User-Agent": ua})
        except httpx.HTTPError:
            pass  # the server is stopping


BROWSER_SDK = {"name": "sentry.javascript.browser", "version": "11.12.0"}
BROWSER_AGENTS = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15"),
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/18.1 Mobile/15E148 Safari/604.1"),
]
ASSETS = "https://shop.example/assets"


def _frame(function: str, file: str, line: int, col: int) -> dict[str, Any]:
    return {"function": function, "filename": f"{ASSETS}/{file}", "abs_path": f"{ASSETS}/{file}",
            "lineno": line, "colno": col, "in_app": True}


def browser_error(rng: random.Random, release: str, user: DemoUser, ua: str,
                  at: dt.datetime) -> dict[str, Any]:
    """A JavaScript error event as @sentry/browser would send it from the storefront."""
    kind = rng.choices(["cart", "chunk", "rejection", "search"], weights=[5, 2, 3, 2])[0]
    if kind == "cart":
        exc = {"type": "TypeError",
               "value": "Cannot read properties of undefined (reading 'price')",
               "mechanism": {"type": "auto.browser.global_handlers.onerror", "handled": False},
               "stacktrace": {"frames": [_frame("HTMLButtonElement.onClick", "app.4f1c.js", 1, 88),
                                         _frame("updateBasket", "cart.9a2e.js", 1, 2210),
                                         _frame("renderCartTotal", "cart.9a2e.js", 1, 3345)]}}
    elif kind == "chunk":
        n = rng.randint(100, 999)
        exc = {"type": "ChunkLoadError", "value": f"Loading chunk {n} failed.\n(error: {ASSETS}/"
               f"{n}.js)", "mechanism": {"type": "auto.browser.global_handlers.onunhandledrejection",
                                         "handled": False},
               "stacktrace": {"frames": [_frame("loadRoute", "app.4f1c.js", 1, 5120)]}}
    elif kind == "rejection":
        exc = {"type": "Error", "value": f"Request failed with status {rng.choice([502, 503])}",
               "mechanism": {"type": "auto.browser.global_handlers.onunhandledrejection",
                             "handled": False},
               "stacktrace": {"frames": [_frame("submitOrder", "checkout.77b0.js", 1, 940),
                                         _frame("apiFetch", "api.1d3f.js", 1, 412)]}}
    else:
        exc = {"type": "RangeError", "value": "Invalid time value",
               "mechanism": {"type": "generic", "handled": True},
               "stacktrace": {"frames": [_frame("SearchResults", "search.c01a.js", 1, 1733),
                                         _frame("formatDeliveryDate", "search.c01a.js", 1, 2088)]}}
    return {
        "event_id": uuid.uuid4().hex, "platform": "javascript", "level": "error",
        "timestamp": at.timestamp(), "release": release, "environment": "production",
        "sdk": BROWSER_SDK, "exception": {"values": [exc]},
        "transaction": rng.choice(["/cart", "/checkout", "/search", "/products/:slug"]),
        "request": {"url": f"https://shop.example{rng.choice(['/cart', '/checkout', '/search'])}",
                    "headers": {"User-Agent": ua}},
        "user": {"id": user.id, "email": user.email},
        "tags": {"plan": user.plan},
        # What Sentry's ingest derives from the User-Agent (the SDK itself sends no contexts).
        "contexts": contexts_from_user_agent(ua),
        "breadcrumbs": {"values": [
            {"timestamp": at.timestamp() - 4, "category": "navigation",
             "data": {"from": "/", "to": "/cart"}},
            {"timestamp": at.timestamp() - 1, "category": "ui.click",
             "message": "button#checkout"}]},
    }


def csp_report(rng: random.Random) -> bytes:
    blocked, directive = rng.choice([("https://ads.tracker.example/pixel.js", "script-src-elem"),
                                     ("inline", "script-src-elem"),
                                     ("https://fonts.other.example/a.woff2", "font-src")])
    return orjson.dumps({"csp-report": {
        "document-uri": "https://shop.example/checkout", "effective-directive": directive,
        "violated-directive": directive, "blocked-uri": blocked, "disposition": "enforce",
        "original-policy": "default-src 'self'; report-uri /api/2/security/"}})


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
