"""What the team sees of error tracking: the issues list, an issue, an event, error settings.

Pages are rendered on the server; HTMX swaps the list after a bulk action, and a small script
(``static/errors.js``) adds select-all, shift-click ranges and the ``/`` shortcut. Every page
works without it. Reading needs the viewer role, changing an issue the member role, and the
project's error settings the admin role. Data comes from :mod:`spyglass.errors.queries`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from spyglass import __version__
from spyglass.errors import queries
from spyglass.errors import search as searching
from spyglass.errors.grouping import GroupingConfig, RuleSyntaxError
from spyglass.errors.items import derived_tags
from spyglass.errors.models import ErrorSettings, Issue, IssueStatus
from spyglass.errors.state import Change, StateError, change_status
from spyglass.kernel.auth import accounts
from spyglass.kernel.auth.deps import Caller, db_session, page_caller
from spyglass.kernel.auth.deps import project_by_slug as _project
from spyglass.kernel.meta.models import Organization, Project, Role, utcnow
from spyglass.kernel.web import templating

STATIC = Path(__file__).parent / "static"
ASSETS = "/assets/errors"
PAGE_SIZE = 25
EVENTS_PAGE_SIZE = 50
MAX_LIMIT = 10_000_000

templating.add_template_dir(Path(__file__).parent / "templates")
templating.register_area("issues", "/o/{org}/p/{project}/issues")
templating.register_settings_tab("errors", "Error tracking", "/errors")

router = APIRouter(include_in_schema=False)

#: Status changes offered by the pages: form value → (change, label).
ACTIONS: dict[str, tuple[Change, str]] = {
    "resolve": (Change(IssueStatus.resolved), "Resolved"),
    "resolve_next": (Change(IssueStatus.resolved, in_next_release=True),
                     "Resolved in the next release"),
    "ignore_1h": (Change(IssueStatus.ignored, ignore_minutes=60), "Ignored for 1 hour"),
    "ignore_24h": (Change(IssueStatus.ignored, ignore_minutes=1440), "Ignored for 24 hours"),
    "ignore_7d": (Change(IssueStatus.ignored, ignore_minutes=7 * 1440), "Ignored for 7 days"),
    "ignore_100": (Change(IssueStatus.ignored, ignore_count=100),
                   "Ignored until 100 more events"),
    "ignore": (Change(IssueStatus.ignored), "Ignored"),
    "unresolve": (Change(IssueStatus.unresolved), "Reopened"),
}

#: Fixed messages for ``?done=`` and ``?error=`` after a redirect: no user text is reflected.
NOTICES = {
    "resolve": "Resolved.",
    "resolve_next": "Resolved in the next release: events from the current release won't reopen it.",
    "ignore_1h": "Ignored for 1 hour.",
    "ignore_24h": "Ignored for 24 hours.",
    "ignore_7d": "Ignored for 7 days.",
    "ignore_100": "Ignored until 100 more events arrive.",
    "ignore": "Ignored until you reopen it.",
    "unresolve": "Reopened.",
    "merged": "Issues merged.",
    "unmerged": "Fingerprint split out into a new issue.",
    "settings-saved": "Error settings saved.",
}
ERRORS = {
    "none-selected": "Select at least one issue first.",
    "merge-two": "Select at least two issues to merge.",
    "no-release": "An issue without a release can't be resolved in the next release; "
                  "resolve it now instead.",
    "unknown-action": "That action is not available.",
    "only-hash": "An issue's only fingerprint can't be split out.",
}
_SHORT_REF = re.compile(r"^[A-Z0-9][A-Z0-9_\-]{0,80}$")


# -- helpers ---------------------------------------------------------------------------------


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)




def _base(org: Organization, project: Project) -> str:
    return f"/o/{quote(org.slug)}/p/{quote(project.slug)}"


def _store(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.runtime.store


def _context(caller: Caller, org: Organization, project: Project, role: Role,
             request: Request, **extra: Any) -> dict[str, Any]:
    notice = NOTICES.get(request.query_params.get("done", ""))
    into = request.query_params.get("into", "")
    if notice and into and _SHORT_REF.match(into):
        notice = f"{notice} ({into})"
    return {
        "caller": caller, "org": org, "project": project, "role": role,
        "base": _base(org, project), "can_write": role.at_least(Role.member),
        "can_admin_project": role.at_least(Role.admin),
        "prefix": queries.short_prefix(project.slug),
        "notice": notice, "error": ERRORS.get(request.query_params.get("error", "")),
        "assets": ASSETS, "asset_version": __version__, **extra,
    }


def _issue_or_404(db: Session, project: Project, short_id: str) -> Issue:
    issue = queries.issue_by_short_id(db, project.id, short_id)
    if issue is None:
        raise HTTPException(404, "no such issue")
    return issue


# -- formatting (template filters) -----------------------------------------------------------


def short_ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """Compact relative time as Sentry writes it: '12s', '5min', '3h', '2d', '4mo', '1y'."""
    if value is None:
        return "—"
    value = queries.naive(value)
    seconds = max(0, int(((now or queries.utcnow()) - value).total_seconds()))  # type: ignore[operator]
    for unit, size in (("y", 365 * 86400), ("mo", 30 * 86400), ("w", 7 * 86400), ("d", 86400),
                       ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def compact(n: int | None) -> str:
    """1234 → '1.2k', 2500000 → '2.5M'."""
    n = int(n or 0)
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if n >= size:
            value = n / size
            text = f"{value:.1f}" if value < 10 else f"{value:.0f}"
            return text.removesuffix(".0") + suffix
    return str(n)


def utc(value: dt.datetime | None, seconds: bool = True) -> str:
    if value is None:
        return "—"
    value = queries.naive(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")  # type: ignore[union-attr]


def filesize(n: int | None) -> str:
    n = int(n or 0)
    for size, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= size:
            return f"{n / size:.1f} {suffix}"
    return f"{n} B"


def pretty(value: Any, indent: int = 0) -> str:
    """A value for display: strings as sent (SDKs send Python/JS reprs), containers indented."""
    pad = "  " * (indent + 1)
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = ",\n".join(f"{pad}{k}: {pretty(v, indent + 1)}" for k, v in value.items())
        return "{\n" + inner + "\n" + "  " * indent + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if all(not isinstance(v, (dict, list, tuple)) for v in value) and len(str(value)) < 80:
            return "[" + ", ".join(pretty(v) for v in value) + "]"
        inner = ",\n".join(pad + pretty(v, indent + 1) for v in value)
        return "[\n" + inner + "\n" + "  " * indent + "]"
    return str(value)


def sparkline(series: queries.Series | None, width: int = 128, height: int = 26) -> Markup:
    """Events over time as inline SVG bars (numbers only: nothing to escape)."""
    if series is None or not series.counts:
        return Markup("")
    n = len(series.counts)
    peak = max(series.peak, 1)
    step = width / n
    bar = max(1.0, step - 1.0)
    parts = []
    for i, count in enumerate(series.counts):
        h = 0.0 if count == 0 else max(1.5, (height - 2) * count / peak)
        parts.append(f'<rect x="{i * step:.2f}" y="{height - h:.2f}" width="{bar:.2f}" '
                     f'height="{h:.2f}"><title>{count} event{"s" if count != 1 else ""} · '
                     f'{series.starts[i]:%b %d %H:%M}</title></rect>')
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{series.total} events in the period">'
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" class="spark-base"/>'
        + "".join(parts) + "</svg>")


def bar_chart(series: queries.Series, height: int = 120) -> Markup:
    """The issue page's events chart: SVG bars with a y-axis peak and time labels."""
    n = len(series.counts)
    width = 1000
    peak = max(series.peak, 1)
    nice = _nice_ceiling(peak)
    step = width / max(n, 1)
    gap = min(6.0, step * 0.25)
    bars = []
    for i, count in enumerate(series.counts):
        h = 0.0 if count == 0 else max(2.0, (height - 4) * count / nice)
        end = series.starts[i] + dt.timedelta(seconds=series.bucket_seconds)
        label = f"{series.starts[i]:%b %d %H:%M} – {end:%H:%M} UTC"
        bars.append(f'<g class="bar"><rect class="hit" x="{i * step:.1f}" y="0" width="{step:.1f}" '
                    f'height="{height}"/><rect x="{i * step + gap / 2:.1f}" y="{height - h:.1f}" '
                    f'width="{max(step - gap, 1):.1f}" height="{h:.1f}"/><title>{count} '
                    f'event{"s" if count != 1 else ""} · {label}</title></g>')
    grid = "".join(f'<line x1="0" x2="{width}" y1="{height - (height - 4) * f:.1f}" '
                   f'y2="{height - (height - 4) * f:.1f}" class="grid"/>' for f in (0.5, 1.0))
    ticks = []
    for i in sorted({0, n // 2, n - 1}) if n else []:
        fmt = "%b %d" if series.bucket_seconds >= 86400 else "%b %d %H:%M"
        ticks.append(f'<span style="left:{100 * (i + 0.5) / n:.2f}%">{series.starts[i]:{fmt}}</span>')
    return Markup(
        f'<div class="chart"><div class="chart-y"><span>{nice}</span><span>{nice // 2 if nice > 1 else ""}'
        f'</span><span>0</span></div><div class="chart-plot"><svg viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="none" role="img" aria-label="{series.total} events">{grid}'
        f'<line x1="0" x2="{width}" y1="{height - 0.5}" y2="{height - 0.5}" class="axis"/>'
        + "".join(bars) + f'</svg><div class="chart-x">{"".join(ticks)}</div></div></div>')


def _nice_ceiling(n: int) -> int:
    if n <= 4:
        return max(n, 1) if n <= 1 else 4 if n > 2 else 2
    magnitude = 10 ** math.floor(math.log10(n))
    for m in (1, 2, 2.5, 5, 10):
        if n <= m * magnitude:
            return int(m * magnitude)
    return n


templating.env.filters.update(short_ago=short_ago, compact=compact, utc=utc, filesize=filesize,
                              pretty=pretty, sparkline=sparkline, bar_chart=bar_chart,
                              search_quote=searching.quote)


# -- the event, shaped for the page ----------------------------------------------------------

_SYSTEM_PATH = re.compile(r"(site-packages|dist-packages|node_modules|/lib/python\d|^<frozen|"
                          r"^/usr/lib/|webpack/bootstrap|^internal/|^node:)")


def frame_in_app(frame: dict[str, Any]) -> bool:
    in_app = frame.get("in_app")
    if isinstance(in_app, bool):
        return in_app
    path = str(frame.get("abs_path") or frame.get("filename") or "")
    return bool(path) and not _SYSTEM_PATH.search(path)


def frame_view(frame: dict[str, Any]) -> dict[str, Any]:
    lineno = frame.get("lineno") if isinstance(frame.get("lineno"), int) else None
    lines: list[tuple[int | None, str, bool]] = []
    pre = [x for x in frame.get("pre_context") or [] if isinstance(x, str)]
    post = [x for x in frame.get("post_context") or [] if isinstance(x, str)]
    if isinstance(frame.get("context_line"), str):
        start = lineno - len(pre) if lineno is not None else None
        for i, line in enumerate(pre):
            lines.append((start + i if start is not None else None, line, False))
        lines.append((lineno, frame["context_line"], True))
        for i, line in enumerate(post):
            lines.append((lineno + 1 + i if lineno is not None else None, line, False))
    raw_vars = frame.get("vars")
    variables = sorted(raw_vars.items()) if isinstance(raw_vars, dict) else []
    return {
        "filename": str(frame.get("filename") or frame.get("abs_path") or frame.get("module")
                        or "<unknown>"),
        "abs_path": str(frame.get("abs_path") or ""),
        "module": str(frame.get("module") or ""),
        "function": str(frame.get("function") or ""),
        "package": str(frame.get("package") or ""),
        "lineno": lineno,
        "colno": frame.get("colno") if isinstance(frame.get("colno"), int) else None,
        "in_app": frame_in_app(frame),
        "lines": lines,
        "vars": variables,
    }


def stack_view(stacktrace: Any, newest_first: bool) -> dict[str, Any]:
    """Frames in display order, with runs of system frames folded into groups."""
    frames = [frame_view(f) for f in ((stacktrace or {}).get("frames") or [])
              if isinstance(f, dict)] if isinstance(stacktrace, dict) else []
    any_app = any(f["in_app"] for f in frames)
    # The frame that raised: the last in-app frame (or the last frame) in call order.
    crash = next((i for i in range(len(frames) - 1, -1, -1) if frames[i]["in_app"]),
                 len(frames) - 1)
    for i, f in enumerate(frames):
        f["crash"] = i == crash
    ordered = list(reversed(frames)) if newest_first else frames
    groups: list[dict[str, Any]] = []
    for f in ordered:
        if any_app and not f["in_app"]:
            if groups and groups[-1]["system"]:
                groups[-1]["frames"].append(f)
            else:
                groups.append({"system": True, "frames": [f]})
        else:
            groups.append({"system": False, "frames": [f]})
    return {"groups": groups, "count": len(frames), "app_count": sum(f["in_app"] for f in frames)}


def event_view(data: dict[str, Any], newest_first: bool | None = None) -> dict[str, Any]:
    """Everything the event template shows, in the order Sentry shows it."""
    platform = str(data.get("platform") or "")
    if newest_first is None:
        # Sentry's default: Python tracebacks read oldest first, everything else newest first.
        newest_first = platform != "python"
    exceptions = []
    values = [v for v in (data.get("exception") or {}).get("values") or [] if isinstance(v, dict)]
    for exc in reversed(values):  # the exception that was raised first, its causes below it
        mech = exc.get("mechanism") if isinstance(exc.get("mechanism"), dict) else {}
        exceptions.append({
            "type": str(exc.get("type") or ""), "value": str(exc.get("value") or ""),
            "module": str(exc.get("module") or ""), "mechanism": mech,
            "handled": mech.get("handled") if isinstance(mech.get("handled"), bool) else None,
            "chained": str(mech.get("source") or ""),
            "stack": stack_view(exc.get("stacktrace"), newest_first),
        })
    threads = []
    if not exceptions:
        for t in (data.get("threads") or {}).get("values") or []:
            if isinstance(t, dict) and isinstance(t.get("stacktrace"), dict):
                threads.append({"name": str(t.get("name") or t.get("id") or "thread"),
                                "crashed": bool(t.get("crashed") or t.get("current")),
                                "stack": stack_view(t["stacktrace"], newest_first)})
        if isinstance(data.get("stacktrace"), dict):
            threads.insert(0, {"name": "Stack trace", "crashed": True,
                               "stack": stack_view(data["stacktrace"], newest_first)})
    return {
        "platform": platform,
        "newest_first": newest_first,
        "exceptions": exceptions,
        "threads": threads,
        "message": data.get("message") if isinstance(data.get("message"), str) else "",
        # The event's own tags plus the ones derived from it (release, browser, url ...).
        "tags": sorted((k, v) for k, v in derived_tags(data).items()
                       if k not in queries.HIDDEN_TAGS),
        "breadcrumbs": breadcrumbs_view(data),
        "request": request_view(data.get("request")),
        "user": _dict_items(data.get("user")),
        "contexts": contexts_view(data.get("contexts")),
        "sdk": data.get("sdk") if isinstance(data.get("sdk"), dict) else {},
        "extra": _dict_items(data.get("extra")),
        "modules": _dict_items(data.get("modules")),
        "fingerprint": data.get("fingerprint") if isinstance(data.get("fingerprint"), list) else None,
        "grouping": data.get("grouping") if isinstance(data.get("grouping"), dict) else {},
    }


def _dict_items(value: Any) -> list[tuple[str, Any]]:
    return sorted(value.items()) if isinstance(value, dict) else []


def _pairs(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return [(str(p[0]), p[1]) for p in value if isinstance(p, (list, tuple)) and len(p) == 2]
    return []


def _parse_time(value: Any) -> dt.datetime | None:
    from spyglass.errors.normalize import parse_timestamp

    return parse_timestamp(value)


def breadcrumbs_view(data: dict[str, Any]) -> list[dict[str, Any]]:
    crumbs = [b for b in (data.get("breadcrumbs") or {}).get("values") or [] if isinstance(b, dict)]
    at = _parse_time(data.get("timestamp"))
    out = []
    for b in crumbs:
        ts = _parse_time(b.get("timestamp"))
        offset = (ts - at).total_seconds() if ts and at else None
        out.append({
            "time": ts, "offset": offset,
            "type": str(b.get("type") or "default"), "category": str(b.get("category") or ""),
            "level": str(b.get("level") or "info"),
            "message": str(b.get("message") or ""),
            "data": _dict_items(b.get("data")),
        })
    out.reverse()  # newest first, next to the error
    return out


def request_view(req: Any) -> dict[str, Any] | None:
    if not isinstance(req, dict) or not (req.get("url") or req.get("method")):
        return None
    query = req.get("query_string")
    if isinstance(query, str):
        from urllib.parse import parse_qsl

        query_pairs = parse_qsl(query, keep_blank_values=True)
    else:
        query_pairs = _pairs(query)
    return {
        "method": str(req.get("method") or ""), "url": str(req.get("url") or ""),
        "query": query_pairs, "headers": sorted(_pairs(req.get("headers"))),
        "cookies": _pairs(req.get("cookies")), "data": req.get("data"),
        "env": _dict_items(req.get("env")),
    }


CONTEXT_ORDER = ["trace", "os", "runtime", "browser", "device", "app", "gpu", "culture",
                 "response", "cloud_resource", "otel"]


def contexts_view(contexts: Any) -> list[dict[str, Any]]:
    if not isinstance(contexts, dict):
        return []
    out = []
    for name, ctx in contexts.items():
        if not isinstance(ctx, dict) or not ctx:
            continue
        title = str(ctx.get("name") or name) if name not in ("trace", "otel") else name
        version = str(ctx.get("version") or "")
        items = [(k, v) for k, v in ctx.items() if k != "type"]
        out.append({"key": name, "title": title, "version": version, "items": items})
    out.sort(key=lambda c: (CONTEXT_ORDER.index(c["key"]) if c["key"] in CONTEXT_ORDER
                            else len(CONTEXT_ORDER), c["key"]))
    return out


# -- the issues list -------------------------------------------------------------------------


def _list_url(base: str, **params: Any) -> str:
    # An empty q stays: it means "every issue", while no q means the default (unresolved).
    clean = {k: v for k, v in params.items() if v is not None and (v != "" or k == "q")}
    return f"{base}/issues" + (f"?{urlencode(clean)}" if clean else "")


@router.get("/o/{org_slug}/p/{project_slug}/issues")
def issues_list(
    request: Request,
    org_slug: str,
    project_slug: str,
    q: str | None = None,
    period: str = queries.DEFAULT_PERIOD,
    environment: str = "",
    sort: str = "last_seen",
    cursor: int = 0,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug, Role.viewer)
    base = _base(org, project)
    query = searching.default(q).strip()
    # Typing an issue's short id jumps straight to it, as in Sentry.
    if re.fullmatch(rf"{re.escape(queries.short_prefix(project.slug))}-\d+", query.upper()):
        issue = queries.issue_by_short_id(db, project.id, query)
        if issue is not None:
            return _redirect(f"{base}/issues/{queries.format_short_id(project.slug, issue.short_id)}")
    period = period if period in queries.PERIODS else queries.DEFAULT_PERIOD
    sort = sort if sort in queries.SORTS else "last_seen"
    store = _store(request)
    listing = queries.search_issues(db, store, project.id, project.slug, query, period=period,
                                    environment=environment or None, sort=sort,
                                    offset=max(0, cursor), limit=PAGE_SIZE)
    now = queries.utcnow()
    facet = queries.facets(store, project.id, now - dt.timedelta(days=90))
    first_run = listing.total == 0 and not queries.has_events(store, project.id)
    dsn = None
    if first_run:
        key = accounts.active_key(db, project)
        if key is not None:
            dsn = accounts.dsn(request.app.state.runtime.settings.public_url, project, key)
    state = {"q": query, "period": period, "environment": environment, "sort": sort}

    def url(**changes: Any) -> str:
        return _list_url(base, **{**state, **changes})

    status_tabs = [(label, value, url(q=searching.with_key(query, "is", value), cursor=None))
                   for label, value in (("Unresolved", "unresolved"), ("Resolved", "resolved"),
                                        ("Ignored", "ignored"), ("All", "all"))]
    current_status = (searching.value_of(query, "is") or "all").lower()
    level_options = [("", "Any level")] + [(lv, lv.capitalize()) for lv in
                                           ("fatal", "error", "warning", "info", "debug")]
    return templating.render(request, "errors/issues.html", _context(
        caller, org, project, role, request,
        listing=listing, state=state, url=url, status_tabs=status_tabs,
        current_status=current_status, facets=facet, first_run=first_run, dsn=dsn,
        periods=[p for p in queries.PERIODS if p not in ("1h", "90d")], sorts=queries.SORTS,
        level_value=searching.value_of(query, "level") or "",
        release_value=searching.value_of(query, "release") or "",
        level_options=level_options, with_key=searching.with_key,
        current_url=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
    ), db=db)


def _safe_back(base: str, back: str) -> str:
    """Return to the list the form came from, and nowhere else."""
    if back.startswith(f"{base}/issues") and "\\" not in back and not any(
            ord(c) < 33 for c in back):
        return back
    return f"{base}/issues"


def _with_params(url: str, **params: str) -> str:
    url = re.sub(r"([?&])(done|error|into)=[^&]*", r"\1", url).replace("?&", "?").rstrip("?&")
    return url + ("&" if "?" in url else "?") + urlencode(params)


@router.post("/o/{org_slug}/p/{project_slug}/issues/bulk")
async def issues_bulk(
    request: Request,
    org_slug: str,
    project_slug: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, _ = _project(db, caller, org_slug, project_slug, Role.member)
    form = await request.form()
    base = _base(org, project)
    back = _safe_back(base, str(form.get("back") or ""))
    action = str(form.get("action") or "")
    ids = [int(v) for v in form.getlist("issue") if str(v).isdigit()]
    issues = list(db.scalars(select(Issue).where(Issue.project_id == project.id,
                                                 Issue.id.in_(ids)))) if ids else []
    if not issues:
        return _redirect(_with_params(back, error="none-selected"))
    store = _store(request)
    service = request.app.state.errors
    if action == "merge":
        if len(issues) < 2:
            return _redirect(_with_params(back, error="merge-two"))
        counts = {r["issue_id"]: r["n"] for r in store.rows(
            "SELECT issue_id, count(*) AS n FROM events WHERE project_id = {p:UInt64} AND "
            f"issue_id IN ({', '.join(str(i.id) for i in issues)}) GROUP BY issue_id",
            {"p": project.id})}
        # Like Sentry: the issue with the most events absorbs the others.
        target = max(issues, key=lambda i: (counts.get(i.id, 0), -i.id))
        service.merge(db, target, [i for i in issues if i.id != target.id])
        return _redirect(_with_params(back, done="merged",
                                      into=queries.format_short_id(project.slug, target.short_id)))
    if action not in ACTIONS:
        return _redirect(_with_params(back, error="unknown-action"))
    try:
        for issue in issues:
            change_status(db, store, issue, ACTIONS[action][0])
    except StateError:
        db.rollback()
        return _redirect(_with_params(back, error="no-release"))
    db.commit()
    return _redirect(_with_params(back, done=action))


# -- an issue --------------------------------------------------------------------------------

ISSUE_TABS = [("details", "Details"), ("events", "All events"), ("feedback", "User feedback"),
              ("similar", "Similar issues"), ("merged", "Merged issues")]


def _issue_context(request: Request, db: Session, caller: Caller, org: Organization,
                   project: Project, role: Role, issue: Issue, tab: str) -> dict[str, Any]:
    store = _store(request)
    stats = queries.issue_stats(store, project.id, issue.id)
    period = request.query_params.get("period", "24h")
    period = period if period in ("24h", "7d", "14d", "30d", "90d") else "24h"
    sid = queries.format_short_id(project.slug, issue.short_id)
    base = _base(org, project)
    return _context(
        caller, org, project, role, request, issue=issue, sid=sid, tab=tab, tabs=ISSUE_TABS,
        stats=stats, issue_url=f"{base}/issues/{sid}", period=period,
        chart=queries.issue_series(store, project.id, issue.id, period),
        tags=queries.tag_distribution(store, project.id, issue.id, top=10),
        feedback_count=len(queries.issue_feedback(store, project.id, issue.id)),
        hash_count=len(queries.issue_hashes(db, store, issue)),
        actions=ACTIONS, now=queries.utcnow(),
    )


def _event_context(request: Request, project: Project, issue: Issue,
                   event: queries.StoredEvent) -> dict[str, Any]:
    store = _store(request)
    order = request.query_params.get("order")
    newest_first = {"newest": True, "oldest": False}.get(order or "")
    return {
        "event": event, "view": event_view(event.data, newest_first),
        "nav": queries.neighbors(store, project.id, event),
        "attachments": queries.event_attachments(store, project.id, event.event_id),
        "event_feedback": queries.event_feedback(store, project.id, event.event_id),
    }


@router.get("/o/{org_slug}/p/{project_slug}/issues/{short_id}")
@router.get("/o/{org_slug}/p/{project_slug}/issues/{short_id}/{tab}")
def issue_page(
    request: Request,
    org_slug: str,
    project_slug: str,
    short_id: str,
    tab: str = "details",
    cursor: str | None = None,
    q: str = "",
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug, Role.viewer)
    if tab not in dict(ISSUE_TABS):
        raise HTTPException(404, "no such page")
    issue = _issue_or_404(db, project, short_id)
    base = _base(org, project)
    if issue.merged_into_id is not None:
        target = db.get(Issue, issue.merged_into_id)
        if target is not None and target.project_id == project.id:
            sid = queries.format_short_id(project.slug, target.short_id)
            return _redirect(f"{base}/issues/{sid}")
    ctx = _issue_context(request, db, caller, org, project, role, issue, tab)
    store = _store(request)
    if tab == "details":
        latest = queries.edge_event_id(store, project.id, issue.id)
        event = queries.get_event(store, project.id, latest) if latest else None
        if event is not None:
            ctx.update(_event_context(request, project, issue, event))
    elif tab == "events":
        ctx["events_page"] = queries.issue_events(store, project.id, issue.id, cursor=cursor,
                                                  limit=EVENTS_PAGE_SIZE, query=q)
        ctx["events_query"] = q
        ctx["cursor"] = cursor
    elif tab == "feedback":
        ctx["feedback"] = queries.issue_feedback(store, project.id, issue.id)
    elif tab == "similar":
        latest = queries.edge_event_id(store, project.id, issue.id)
        event = queries.get_event(store, project.id, latest) if latest else None
        ctx["similar"] = queries.similar_issues(db, issue, project.slug, k=5,
                                                example=event.data if event else None)
        ctx["similar_stats"] = {s.issue.id: queries.issue_stats(store, project.id, s.issue.id)
                                for s in ctx["similar"]}
    elif tab == "merged":
        ctx["hashes"] = queries.issue_hashes(db, store, issue)
        ctx["merged"] = queries.merged_issues(db, issue)
    return templating.render(request, "errors/issue.html", ctx, db=db)


@router.post("/o/{org_slug}/p/{project_slug}/issues/{short_id}/status")
def issue_status(
    request: Request,
    org_slug: str,
    project_slug: str,
    short_id: str,
    action: str = Form(""),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, _ = _project(db, caller, org_slug, project_slug, Role.member)
    issue = _issue_or_404(db, project, short_id)
    url = f"{_base(org, project)}/issues/{queries.format_short_id(project.slug, issue.short_id)}"
    if action not in ACTIONS:
        return _redirect(f"{url}?error=unknown-action")
    try:
        change_status(db, _store(request), issue, ACTIONS[action][0])
    except StateError:
        db.rollback()
        return _redirect(f"{url}?error=no-release")
    db.commit()
    return _redirect(f"{url}?done={action}")


@router.post("/o/{org_slug}/p/{project_slug}/issues/{short_id}/merge")
def issue_merge(
    request: Request,
    org_slug: str,
    project_slug: str,
    short_id: str,
    other: str = Form(""),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    """Merge another issue (from the similar issues) into this one."""
    org, project, _ = _project(db, caller, org_slug, project_slug, Role.member)
    issue = _issue_or_404(db, project, short_id)
    into = queries.issue_by_short_id(db, project.id, other)
    if into is None or into.id == issue.id or into.merged_into_id is not None:
        raise HTTPException(404, "no such issue to merge")
    request.app.state.errors.merge(db, issue, [into])
    sid = queries.format_short_id(project.slug, issue.short_id)
    return _redirect(f"{_base(org, project)}/issues/{sid}/merged?done=merged")


@router.post("/o/{org_slug}/p/{project_slug}/issues/{short_id}/unmerge")
def issue_unmerge(
    request: Request,
    org_slug: str,
    project_slug: str,
    short_id: str,
    hash: str = Form(""),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, _ = _project(db, caller, org_slug, project_slug, Role.member)
    issue = _issue_or_404(db, project, short_id)
    sid = queries.format_short_id(project.slug, issue.short_id)
    url = f"{_base(org, project)}/issues/{sid}/merged"
    try:
        new = request.app.state.errors.unmerge(db, issue, hash)
    except StateError:
        db.rollback()
        return _redirect(f"{url}?error=only-hash")
    return _redirect(f"{url}?done=unmerged&into={queries.format_short_id(project.slug, new.short_id)}")


# -- an event --------------------------------------------------------------------------------


def _event_of_issue(request: Request, db: Session, org: Organization, project: Project,
                    issue: Issue, event_id: str, suffix: str = "") -> queries.StoredEvent | Response:
    store = _store(request)
    if event_id in ("latest", "oldest", "recommended"):
        resolved = queries.edge_event_id(store, project.id, issue.id, latest=event_id != "oldest")
        if resolved is None:
            raise HTTPException(404, "this issue has no events")
        event_id = resolved
    event = queries.get_event(store, project.id, event_id)
    if event is None:
        raise HTTPException(404, "no such event")
    if event.issue_id != issue.id:
        # Merged or split since the link was made: go to the issue that holds it now.
        owner = db.get(Issue, event.issue_id)
        if owner is None or owner.project_id != project.id:
            raise HTTPException(404, "no such event")
        sid = queries.format_short_id(project.slug, owner.short_id)
        return _redirect(f"{_base(org, project)}/issues/{sid}/events/{event.event_id}{suffix}")
    return event


@router.get("/o/{org_slug}/p/{project_slug}/issues/{short_id}/events/{event_id}")
def event_page(
    request: Request,
    org_slug: str,
    project_slug: str,
    short_id: str,
    event_id: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug, Role.viewer)
    issue = _issue_or_404(db, project, short_id)
    event = _event_of_issue(request, db, org, project, issue, event_id)
    if isinstance(event, Response):
        return event
    ctx = _issue_context(request, db, caller, org, project, role, issue, "event")
    ctx.update(_event_context(request, project, issue, event))
    return templating.render(request, "errors/issue.html", ctx, db=db)


@router.get("/o/{org_slug}/p/{project_slug}/issues/{short_id}/events/{event_id}/json")
def event_json(
    request: Request,
    org_slug: str,
    project_slug: str,
    short_id: str,
    event_id: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, _ = _project(db, caller, org_slug, project_slug, Role.viewer)
    issue = _issue_or_404(db, project, short_id)
    event = _event_of_issue(request, db, org, project, issue, event_id, "/json")
    if isinstance(event, Response):
        return event
    return Response(orjson.dumps(event.data, option=orjson.OPT_INDENT_2),
                    media_type="application/json",
                    headers={"X-Content-Type-Options": "nosniff"})


@router.get("/o/{org_slug}/p/{project_slug}/issues/{short_id}/events/{event_id}/"
            "attachments/{attachment_id}")
def attachment_download(
    request: Request,
    org_slug: str,
    project_slug: str,
    short_id: str,
    event_id: str,
    attachment_id: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    _, project, _ = _project(db, caller, org_slug, project_slug, Role.viewer)
    issue = _issue_or_404(db, project, short_id)
    store = _store(request)
    event = queries.get_event(store, project.id, event_id)
    att = queries.get_attachment(store, project.id, attachment_id)
    if (event is None or event.issue_id != issue.id or att is None
            or queries.normalize_event_id(att.event_id) != event.event_id):
        raise HTTPException(404, "no such attachment")
    try:
        body = request.app.state.runtime.blobs.get(att.blob_key)
    except (KeyError, FileNotFoundError):
        raise HTTPException(404, "the attachment's file is gone") from None
    name = re.sub(r'[^\w.\- ]', "_", att.filename)[:200] or "attachment"
    # Always a download, never rendered here: an HTML attachment must not run in our origin.
    return Response(body, media_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(att.filename)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    })


# -- error settings --------------------------------------------------------------------------


def _settings_page(request: Request, db: Session, caller: Caller, org: Organization,
                   project: Project, role: Role, values: dict[str, Any],
                   errors: dict[str, str] | None = None, status: int = 200) -> Response:
    store = _store(request)
    now = queries.utcnow()
    spikes = [sp for sp in request.app.state.errors.quotas.spikes if sp.project_id == project.id]
    spike_rows = [{"started": dt.datetime.fromtimestamp(sp.started, dt.UTC).replace(tzinfo=None),
                   "baseline": sp.baseline, "dropped": sp.dropped} for sp in reversed(spikes)]
    all_outcomes = queries.outcomes(store, project.id, now - dt.timedelta(days=1))
    dropped = [o for o in all_outcomes if o.outcome != "client_discard"]
    discards = [o for o in all_outcomes if o.outcome == "client_discard"]
    return templating.render(request, "errors/settings.html", _context(
        caller, org, project, role, request, values=values, field_errors=errors or {},
        spikes=spike_rows, dropped=dropped, discards=discards,
    ), status, db=db)


def _settings_values(settings: ErrorSettings) -> dict[str, Any]:
    return {
        "fingerprint_rules": settings.fingerprint_rules or "",
        "stacktrace_rules": settings.stacktrace_rules or "",
        "sensitive_fields": settings.sensitive_fields or "",
        "safe_fields": settings.safe_fields or "",
        "scrub_ip_addresses": bool(settings.scrub_ip_addresses),
        "rate_limit_per_minute": settings.rate_limit_per_minute or 0,
        "rate_limit_burst": settings.rate_limit_burst or 0,
        "spike_protection": bool(settings.spike_protection),
        "similarity_merge": settings.similarity_merge is not False,
        "apdex_threshold_ms": settings.apdex_threshold_ms or 300,
        "updated_at": settings.updated_at,
    }


@router.get("/o/{org_slug}/p/{project_slug}/settings/errors")
def error_settings(
    request: Request,
    org_slug: str,
    project_slug: str,
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug, Role.viewer)
    settings = db.get(ErrorSettings, project.id) or ErrorSettings(project_id=project.id)
    return _settings_page(request, db, caller, org, project, role, _settings_values(settings))


def _rule_error(kind: str, text: str) -> str | None:
    try:
        if kind == "fingerprint":
            GroupingConfig.from_text(fingerprint_rules=text)
        else:
            GroupingConfig.from_text(stacktrace_rules=text)
    except RuleSyntaxError as exc:
        return f"Line {exc.line}: {exc.message}"
    return None


def _number(value: str, name: str, errors: dict[str, str]) -> int:
    text = (value or "0").strip() or "0"
    if not text.isdigit() or int(text) > MAX_LIMIT:
        errors[name] = f"A whole number from 0 to {MAX_LIMIT:,}."
        return 0
    return int(text)


@router.post("/o/{org_slug}/p/{project_slug}/settings/errors")
def save_error_settings(
    request: Request,
    org_slug: str,
    project_slug: str,
    fingerprint_rules: str = Form(""),
    stacktrace_rules: str = Form(""),
    sensitive_fields: str = Form(""),
    safe_fields: str = Form(""),
    scrub_ip_addresses: str = Form(""),
    rate_limit_per_minute: str = Form("0"),
    rate_limit_burst: str = Form("0"),
    spike_protection: str = Form(""),
    similarity_merge: str = Form(""),
    apdex_threshold_ms: str = Form("300"),
    caller: Caller = Depends(page_caller),
    db: Session = Depends(db_session),
) -> Response:
    org, project, role = _project(db, caller, org_slug, project_slug, Role.admin)
    errors: dict[str, str] = {}
    for kind, text in (("fingerprint", fingerprint_rules), ("stacktrace", stacktrace_rules)):
        message = _rule_error(kind, text)
        if message:
            errors[f"{kind}_rules"] = message
    values = {
        "fingerprint_rules": fingerprint_rules.replace("\r\n", "\n")[:20000],
        "stacktrace_rules": stacktrace_rules.replace("\r\n", "\n")[:20000],
        "sensitive_fields": sensitive_fields.replace("\r\n", "\n")[:5000],
        "safe_fields": safe_fields.replace("\r\n", "\n")[:5000],
        "scrub_ip_addresses": bool(scrub_ip_addresses),
        "rate_limit_per_minute": _number(rate_limit_per_minute, "rate_limit_per_minute", errors),
        "rate_limit_burst": _number(rate_limit_burst, "rate_limit_burst", errors),
        "spike_protection": bool(spike_protection),
        "similarity_merge": bool(similarity_merge),
        "apdex_threshold_ms": _number(apdex_threshold_ms, "apdex_threshold_ms", errors) or 300,
    }
    if errors:
        current = db.get(ErrorSettings, project.id)
        values["updated_at"] = current.updated_at if current else None
        return _settings_page(request, db, caller, org, project, role, values, errors, 400)
    settings = db.get(ErrorSettings, project.id)
    if settings is None:
        settings = ErrorSettings(project_id=project.id)
        db.add(settings)
    for key, value in values.items():
        setattr(settings, key, value)
    settings.updated_at = utcnow()
    db.commit()
    request.app.state.errors.processor.forget_config(project.id)
    return _redirect(f"{_base(org, project)}/settings/errors?done=settings-saved")


def install(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="errors-assets")
    app.include_router(router)
