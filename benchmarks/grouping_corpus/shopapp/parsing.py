import datetime
import ipaddress
import json
import uuid
from decimal import Decimal


def parse_amount(text):
    return Decimal(text) if "." in text else int(text)


def parse_date(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d")


def parse_uuid(text):
    return uuid.UUID(text)


def parse_ip(text):
    return ipaddress.ip_address(text)


def parse_body(raw):
    return json.loads(raw)


def parse_quantity(text):
    value = int(text)
    if value <= 0:
        raise ValueError(f"quantity must be positive, got {value}")
    return value
