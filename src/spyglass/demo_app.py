"""The checkout service that ``spyglass demo`` runs: a tiny shop backend with real bugs.

Every failure here is a real Python exception raised by real code (a missing dict key, a
division by zero, SQLite refusing a query, a Jinja2 template error ...), so the events the
real ``sentry-sdk`` builds from them carry genuine stack traces, chains and frames. Which
bugs a request can hit depends on the release it runs: 1.4.1 fixes the discount bug of 1.4.0,
and 1.5.0 introduces a shipping bug.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2
import sentry_sdk

CATALOG = {
    "SKU-1001": ("Darjeeling first flush", 14.50),
    "SKU-1002": ("Sencha", 9.90),
    "SKU-1003": ("Assam breakfast", 7.80),
    "SKU-1004": ("Oolong Tie Guan Yin", 18.00),
    "SKU-1005": ("Rooibos vanilla", 6.40),
    "SKU-2001": ("Cast-iron teapot", 54.00),
    "SKU-2002": ("Glass infuser", 19.00),
}
COUPONS = {
    "WELCOME10": {"amount": 10.0, "min_items": 2},
    "SPRING": {"amount": 5.0, "min_items": 1},
    "STAFF": {"amount": 15.0, "min_items": 0},  # the coupon that trips 1.4.0's bug
}


class OrderNotSaved(Exception):
    """The order could not be written (the cause is chained)."""


class PaymentTimeout(TimeoutError):
    pass


class LedgerCorrupted(Exception):
    """Stock ledger and orders disagree: the process must stop (a rare fatal crash)."""


@dataclass
class Request:
    """One simulated shop request: who, what, and the release it runs."""

    release: str
    user_id: str
    cart: dict[str, Any]
    coupon: str | None = None
    address: dict[str, str] | None = None
    rng: random.Random = field(default_factory=random.Random)

    @property
    def version(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self.release.rpartition("@")[2].split("."))


# -- crash sites ---------------------------------------------------------------------------


def lookup_cart_item(cart: dict[str, Any], sku: str) -> dict[str, Any]:
    return cart["items"][sku]  # KeyError when the item was removed in another tab


def apply_discount(req: Request, total: float) -> float:
    coupon = COUPONS[req.coupon or "SPRING"]
    if req.version >= (1, 4, 1) and not coupon["min_items"]:
        return max(0.0, total - coupon["amount"])  # the fix of 1.4.1
    per_item = coupon["amount"] / coupon["min_items"]  # ZeroDivisionError for STAFF in 1.4.0
    return max(0.0, total - per_item * len(req.cart["items"]))


def save_order(req: Request, order_id: int) -> None:
    db = sqlite3.connect(":memory:")
    try:
        with sentry_sdk.start_span(op="db.sql.query", name="INSERT INTO orders_v2"):
            db.execute("INSERT INTO orders_v2 (id, user_id) VALUES (?, ?)", (order_id, req.user_id))
    except sqlite3.OperationalError as exc:  # the migration that adds orders_v2 did not run
        raise OrderNotSaved(f"could not save order {order_id}") from exc
    finally:
        db.close()


def charge_card(req: Request, amount: float) -> None:
    latency = req.rng.uniform(0.5, 4.0)
    with sentry_sdk.start_span(op="http.client", name="POST https://payments.example/v1/charge"):
        time.sleep(0.01)
    if latency > 3.0:
        raise PaymentTimeout(f"payment gateway did not answer within 3.0 s (amount {amount:.2f})")


def validate_quantity(sku: str, quantity: int) -> None:
    if quantity <= 0 or quantity > 20:
        raise ValueError(f"invalid quantity {quantity} for item {sku}")


def render_receipt(req: Request, total: float) -> str:
    # The "money" filter was never registered: the error is raised inside Jinja2's frames.
    env = jinja2.Environment(autoescape=True)
    return env.from_string("Total: {{ total | money }}").render(total=total)


def estimate_shipping(req: Request) -> float:
    if req.version >= (1, 5, 0):
        # 1.5.0 reads the country of the saved address, which guests do not have.
        return 4.90 if req.address.get("country") == "DE" else 9.90  # type: ignore[union-attr]
    return 4.90


def check_ledger(req: Request) -> None:
    raise LedgerCorrupted("stock ledger checksum mismatch after concurrent refund")


# -- requests ------------------------------------------------------------------------------


def cart_total(req: Request) -> float:
    total = 0.0
    for sku, line in req.cart["items"].items():
        with sentry_sdk.start_span(op="db.sql.query", name="SELECT price FROM products WHERE sku = ?"):
            time.sleep(0.002)
        total += CATALOG[sku][1] * line["quantity"]
    return total


def view_cart(req: Request) -> None:
    cart_total(req)
    lookup_cart_item(req.cart, req.rng.choice(list(CATALOG)))


def checkout(req: Request) -> None:
    total = apply_discount(req, cart_total(req))
    total += estimate_shipping(req)
    charge_card(req, total)
    save_order(req, req.rng.randint(10_000, 99_999))


def update_quantity(req: Request) -> None:
    sku = req.rng.choice(list(CATALOG))
    validate_quantity(sku, req.rng.choice([-3, -1, 0, 21, 50, 99]))


def receipt(req: Request) -> None:
    render_receipt(req, cart_total(req))


def payment_webhook(req: Request) -> None:
    ms = req.rng.randint(1200, 4800)
    sentry_sdk.capture_message(f"Payment provider slow: {ms} ms for order {req.rng.randint(1, 9999)}",
                               level="warning")


def nightly_reconcile(req: Request) -> None:
    check_ledger(req)


def browse(req: Request) -> None:
    cart_total(req)


@dataclass
class Scenario:
    route: str
    handler: Callable[[Request], None]
    weight: float
    #: Only requests whose release satisfies this can hit it (None: every release).
    applies: Callable[[tuple[int, ...]], bool] | None = None
    #: Set up the request so the bug triggers.
    prepare: Callable[[Request], None] | None = None
    fatal: bool = False


def _staff(req: Request) -> None:
    req.coupon = "STAFF"


def _guest(req: Request) -> None:
    req.address = None


def _missing_item(req: Request) -> None:
    req.cart["items"].pop(next(iter(req.cart["items"])), None)


SCENARIOS = [
    Scenario("GET /products", browse, 50),
    Scenario("GET /cart", view_cart, 10, prepare=_missing_item),
    Scenario("POST /checkout", checkout, 8, applies=lambda v: v < (1, 4, 1), prepare=_staff),
    Scenario("POST /checkout", checkout, 8, applies=lambda v: v >= (1, 5, 0), prepare=_guest),
    Scenario("POST /checkout", checkout, 9),  # timeouts, then the chained DB error
    Scenario("PATCH /cart/items", update_quantity, 7),
    Scenario("GET /orders/receipt", receipt, 4),
    Scenario("POST /webhooks/payment", payment_webhook, 5),
    Scenario("POST /admin/reconcile", nightly_reconcile, 0.4, fatal=True),
]


def pick(rng: random.Random, release_version: tuple[int, ...]) -> Scenario:
    choices = [s for s in SCENARIOS if s.applies is None or s.applies(release_version)]
    return rng.choices(choices, weights=[s.weight for s in choices])[0]


def new_request(rng: random.Random, release: str, user_id: str) -> Request:
    skus = rng.sample(list(CATALOG), rng.randint(1, 4))
    cart = {"items": {sku: {"quantity": rng.randint(1, 3)} for sku in skus}}
    address = {"country": rng.choice(["DE", "FR", "US", "NL"])}
    return Request(release, user_id, cart, rng.choice([None, "WELCOME10", "SPRING"]), address,
                   rng)
