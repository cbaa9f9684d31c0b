from .errors import DatabaseError, ServiceUnavailable
from .web import route


@route("storage.read")
def read_blob(request):
    with open(request["path"], "rb") as f:
        return f.read()


@route("storage.cache")
def cache_get(request):
    return _cache()[request["key"]]


def _cache():
    return {}


@route("storage.query")
def query(request):
    raise DatabaseError(
        f"deadlock detected while updating row {request['row']} in table {request['table']} "
        f"(transaction {request['txid']})"
    )


@route("storage.pool")
def acquire(request):
    raise ServiceUnavailable(f"connection pool exhausted: {request['size']} of {request['size']} in use for {request['wait']:.1f}s")


@route("storage.s3")
def s3_put(request):
    raise PermissionError(f"Access Denied for s3://bucket-{request['tenant']}/uploads/{request['key']}")
