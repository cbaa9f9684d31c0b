from .errors import NotificationError
from .web import route


@route("notify.email")
def send_email(request):
    try:
        _smtp_send(request["to"], request["subject"])
    except ConnectionRefusedError as exc:
        raise NotificationError(f"could not email {request['to']}") from exc


def _smtp_send(to, subject):
    raise ConnectionRefusedError(111, f"Connection refused by mail-{len(to) % 4}.example.com")


@route("notify.sms")
def send_sms(request):
    raise TimeoutError(f"SMS gateway timeout after {request['timeout']}ms sending to +{request['phone']}")


@route("notify.webhook")
def webhook(request):
    if request["status"] >= 500:
        raise NotificationError(f"POST {request['url']} returned {request['status']} at {request['at']}")


@route("notify.render")
def render(request):
    return request["template"].format(**request["context"])
