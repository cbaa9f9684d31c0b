"""Browser security reports: ``POST /api/{project_id}/security/`` for CSP violations.

Browsers send two shapes: ``report-uri`` gives ``application/csp-report`` (one
``{"csp-report": {...}}`` object with dashed field names), ``report-to`` gives the Reporting
API's ``application/reports+json`` (a list of reports; CSP ones have type ``csp-violation``
and a camelCase ``body``). A report cannot carry headers, so the key comes in
``?sentry_key=``. Each violation becomes a Sentry-style event (the ``csp`` interface, a
message such as ``Blocked 'script' from 'evil.example'``) that runs through the same
pipeline as SDK errors, so violations group into issues per directive and blocked host.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, FastAPI, Request, Response

from spyglass.errors.auth import IngestAuthError
from spyglass.errors.envelope import Envelope, Item
from spyglass.errors.ingest import CORS, authorize, ingest_envelope, project_id_of, reply
from spyglass.errors.useragent import contexts_from_user_agent
from spyglass.kernel.ingest.decode import BodyError, read_body

#: Reports are small; a Reporting API batch holds a few dozen at most.
MAX_COMPRESSED = 256 * 1024
MAX_BODY = 1024 * 1024
MAX_REPORTS = 100
MAX_FIELD = 1000

#: The Reporting API's camelCase body fields → the csp-report (and Sentry ``csp``) names.
CAMEL_TO_CSP = {
    "documentURL": "document-uri",
    "referrer": "referrer",
    "blockedURL": "blocked-uri",
    "effectiveDirective": "effective-directive",
    "originalPolicy": "original-policy",
    "sourceFile": "source-file",
    "sample": "script-sample",
    "disposition": "disposition",
    "statusCode": "status-code",
    "lineNumber": "line-number",
    "columnNumber": "column-number",
}
CSP_FIELDS = set(CAMEL_TO_CSP.values()) | {"violated-directive"}

#: What a directive blocks, as Sentry words it: "Blocked 'image' from 'cdn.example'".
KINDS = {
    "child-src": "child", "connect-src": "connect", "font-src": "font", "frame-src": "frame",
    "img-src": "image", "manifest-src": "manifest", "media-src": "media",
    "object-src": "object", "prefetch-src": "prefetch", "script-src": "script",
    "script-src-elem": "script", "script-src-attr": "script", "style-src": "style",
    "style-src-elem": "style", "style-src-attr": "style", "worker-src": "worker",
    "default-src": "resource",
}
KEYWORDS = {"inline", "eval", "wasm-eval", "trusted-types-policy", "trusted-types-sink", "self"}

router = APIRouter(include_in_schema=False)


class ReportError(ValueError):
    """The body is not a CSP report in either shape."""


@router.options("/api/{project_id}/security/")
async def preflight(project_id: str) -> Response:
    # report-to endpoints on another origin get a CORS preflight (application/reports+json).
    return Response(status_code=200, headers=CORS)


@router.post("/api/{project_id}/security/")
async def security_endpoint(project_id: str, request: Request) -> Response:
    try:
        pid = project_id_of(request)
        body = await read_body(request, MAX_COMPRESSED, MAX_BODY)
        pid = await authorize(request, pid, None)
        reports = parse_reports(body)
    except (BodyError, IngestAuthError) as exc:
        return reply(exc.status, {"detail": exc.message})
    except ReportError as exc:
        return reply(400, {"detail": str(exc)})
    user_agent = request.headers.get("user-agent", "")
    items = [Item({"type": "event"}, orjson.dumps(csp_event(r, user_agent))) for r in reports]
    if not items:  # a Reporting API batch of other report types (deprecation ...)
        return reply(200, {})
    return await ingest_envelope(request, pid, Envelope({}, items))


def parse_reports(body: bytes) -> list[dict[str, str]]:
    """The CSP violations in ``body``, each as csp-report fields (dashed names, strings)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReportError(f"report is not valid JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("csp-report"), dict):
        return [_fields(data["csp-report"])]
    if isinstance(data, dict) and "body" in data:
        data = [data]  # a single Reporting API report
    if not isinstance(data, list):
        raise ReportError('expected {"csp-report": {...}} or a list of Reporting API reports')
    reports = []
    for entry in data[:MAX_REPORTS]:
        if not isinstance(entry, dict) or not isinstance(entry.get("body"), dict):
            continue
        if entry.get("type") not in ("csp-violation", None):
            continue
        fields = {CAMEL_TO_CSP[k]: v for k, v in entry["body"].items() if k in CAMEL_TO_CSP}
        if not fields.get("document-uri") and isinstance(entry.get("url"), str):
            fields["document-uri"] = entry["url"]
        reports.append(_fields(fields))
    return reports


def _fields(raw: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in raw.items():
        if key in CSP_FIELDS and isinstance(value, (str, int, float)) and not isinstance(
                value, bool):
            out[key] = str(value)[:MAX_FIELD]
    directive = out.get("effective-directive") or out.get("violated-directive", "").split(" ")[0]
    if not directive:
        raise ReportError("CSP report without effective-directive or violated-directive")
    out["effective-directive"] = directive.lower()
    return out


def blocked_display(blocked_uri: str) -> str:
    """``https://evil.example/x.js`` → ``evil.example``; keywords (inline, eval) stay."""
    if not blocked_uri or blocked_uri in KEYWORDS:
        return blocked_uri
    parts = urlsplit(blocked_uri)
    if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname:
        return parts.netloc.rpartition("@")[2]
    if parts.scheme:
        return parts.scheme + ":"  # data:, blob:, chrome-extension: ...
    return blocked_uri


def message(directive: str, blocked: str) -> str:
    kind = KINDS.get(directive, directive.removesuffix("-src"))
    if blocked == "inline":
        return f"Blocked unsafe inline '{kind}'" if kind == "script" else f"Blocked inline '{kind}'"
    if blocked in ("eval", "wasm-eval"):
        return f"Blocked unsafe {blocked}() '{kind}'"
    if directive == "form-action":
        return f"Blocked 'form' action to '{blocked}'"
    if directive == "frame-ancestors":
        return f"Blocked framing by '{blocked}'"
    return f"Blocked '{kind}' from '{blocked}'" if blocked else f"Blocked '{kind}'"


def csp_event(report: dict[str, str], user_agent: str = "") -> dict[str, Any]:
    """A Sentry event for one violation (platform javascript, the ``csp`` interface)."""
    directive = report["effective-directive"]
    blocked = blocked_display(report.get("blocked-uri", ""))
    document = report.get("document-uri", "")
    text = message(directive, blocked)
    tags = {"effective-directive": directive, "blocked-uri": blocked or "(none)",
            "document-uri": document.split("?")[0][:200]}
    event: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "platform": "javascript",
        "level": "error",
        "logentry": {"formatted": text},
        # The grouping's culprit falls back to the logger for events without frames, so the
        # directive goes there too; ``culprit`` is Sentry's own field for it.
        "culprit": directive,
        "logger": directive,
        "fingerprint": ["csp", directive, blocked],
        "tags": tags,
        "csp": {key.replace("-", "_"): value for key, value in report.items()},
        "request": {"url": document, "headers": {"User-Agent": user_agent[:500]}},
        "contexts": contexts_from_user_agent(user_agent),
    }
    if report.get("referrer"):
        event["request"]["headers"]["Referer"] = report["referrer"]
    return event


def install(app: FastAPI) -> None:
    app.include_router(router)
