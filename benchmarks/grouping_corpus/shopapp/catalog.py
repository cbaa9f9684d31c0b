from .web import route


@route("catalog.walk")
def walk(request):
    return walk_category(request["tree"], request["path"])


def walk_category(tree, path):
    # Recursion: the stack depth follows the data; grouping must not.
    if not path:
        return tree["products"]
    return walk_category(tree["children"][path[0]], path[1:])


@route("catalog.bundle")
def bundle(request):
    return expand_bundle(request["bundle"])


def expand_bundle(bundle):
    # Mutual recursion: bundle -> item -> bundle ...
    return [expand_item(item) for item in bundle["items"]]


def expand_item(item):
    if "items" in item:
        return expand_bundle(item)
    return item["price"] * item["qty"]


@route("catalog.price")
def render_price(request):
    return "{:.2f} {}".format(request["price"], request["currency"])


@route("catalog.slug")
def slugify(request):
    return request["title"].lower().replace(" ", "-")
