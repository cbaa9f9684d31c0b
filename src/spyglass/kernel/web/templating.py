"""Page rendering for every feature: the Jinja2 environment, the layout's context and the nav.

A feature that has pages does three things, usually at import time of its module:

    from spyglass.kernel.web import templating
    templating.add_template_dir(Path(__file__).parent / "templates")
    templating.register_area("issues", "/o/{org}/p/{project}/issues")

and its route handlers return ``templating.render(request, "errors/issues.html", {...})``
with ``caller``, ``org``, ``project`` and ``role`` in the context, so the layout can draw the
switchers and the navigation. Templates extend ``"layout.html"`` and fill ``{% block content %}``
(and optionally ``title``, ``header``, ``actions``).

``register_area`` must run when the feature module is imported (before ``install``), because
the kernel adds an "area not built yet" page for every area still unregistered when it installs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session

from spyglass import __version__
from spyglass.kernel.meta.models import Organization, Project, Role

TEMPLATES = Path(__file__).parent / "templates"

# -- icons ---------------------------------------------------------------------------------
# Inner markup of 24x24 stroke icons (Feather/Lucide style), drawn by the ``icon()`` macro.

ICONS: dict[str, str] = {
    "issues": '<path d="M10.29 3.86 1.82 18a2 2 0 0 0 1.71 3h16.94a2 2 0 0 0 1.71-3L13.71 3.86a2 2 0 0 0-3.42 0z"/><path d="M12 9v4"/><path d="M12 17h.01"/>',
    "releases": '<path d="M20.59 13.41 13.42 20.58a2 2 0 0 1-2.83 0L2 12V2h10l8.59 8.59a2 2 0 0 1 0 2.82z"/><path d="M7 7h.01"/>',
    "replays": '<circle cx="12" cy="12" r="10"/><polygon points="10 8 16 12 10 16 10 8"/>',
    "performance": '<polygon points="13 2 3 14 12 14 11 22 21 10 12 10 13 2"/>',
    "web-vitals": '<polyline points="22 12 18 12 15 21 9 3 6 12 2 12"/>',
    "analytics": '<path d="M18 20V10"/><path d="M12 20V4"/><path d="M6 20v-6"/>',
    "traces": '<path d="M3 5h9"/><path d="M7 10h10"/><path d="M10 15h11"/><path d="M5 20h6"/>',
    "logs": '<path d="M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z"/><polyline points="14 2 14 8 20 8"/><path d="M16 13H8"/><path d="M16 17H8"/>',
    "metrics": '<polyline points="23 6 13.5 15.5 8.5 10.5 1 18"/><polyline points="17 6 23 6 23 12"/>',
    "monitors": '<circle cx="12" cy="12" r="2"/><path d="M16.24 7.76a6 6 0 0 1 0 8.49"/><path d="M7.76 16.24a6 6 0 0 1 0-8.49"/><path d="M19.07 4.93a10 10 0 0 1 0 14.14"/><path d="M4.93 19.07a10 10 0 0 1 0-14.14"/>',
    "alerts": '<path d="M18 8A6 6 0 0 0 6 8c0 7-3 9-3 9h18s-3-2-3-9"/><path d="M13.73 21a2 2 0 0 1-3.46 0"/>',
    "costs": '<path d="M12 1v22"/><path d="M17 5H9.5a3.5 3.5 0 0 0 0 7h5a3.5 3.5 0 0 1 0 7H6"/>',
    "security": '<path d="M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z"/>',
    "insights": '<circle cx="12" cy="12" r="10"/><polygon points="16.24 7.76 14.12 14.12 7.76 16.24 9.88 9.88 16.24 7.76"/>',
    "settings": '<path d="M4 21v-7"/><path d="M4 10V3"/><path d="M12 21v-9"/><path d="M12 8V3"/><path d="M20 21v-5"/><path d="M20 12V3"/><path d="M1 14h6"/><path d="M9 8h6"/><path d="M17 16h6"/>',
    "key": '<circle cx="7.5" cy="15.5" r="5.5"/><path d="m11.5 11.5 9.5-9.5"/><path d="m15.5 7.5 3 3"/><path d="m18 5 3 3"/>',
    "members": '<path d="M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2"/><circle cx="9" cy="7" r="4"/><path d="M23 21v-2a4 4 0 0 0-3-3.87"/><path d="M16 3.13a4 4 0 0 1 0 7.75"/>',
    "token": '<rect x="3" y="11" width="18" height="11" rx="2"/><path d="M7 11V7a5 5 0 0 1 10 0v4"/>',
    "logout": '<path d="M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4"/><polyline points="16 17 21 12 16 7"/><path d="M21 12H9"/>',
    "overview": '<rect x="3" y="3" width="7" height="7" rx="1"/><rect x="14" y="3" width="7" height="7" rx="1"/><rect x="14" y="14" width="7" height="7" rx="1"/><rect x="3" y="14" width="7" height="7" rx="1"/>',
    "plus": '<path d="M12 5v14"/><path d="M5 12h14"/>',
    "copy": '<rect x="9" y="9" width="13" height="13" rx="2"/><path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1"/>',
    "menu": '<path d="M3 6h18"/><path d="M3 12h18"/><path d="M3 18h18"/>',
    "logo": '<circle cx="10.5" cy="10.5" r="6.5"/><path d="m15.5 15.5 6 6"/><path d="M7.5 10.5a3 3 0 0 1 3-3"/>',
    "chevron": '<polyline points="6 9 12 15 18 9"/>',
}


# -- navigation ----------------------------------------------------------------------------


@dataclass
class NavArea:
    """One area of the product in the sidebar."""

    slug: str
    label: str
    section: str
    #: One honest sentence: what this area does (shown while it is not built yet).
    description: str
    #: Where the area lives once a feature registers it; ``{org}`` and ``{project}`` are slugs.
    path_template: str | None = None

    @property
    def built(self) -> bool:
        return self.path_template is not None

    @property
    def icon(self) -> Markup:
        return Markup(ICONS.get(self.slug, ICONS["overview"]))

    def href(self, org: str, project: str) -> str:
        template = self.path_template or "/o/{org}/p/{project}/" + self.slug
        return template.format(org=org, project=project)


NAV_AREAS: list[NavArea] = [
    NavArea("issues", "Issues", "Application",
            "Groups errors and exceptions sent by Sentry SDKs into issues you can triage, "
            "assign and resolve."),
    NavArea("releases", "Releases", "Application",
            "Shows each release's adoption, crash-free sessions and users, and the issues it "
            "introduced."),
    NavArea("replays", "Replays", "Application",
            "Plays back recorded browser sessions next to the errors that happened in them."),
    NavArea("performance", "Performance", "Application",
            "Shows throughput, latency percentiles and the slowest transactions from Sentry "
            "and OpenTelemetry traces."),
    NavArea("web-vitals", "Web Vitals", "Application",
            "Tracks Core Web Vitals (LCP, INP, CLS) measured in your real users' browsers by "
            "the web-vitals library."),
    NavArea("analytics", "Analytics", "Application",
            "Counts pageviews, visitors, sources and goals from the Plausible tracker, "
            "without cookies or stored IP addresses."),
    NavArea("traces", "Traces", "Observability",
            "Searches distributed traces received over OTLP and draws each one as a span "
            "waterfall."),
    NavArea("logs", "Logs", "Observability",
            "Searches and tails structured logs received over OTLP."),
    NavArea("metrics", "Metrics", "Observability",
            "Charts and queries metrics received over OTLP."),
    NavArea("monitors", "Monitors", "Operations",
            "Checks your sites and services on a schedule (HTTP, TCP, heartbeats) and records "
            "their uptime."),
    NavArea("alerts", "Alerts", "Operations",
            "Evaluates alert rules over your telemetry and notifies people by email, webhook "
            "or chat, with escalation."),
    NavArea("costs", "Costs", "Operations",
            "Imports cloud and Kubernetes costs in the FOCUS format and breaks spending down by "
            "service and team."),
    NavArea("security", "Security", "Operations",
            "Detects threats such as brute-force logins and scanners in your requests and logs."),
    NavArea("insights", "Insights", "Operations",
            "Finds anomalies, suggests likely root causes and forecasts trends across your "
            "telemetry."),
]


def area(slug: str) -> NavArea:
    for candidate in NAV_AREAS:
        if candidate.slug == slug:
            return candidate
    raise KeyError(f"no nav area {slug!r}; known: {[a.slug for a in NAV_AREAS]}")


def register_area(slug: str, path_template: str) -> None:
    """Mark an area as built; ``path_template`` may use ``{org}`` and ``{project}`` (slugs)."""
    area(slug).path_template = path_template


@dataclass
class SettingsTab:
    """A tab of the project settings pages; ``path`` is relative to ``.../settings``."""

    slug: str
    label: str
    path: str


SETTINGS_TABS: list[SettingsTab] = [
    SettingsTab("general", "General", ""),
    SettingsTab("keys", "Client keys (DSN)", "/keys"),
]


def register_settings_tab(slug: str, label: str, path: str) -> None:
    """Add a project settings tab (a feature's own settings page), after the kernel's."""
    if all(t.slug != slug for t in SETTINGS_TABS):
        SETTINGS_TABS.append(SettingsTab(slug, label, path))


def first_area_href(org: str, project: str) -> str:
    """Where a project opens: its first built area, else the first area."""
    built = [a for a in NAV_AREAS if a.built]
    return (built or NAV_AREAS)[0].href(org, project)


@dataclass
class NavLink:
    label: str
    href: str
    icon: Markup
    active: bool = False
    built: bool = True


@dataclass
class NavSection:
    label: str
    links: list[NavLink] = field(default_factory=list)


# -- the environment -----------------------------------------------------------------------

_loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES))])
env = Environment(
    loader=_loader,
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def add_template_dir(path: str | Path) -> None:
    """Let templates in ``path`` be found (after the kernel's own); repeated calls are no-ops."""
    resolved = str(Path(path).resolve())
    for loader in _loader.loaders:
        if isinstance(loader, FileSystemLoader) and resolved in loader.searchpath:
            return
    _loader.loaders.append(FileSystemLoader(resolved))


def static_url(path: str) -> str:
    """URL of a file under ``/static``; the version query busts caches after upgrades."""
    return f"/static/{path.lstrip('/')}?v={__version__}"


def format_datetime(value: dt.datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:  # the metadata DB stores UTC; SQLite hands it back naive
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """'just now', '5 minutes ago', '3 days ago'; 'never' for None."""
    if value is None:
        return "never"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    seconds = int(((now or dt.datetime.now(dt.UTC)) - value).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


env.globals.update(static_url=static_url, icons=ICONS, version=__version__, Role=Role)
env.filters.update(datetime=format_datetime, ago=format_ago)


# -- rendering -----------------------------------------------------------------------------


def _open_db(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.runtime.db.session()


def _nav_context(request: Request, db: Session, context: dict[str, Any]) -> dict[str, Any]:
    """Switcher lists, nav sections and settings links for the layout."""
    from spyglass.kernel.auth import accounts

    caller = context["caller"]
    org: Organization | None = context.get("org")
    project: Project | None = context.get("project")
    orgs = accounts.orgs_of(db, caller.user)
    if org is None and orgs:
        org = orgs[0]
    projects = accounts.projects_of(db, org) if org is not None else []
    role = context.get("role") or (accounts.role_in(db, caller.user, org) if org else None)
    target = project or (projects[0] if projects else None)
    path = request.url.path

    sections: list[NavSection] = []
    current_area: NavArea | None = None
    for a in NAV_AREAS:
        if not sections or sections[-1].label != a.section:
            sections.append(NavSection(a.section))
        href = a.href(org.slug, target.slug) if org and target else ""
        active = bool(href) and project is not None and (path == href or path.startswith(href + "/"))
        if active:
            current_area = a  # switching project keeps you in this area
        sections[-1].links.append(NavLink(a.label, href, a.icon, active, a.built))

    settings: list[NavLink] = []
    if org is not None:
        if target is not None:
            base = f"/o/{org.slug}/p/{target.slug}/settings"
            settings.append(NavLink("Project settings", base, Markup(ICONS["settings"])))
            settings.append(NavLink("Client keys (DSN)", base + "/keys", Markup(ICONS["key"])))
        settings.append(NavLink("Members", f"/o/{org.slug}/settings/members",
                                Markup(ICONS["members"])))
    settings.append(NavLink("API tokens", "/settings/tokens", Markup(ICONS["token"])))
    for link in settings:
        link.active = path == link.href

    return {
        "org": org,
        "project": project,
        "orgs": orgs,
        "projects": projects,
        "role": role,
        "can_admin": bool(role and role.at_least(Role.admin)),
        "nav_sections": sections,
        "settings_links": settings,
        "settings_tabs": SETTINGS_TABS,
        "current_area": current_area,
    }


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
    *,
    db: Session | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` with the common context.

    ``context`` may carry ``caller`` (from ``page_caller``), ``org``, ``project`` and ``role``;
    with a caller the layout gets the sidebar (switchers, nav, settings, logout). Pass the
    request's ``db`` session when you have one so the nav sees uncommitted changes.
    """
    ctx: dict[str, Any] = dict(context or {})
    ctx["request"] = request
    caller = ctx.get("caller")
    ctx.setdefault("csrf_token", caller.csrf_token if caller else "")
    if caller is not None:
        if db is not None:
            ctx.update(_nav_context(request, db, ctx))
        else:
            with _open_db(request) as own:
                ctx.update(_nav_context(request, own, ctx))
    html = env.get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status, headers=headers)


ERROR_TITLES = {
    400: "Bad request",
    403: "You don't have access to this",
    404: "Page not found",
    429: "Too many attempts",
}


def render_error(request: Request, status_code: int, detail: str) -> Response:
    """An HTML error page, inside the app layout when the visitor is logged in."""
    from spyglass.kernel.auth.deps import Caller
    from spyglass.kernel.auth.sessions import COOKIE_NAME, session_for_token

    context: dict[str, Any] = {
        "status_code": status_code,
        "title": ERROR_TITLES.get(status_code, "Something went wrong"),
        "detail": detail,
    }
    token = request.cookies.get(COOKIE_NAME)
    try:
        with _open_db(request) as db:
            login = session_for_token(db, token) if token else None
            if login is not None:
                context["caller"] = Caller(login.user, login)
                return render(request, "error.html", context, status_code, db=db)
    except Exception:  # noqa: BLE001 - an error page must render even when the DB is down
        context.pop("caller", None)
    return render(request, "error.html", context, status_code)
