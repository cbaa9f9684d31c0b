from .errors import DatabaseError, ShopError, ValidationError
from .parsing import parse_amount, parse_quantity
from .web import route

ORDERS = {}


@route("orders.create")
def create_order(request):
    validate_order(request)
    total = parse_amount(request["total"])
    return {"total": total}


def validate_order(order):
    # Two raise sites of one type in one function: Sentry's hash cannot tell them apart.
    if not order.get("items"):
        raise ValidationError(f"order {order['order_id']} has no items")
    for item in order["items"]:
        if not item["sku"].isupper():
            raise ValidationError(f"unknown sku {item['sku']!r} in order {order['order_id']}")


@route("orders.get")
def load_order(request):
    return ORDERS[request["order_id"]]


@route("orders.quantity")
def set_quantity(request):
    return parse_quantity(request["quantity"])


@route("orders.ship")
def ship_order(request):
    try:
        _book_courier(request["order_id"], request["address"])
    except KeyError as exc:
        raise ShopError(f"cannot ship order {request['order_id']}") from exc


def _book_courier(order_id, address):
    return address["postcode"]


@route("orders.save")
def save_order(request):
    try:
        _insert("orders", request["order_id"])
    except ConnectionError as exc:
        raise DatabaseError(f"INSERT INTO orders failed for id={request['order_id']}") from exc


def _insert(table, row_id):
    raise ConnectionResetError(f"connection to db-{row_id % 3}.internal:5432 reset by peer")


@route("orders.history")
def order_history(request):
    return sorted(request["orders"], key=lambda o: o["created"])
