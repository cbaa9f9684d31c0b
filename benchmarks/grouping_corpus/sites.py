"""The labelled crash sites of the grouping benchmark: a route of the fake shop and a request
that makes it fail, with data drawn at random so no two events carry the same values.

A site is one place that raises (or logs). Some sites are reached from several routes (the
same helper called by different handlers): they share a label, and the default hash, like
Sentry's, splits them by call path. Some pairs of sites raise the same type in the same
function: their labels differ, and the hash, like Sentry's, cannot tell them apart.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

Request = dict[str, Any]
Site = tuple[str, Callable[[random.Random], tuple[str, Request]]]

NAMES = ["alice", "bob", "carol", "dmitri", "eve", "farah", "gustavo", "hana", "ivan", "jun",
         "kofi", "lena", "mateo", "noor", "oscar", "priya"]
COUNTRIES = ["DE", "FR", "US", "JP", "BR", "IN", "NG", "SE"]


def email(r: random.Random) -> str:
    return f"{r.choice(NAMES)}.{r.randint(1, 999)}@{r.choice(['example.com', 'mail.test', 'shop.io'])}"


def hexid(r: random.Random, n: int = 12) -> str:
    return "".join(r.choice("0123456789abcdef") for _ in range(n))


def uuid4(r: random.Random) -> str:
    h = hexid(r, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def stamp(r: random.Random) -> str:
    return f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z"


def day(r: random.Random) -> str:
    return f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"


def sku(r: random.Random) -> str:
    return f"SKU-{r.randint(100, 99999)}"


def card(r: random.Random, ending: str) -> str:
    return f"4{r.randint(10**10, 10**11 - 1)}{ending}"


def tree(depth: int, leaf_products: bool = True) -> tuple[dict, list[str]]:
    node: dict = {"products": ["p"]} if leaf_products else {}
    path = []
    for level in range(depth):
        name = f"c{level}"
        node = {"children": {name: node}, "products": []}
        path.insert(0, name)
    return node, path


def bundle(depth: int) -> dict:
    item: dict = {"qty": 1}  # no price: the crash at the bottom
    for _ in range(depth):
        item = {"items": [{"price": 2, "qty": 1}, item]}
    return item


def _amount_route(r: random.Random, amount: str) -> tuple[str, Request]:
    route = r.choice(["charge", "refund", "orders.create"])
    if route == "charge":
        return route, {"amount": amount, "card": card(r, "0001")}
    if route == "refund":
        return route, {"amount": amount, "paid": 10}
    return route, {"order_id": r.randint(1, 10**6), "items": [{"sku": "SKU-1"}], "total": amount}


SITES: list[Site] = [
    # billing
    ("parse_amount.int", lambda r: _amount_route(r, f"{r.randint(1, 999)}{r.choice('xk$,')}")),
    ("parse_amount.decimal", lambda r: _amount_route(r, f"{r.randint(1, 99)}.{r.randint(0, 9)}.{r.randint(0, 9)}")),
    ("charge.declined", lambda r: ("charge", {"amount": str(r.randint(1, 900)), "card": card(r, "0002")})),
    ("charge.gateway", lambda r: ("charge", {"amount": str(r.randint(1, 900)), "card": card(r, "0119")})),
    ("charge.no_card", lambda r: ("charge", {"amount": str(r.randint(1, 900))})),
    ("refund.exceeds", lambda r: ("refund", {"amount": str(r.randint(20, 900)), "paid": r.randint(1, 19)})),
    ("convert.currency", lambda r: ("convert", {"amount": r.random() * 100, "currency": r.choice(["JPY", "CHF", "SEK", "NOK"])})),
    ("convert.type", lambda r: ("convert", {"amount": str(r.randint(1, 99)), "currency": "USD"})),
    ("tax.no_rate", lambda r: ("tax", {"amount": r.randint(1, 99), "rates": {}, "country": r.choice(COUNTRIES)})),
    ("coupon.unknown", lambda r: ("coupon", {"amount": 10, "coupons": {}, "code": f"SAVE{r.randint(5, 50)}"})),
    ("coupon.discount_type", lambda r: ("coupon", {"amount": 10, "coupons": {"X": {"discount": str(r.randint(5, 50))}}, "code": "X"})),
    ("split.zero", lambda r: ("split", {"total": r.randint(1, 500), "payers": []})),
    # orders
    ("validate.no_items", lambda r: ("orders.create", {"order_id": r.randint(1, 10**6), "items": []})),
    ("validate.bad_sku", lambda r: ("orders.create", {"order_id": r.randint(1, 10**6), "items": [{"sku": f"sku-{r.randint(1, 999)}"}]})),
    ("orders.missing", lambda r: ("orders.get", {"order_id": r.randint(1, 10**6)})),
    ("quantity.not_int", lambda r: ("orders.quantity", {"quantity": r.choice(["two", "1.5", "", "10pcs", "x"])})),
    ("quantity.nonpositive", lambda r: ("orders.quantity", {"quantity": str(-r.randint(0, 20))})),
    ("ship.no_postcode", lambda r: ("orders.ship", {"order_id": r.randint(1, 10**6), "address": {"city": "Berlin"}})),
    ("save.db_reset", lambda r: ("orders.save", {"order_id": r.randint(1, 10**6)})),
    ("history.mixed_types", lambda r: ("orders.history", {"orders": [{"created": r.randint(1, 9)}, {"created": day(r)}]})),
    ("history.no_created", lambda r: ("orders.history", {"orders": [{"id": r.randint(1, 99)}]})),
    # users
    ("login.unknown_user", lambda r: ("users.login", {"email": email(r)})),
    ("register.bad_email", lambda r: ("users.register", {"email": f"{r.choice(NAMES)}{r.randint(1, 99)}@{r.choice(['', 'x', 'mail'])}"})),
    ("profile.none", lambda r: ("users.profile", {"user_id": r.randint(1, 10**6)})),
    ("reset.smtp_timeout", lambda r: ("users.reset", {"email": email(r)})),
    ("admin.forbidden", lambda r: ("users.admin", {"user_id": r.randint(1, 10**6), "role": r.choice(["viewer", "editor", "guest"])})),
    ("age.missing", lambda r: ("users.age", {"profile": {"name": r.choice(NAMES)}})),
    ("age.type", lambda r: ("users.age", {"profile": {"birth_year": str(r.randint(1950, 2010))}})),
    # inventory
    ("reserve.out_of_stock", lambda r: ("stock.reserve", {"sku": sku(r), "quantity": r.randint(1, 50)})),
    ("recount.zero", lambda r: ("stock.recount", {"sold": r.randint(1, 500), "shelves": 0})),
    ("import.short_row", lambda r: ("stock.import", {"csv": f"{sku(r)},{r.randint(1, 9)}\n"})),
    ("import.bad_int", lambda r: ("stock.import", {"csv": f"{sku(r)},shelf,{r.choice(['n/a', 'ten', '?'])}\n"})),
    ("lookup.missing_sku", lambda r: ("stock.lookup", {"warehouse": r.choice(["berlin", "lyon"]), "sku": sku(r)})),
    # catalog
    ("walk.missing_child", lambda r: (lambda t: ("catalog.walk", {"tree": t[0], "path": t[1] + [f"c{r.randint(50, 99)}"]}))(tree(r.randint(0, 6)))),
    ("walk.no_products", lambda r: (lambda t: ("catalog.walk", {"tree": t[0], "path": t[1]}))(tree(r.randint(1, 6), leaf_products=False))),
    ("bundle.no_price", lambda r: ("catalog.bundle", {"bundle": {"items": [bundle(r.randint(0, 4))]}})),
    ("price.format", lambda r: ("catalog.price", {"price": str(r.randint(1, 99)), "currency": "EUR"})),
    ("slug.none", lambda r: ("catalog.slug", {"title": None, "id": r.randint(1, 99)})),
    # search
    ("query.bad_regex", lambda r: ("search.query", {"pattern": r.choice(["(unclosed", "[a-", "*x", "a{2,1}", "(?P<n>x"]) + str(r.randint(0, 9))})),
    ("page.not_int", lambda r: ("search.page", {"page": r.choice(["first", "1a", "", "two"]), "q": r.choice(NAMES)})),
    ("page.negative", lambda r: ("search.page", {"page": str(-r.randint(0, 9)), "q": r.choice(NAMES)})),
    ("facets.type", lambda r: ("search.facets", {"counts": [r.randint(1, 9), str(r.randint(1, 9))]})),
    ("sort.mixed", lambda r: ("search.sort", {"results": [r.randint(1, 9), r.choice(NAMES)]})),
    # notify
    ("email.refused", lambda r: ("notify.email", {"to": email(r), "subject": f"Order {r.randint(1, 10**6)} shipped"})),
    ("sms.timeout", lambda r: ("notify.sms", {"timeout": r.choice([500, 1000, 2500]), "phone": r.randint(10**9, 10**10)})),
    ("webhook.5xx", lambda r: ("notify.webhook", {"status": r.choice([500, 502, 503, 504]), "url": f"https://hooks.{r.choice(NAMES)}.dev/h/{hexid(r, 16)}", "at": stamp(r)})),
    ("render.missing_key", lambda r: ("notify.render", {"template": r.choice(["Hi {name}, order {order} shipped", "Dear {title} {name}"]), "context": {"order": r.randint(1, 99)}})),
    ("render.index", lambda r: ("notify.render", {"template": "Total: {0} {1}", "context": {"x": r.randint(1, 9)}})),
    # reports
    ("monthly.zero", lambda r: ("reports.monthly", {"revenue": r.randint(1, 10**5), "orders": 0})),
    ("range.bad_start", lambda r: ("reports.range", {"start": f"{r.randint(1, 28)}/{r.randint(1, 12)}/2026", "end": day(r)})),
    ("range.bad_end", lambda r: ("reports.range", {"start": day(r), "end": f"{r.randint(1, 28)}.{r.randint(1, 12)}.2026"})),
    ("aggregate.none", lambda r: ("reports.aggregate", {"rows": [{"amount": r.randint(1, 9)}, {"amount": None}]})),
    ("aggregate.missing", lambda r: ("reports.aggregate", {"rows": [{"amount": r.randint(1, 9)}, {"total": 3}]})),
    ("export.unicode", lambda r: ("reports.export", {"text": f"{r.choice(NAMES)} paid {r.randint(1, 99)} €"})),
    ("top.index", lambda r: ("reports.top", {"ranking": list(range(r.randint(0, 5))), "n": r.randint(5, 10)})),
    # storage
    ("read.not_found", lambda r: ("storage.read", {"path": f"/var/lib/shop/blobs/{hexid(r, 2)}/{hexid(r, 24)}.bin"})),
    ("cache.miss", lambda r: ("storage.cache", {"key": f"session:{hexid(r, 16)}"})),
    ("query.deadlock", lambda r: ("storage.query", {"row": r.randint(1, 10**7), "table": r.choice(["orders", "payments", "carts"]), "txid": r.randint(10**5, 10**6)})),
    ("pool.exhausted", lambda r: ("storage.pool", {"size": r.choice([10, 20, 50]), "wait": r.random() * 30})),
    ("s3.denied", lambda r: ("storage.s3", {"tenant": r.randint(1, 999), "key": f"{uuid4(r)}.png"})),
    # api (stdlib parsers below in-app frames)
    ("api.bad_date", lambda r: ("api.since", {"since": r.choice([f"{r.randint(1, 28)}.{r.randint(1, 12)}.2026", "yesterday", f"2026/{r.randint(1, 12)}/01"])})),
    ("api.bad_uuid", lambda r: ("api.object", {"id": hexid(r, r.randint(5, 30))})),
    ("api.bad_ip", lambda r: ("api.client_ip", {"forwarded_for": f"{r.randint(256, 999)}.{r.randint(0, 255)}.0.1"})),
    ("api.bad_json", lambda r: ("api.body", {"raw": "{" + f'"id": {r.randint(1, 99)}, ' * r.randint(0, 3) + r.choice(["bad", "'x': 1", ""])})),
    # messages and logs
    ("msg.nightly", lambda r: ("jobs.nightly", {"failed": r.randint(1, 99), "total": r.randint(100, 10**5)})),
    ("msg.stale_cart", lambda r: ("jobs.stale", {"cart": hexid(r, 10), "email": email(r), "since": stamp(r)})),
    ("msg.customer_refund", lambda r: ("jobs.customer", {"name": f"{r.choice(NAMES).title()} {r.choice(['Smith', 'Okafor', 'Tanaka', 'Silva', 'Novak'])}"})),
    ("log.retry", lambda r: ("jobs.retry", {"job": f"sync-{hexid(r, 8)}", "attempt": r.randint(1, 5)})),
    ("log.webhook", lambda r: ("jobs.webhook_log", {"url": f"https://api.{r.choice(NAMES)}.io/hook", "status": r.choice([400, 404, 500])})),
    ("log.cleanup", lambda r: ("jobs.cleanup", {"files": [], "file": f"/tmp/upload-{hexid(r, 8)}.part"})),
    ("msg.quota", lambda r: ("jobs.quota", {"tenant": r.choice(NAMES), "used": r.randint(11, 99), "limit": 10})),
    ("log.heartbeat", lambda r: ("jobs.heartbeat", {"worker": f"worker-{r.randint(1, 16)}", "at": stamp(r)})),
]
