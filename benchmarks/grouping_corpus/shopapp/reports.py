import datetime

from .web import route


@route("reports.monthly")
def monthly(request):
    return request["revenue"] / request["orders"]


@route("reports.range")
def date_range(request):
    start = datetime.datetime.strptime(request["start"], "%Y-%m-%d")
    end = datetime.datetime.strptime(request["end"], "%Y-%m-%d")
    return (end - start).days


@route("reports.aggregate")
def aggregate(request):
    total = 0
    for row in request["rows"]:
        total += row["amount"]
    return total


@route("reports.export")
def export(request):
    return request["text"].encode("ascii")


@route("reports.top")
def top_products(request):
    return request["ranking"][request["n"]]
