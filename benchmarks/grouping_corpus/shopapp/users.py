import re

from .errors import ShopError, ValidationError
from .web import route

EMAIL = re.compile(r"^[\w.+-]+@[\w-]+\.[\w.]+$")
USERS = {}


@route("users.login")
def login(request):
    user = USERS.get(request["email"])
    return user["password_hash"]


@route("users.register")
def register(request):
    if not EMAIL.match(request["email"]):
        raise ValidationError(f"invalid email address: {request['email']}")
    return {"email": request["email"]}


@route("users.profile")
def get_profile(request):
    profile = _find_profile(request["user_id"])
    return profile.display_name


def _find_profile(user_id):
    return None


@route("users.reset")
def reset_password(request):
    try:
        _send_reset(request["email"])
    except OSError as exc:
        raise ShopError(f"password reset for {request['email']} failed") from exc


def _send_reset(email):
    raise TimeoutError(f"smtp.example.com:587 did not answer within 10s for {email}")


@route("users.admin")
def admin_only(request):
    if request["role"] != "admin":
        raise PermissionError(f"user {request['user_id']} with role {request['role']} may not open /admin")


@route("users.age")
def age(request):
    return 2026 - request["profile"]["birth_year"]
