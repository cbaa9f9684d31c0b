import re

from .web import route


@route("search.query")
def build_query(request):
    return re.compile(request["pattern"])


@route("search.page")
def paginate(request):
    page = int(request["page"])
    if page < 1:
        raise ValueError(f"page must be >= 1, got {page} (query {request['q']!r})")
    return page


@route("search.facets")
def facets(request):
    return sum(request["counts"])


@route("search.sort")
def sort_results(request):
    return sorted(request["results"])
