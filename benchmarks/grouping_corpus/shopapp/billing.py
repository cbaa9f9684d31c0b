from .errors import PaymentDeclined, ServiceUnavailable
from .parsing import parse_amount
from .web import route

RATES = {"EUR": 1.0, "USD": 1.08, "GBP": 0.86}


@route("charge")
def charge(request):
    amount = parse_amount(request["amount"])
    return _authorize(request["card"], amount)


@route("refund")
def refund(request):
    amount = parse_amount(request["amount"])
    if amount > request["paid"]:
        raise ValueError(f"refund of {amount} exceeds payment of {request['paid']}")
    return amount


def _authorize(card, amount):
    if card.endswith("0002"):
        raise PaymentDeclined(f"card ending {card[-4:]} declined for {amount} EUR: insufficient funds")
    if card.endswith("0119"):
        raise ServiceUnavailable(f"payment gateway https://pay.example.com/v2/auth/{card[-4:]} timed out after 30s")
    return {"ok": True}


@route("convert")
def convert(request):
    return request["amount"] * RATES[request["currency"]]


@route("tax")
def compute_tax(request):
    rate = request["rates"].get(request["country"])
    return request["amount"] * rate


@route("coupon")
def apply_coupon(request):
    coupon = request["coupons"][request["code"]]
    return request["amount"] * (1 - coupon["discount"] / 100)


@route("split")
def split_bill(request):
    return request["total"] / len(request["payers"])
