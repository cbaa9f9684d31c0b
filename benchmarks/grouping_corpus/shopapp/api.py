from .parsing import parse_body, parse_date, parse_ip, parse_uuid
from .web import route


@route("api.since")
def since(request):
    return parse_date(request["since"])


@route("api.object")
def get_object(request):
    return parse_uuid(request["id"])


@route("api.client_ip")
def client_ip(request):
    return parse_ip(request["forwarded_for"])


@route("api.body")
def body(request):
    return parse_body(request["raw"])
