import csv
import io

from .errors import OutOfStock
from .web import route

STOCK = {}


@route("stock.reserve")
def reserve(request):
    available = STOCK.get(request["sku"], 0)
    if available < request["quantity"]:
        raise OutOfStock(f"only {available} left of {request['sku']}, wanted {request['quantity']}")


@route("stock.recount")
def recount(request):
    return request["sold"] / request["shelves"]


@route("stock.import")
def import_csv(request):
    rows = list(csv.reader(io.StringIO(request["csv"])))
    return [(row[0], int(row[2])) for row in rows]


@route("stock.lookup")
def lookup(request):
    return _warehouse(request["warehouse"])[request["sku"]]


def _warehouse(name):
    return {"SKU-1": 1}
