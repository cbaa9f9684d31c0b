"""Trace search and the trace page: real OpenTelemetry SDK traces across two services, and
hand-built OTLP JSON traces with tricky shapes (missing parent, one trace over several
requests, clock skew), on a live server; the waterfall tree and critical path on known spans.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.request
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from spyglass.otel import traces_queries as tq
from spyglass.otel.api import SpanOut

PASSWORD = "correct horse battery"
PROPAGATOR = TraceContextTextMapPropagator()
NOW_NS = time.time_ns()

# -- helpers shared with test_servicemap.py and test_traces_browser.py -----------------------


def web_login(live: Any, email: str = "ada@example.com", role: str = "viewer") -> httpx.Client:
    """An httpx client logged in to ``live`` as a member (``role``) of the tenant's org."""
    from spyglass.kernel.auth import accounts
    from spyglass.kernel.meta.models import Project, Role

    with live.runtime.db.session() as s:
        project = s.get(Project, live.tenant.project_id)
        org = project.organization
        accounts.create_user(s, email, PASSWORD)
        accounts.set_member(s, org, email, Role(role))
        live.org_slug, live.project_slug = org.slug, project.slug
        s.commit()
    client = httpx.Client(base_url=live.url, timeout=30)
    r = client.post("/login", data={"email": email, "password": PASSWORD},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def attrs(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for k, v in values.items():
        if isinstance(v, bool):
            out.append({"key": k, "value": {"boolValue": v}})
        elif isinstance(v, int):
            out.append({"key": k, "value": {"intValue": str(v)}})
        else:
            out.append({"key": k, "value": {"stringValue": str(v)}})
    return out


def span(trace: str, span_id: str, parent: str, name: str, start_ms: float, ms: float, *,
         kind: int = 2, error: bool = False, base_ns: int = 0, **attributes: Any
         ) -> dict[str, Any]:
    """An OTLP JSON span starting ``start_ms`` after ``base_ns`` (default: a minute ago)."""
    t0 = (base_ns or NOW_NS - 60 * 10**9) + int(start_ms * 1e6)
    out: dict[str, Any] = {
        "traceId": trace, "spanId": span_id, "name": name, "kind": kind,
        "startTimeUnixNano": str(t0), "endTimeUnixNano": str(t0 + int(ms * 1e6)),
        "attributes": attrs(attributes), "status": {"code": 2 if error else 0},
    }
    if parent:
        out["parentSpanId"] = parent
    return out


def otlp(service: str, spans: list[dict[str, Any]], **resource: Any) -> dict[str, Any]:
    return {"resourceSpans": [{
        "resource": {"attributes": attrs({"service.name": service, **resource})},
        "scopeSpans": [{"scope": {"name": "handmade", "version": "1"}, "spans": spans}],
    }]}


def send(live: Any, body: dict[str, Any]) -> None:
    r = httpx.post(live.url + "/v1/traces", json=body, headers=live.headers())
    assert r.status_code == 200, r.text


T_SPLIT = "1" * 32   # one trace in three requests, with a span whose parent never arrives
T_SKEW = "2" * 32    # a server span whose clock runs 30 ms behind its caller's
T_OTHER = "3" * 32   # a plain fast trace, for the filters


def send_handmade(live: Any) -> None:
    send(live, otlp("gateway", [
        span(T_SPLIT, "a" * 16, "", "GET /orders", 0, 120, **{"http.route": "/orders",
             "http.request.method": "GET", "http.response.status_code": 200}),
        span(T_SPLIT, "b" * 16, "a" * 16, "call orders", 10, 100, kind=3,
             **{"peer.service": "orders"}),
    ], **{"k8s.pod.name": "gateway-7f9c", "service.version": "2.4.1"}))
    send(live, otlp("orders", [
        span(T_SPLIT, "c" * 16, "b" * 16, "GET /orders/{id}", 20, 80,
             **{"http.route": "/orders/{id}", "tenant": "acme"}),
    ], **{"k8s.pod.name": "orders-1"}))
    send(live, otlp("orders", [
        span(T_SPLIT, "d" * 16, "c" * 16, "SELECT orders", 30, 50, kind=3,
             **{"db.system": "postgresql", "db.statement": "SELECT * FROM orders"}),
        span(T_SPLIT, "e" * 16, "f" * 16, "late callback", 60, 10, kind=1),  # parent missing
    ], **{"k8s.pod.name": "orders-1"}))
    send(live, otlp("web", [
        span(T_SKEW, "1" * 16, "", "checkout", 0, 200),
        span(T_SKEW, "2" * 16, "1" * 16, "POST /pay", 50, 100, kind=3),
    ]))
    send(live, otlp("payments", [
        # Starts 10 ms before its caller, by the payments host's clock: skew.
        span(T_SKEW, "3" * 16, "2" * 16, "pay", 40, 60, error=True,
             **{"http.route": "/pay", "http.response.status_code": 502}),
        span(T_SKEW, "4" * 16, "3" * 16, "charge card", 45, 30, kind=1),
    ]))
    send(live, otlp("gateway", [
        span(T_OTHER, "9" * 16, "", "GET /health", 0, 2, **{"http.route": "/health"}),
    ], **{"k8s.pod.name": "gateway-7f9c", "service.version": "2.4.1"}))


def sdk_two_services(live: Any) -> str:
    """frontend → backend over real HTTP with W3C trace context; returns the trace id."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    def provider(service: str) -> TracerProvider:
        p = TracerProvider(resource=Resource.create({"service.name": service,
                                                     "service.version": "1.0"}))
        p.add_span_processor(SimpleSpanProcessor(HttpSpans(endpoint=live.url + "/v1/traces",
                                                           headers=live.headers())))
        return p

    frontend, backend = provider("frontend"), provider("backend")
    btracer = backend.get_tracer("backend.http")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ctx = PROPAGATOR.extract({k.lower(): v for k, v in self.headers.items()})
            with btracer.start_as_current_span("GET /stock/{sku}", context=ctx,
                                               kind=SpanKind.SERVER,
                                               attributes={"http.route": "/stock/{sku}"}), \
                    btracer.start_as_current_span("SELECT stock", kind=SpanKind.CLIENT,
                                                  attributes={"db.system": "postgresql"}):
                time.sleep(0.005)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tracer = frontend.get_tracer("frontend.http")
    try:
        with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER,
                                          attributes={"http.route": "/checkout",
                                                      "http.response.status_code": 500,
                                                      "cart.items": 3}) as root:
            with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT,
                                              attributes={"peer.service": "backend"}):
                headers: dict[str, str] = {}
                PROPAGATOR.inject(headers)
                url = f"http://127.0.0.1:{server.server_port}/stock/42"
                urllib.request.urlopen(urllib.request.Request(url, headers=headers)).read()
            root.record_exception(ValueError("payment declined"))
            root.set_status(Status(StatusCode.ERROR, "payment declined"))
    finally:
        server.shutdown()
    frontend.force_flush()
    backend.force_flush()
    return format(root.get_span_context().trace_id, "032x")


def row_ids(html: str) -> list[tuple[str, int]]:
    """(span id, depth) of the waterfall rows, in order."""
    return [(m.group(1), int(m.group(2))) for m in re.finditer(
        r'<div class="wf-row[^"]*" id="row-([0-9a-f]{16})"[^>]*data-depth="(\d+)"', html)]


def trace_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-trace-id="([0-9a-f]{32})"', html)


@pytest.fixture
def traces(live):  # type: ignore[no-untyped-def]
    send_handmade(live)
    sdk_trace = sdk_two_services(live)
    client = web_login(live)
    live.base = f"/o/{live.org_slug}/p/{live.project_slug}"
    yield live, client, sdk_trace
    client.close()


# -- the waterfall on known spans (no server) ---------------------------------------------------

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def out(span_id: str, parent: str, start_ms: float, ms: float, service: str = "svc",
        name: str = "") -> SpanOut:
    start = T0 + dt.timedelta(milliseconds=start_ms)
    return SpanOut(trace_id="f" * 32, span_id=span_id, parent_span_id=parent, service=service,
                   name=name or span_id, kind="internal", start=start,
                   end=start + dt.timedelta(milliseconds=ms), duration_ns=int(ms * 1e6),
                   status="unset", status_message="", scope={}, attributes={}, resource={},
                   events=[], links=[], source="otlp")


def segments(tree: tq.Tree) -> list[tuple[str, float, float]]:
    return [(sid, (lo - tree.start_us) / 1000, (hi - tree.start_us) / 1000)
            for sid, lo, hi in tq.critical_path(_fresh(tree))]


def _fresh(tree: tq.Tree) -> tq.Tree:
    for n in tree.rows:
        n.critical = []
    return tree


def test_critical_path_skips_children_that_did_not_block():
    # root 0-100 runs A 10-40 and B 30-90 (B's child B1 40-60): B started while A was still
    # running, so A held nothing up; the root's own time covers 0-30.
    tree = tq.build_tree([out("root", "", 0, 100), out("A", "root", 10, 30),
                          out("B", "root", 30, 60), out("B1", "B", 40, 20)])
    assert [(n.span_id, n.depth) for n in tree.rows] == [("root", 0), ("A", 1), ("B", 1),
                                                         ("B1", 2)]
    assert segments(tree) == [("root", 0, 30), ("B", 30, 40), ("B1", 40, 60), ("B", 60, 90),
                              ("root", 90, 100)]
    assert tree.critical_ids == ["root", "B", "B1"]


def test_critical_path_through_sequential_children():
    # A 10-25 finished before B 30-90 started: the path goes root, A, root, B, root.
    tree = tq.build_tree([out("root", "", 0, 100), out("A", "root", 10, 15),
                          out("B", "root", 30, 60)])
    assert segments(tree) == [("root", 0, 10), ("A", 10, 25), ("root", 25, 30), ("B", 30, 90),
                              ("root", 90, 100)]


def test_critical_path_cuts_children_that_outlive_their_parent():
    # Asynchronous work of the same service (no skew correction): cut at the parent's end.
    tree = tq.build_tree([out("root", "", 0, 50), out("async", "root", 20, 80)])
    assert tree.end_us - tree.start_us == 100_000
    assert segments(tree) == [("root", 0, 20), ("async", 20, 50)]


def test_orphans_and_cycles_become_top_level_rows():
    tree = tq.build_tree([out("root", "", 0, 100), out("kid", "root", 10, 10),
                          out("orphan", "missing", 120, 30),
                          out("x", "y", 5, 1), out("y", "x", 6, 1),   # a parent cycle
                          out("root", "", 0, 100)])                  # a duplicate
    assert [(n.span_id, n.depth) for n in tree.rows] == [
        ("root", 0), ("kid", 1), ("orphan", 0), ("x", 0), ("y", 1)]
    assert [n.orphan for n in tree.roots] == [False, True, True]
    # The virtual root spans the trace: the path runs through the root, then the orphan.
    assert segments(tree) == [("root", 0, 10), ("kid", 10, 20), ("root", 20, 100),
                              ("orphan", 120, 150)]


def test_clock_skew_moves_a_remote_child_inside_its_parent():
    tree = tq.build_tree([out("call", "", 0, 100, service="web"),
                          out("server", "call", -20, 60, service="api"),
                          out("db", "server", -10, 20, service="api"),
                          out("local", "call", -5, 10, service="web")])
    by = {n.span_id: n for n in tree.rows}
    # Centred in its caller (20 ms of network each way), its subtree moved along.
    assert (by["server"].start_us - by["call"].start_us) / 1000 == 20
    assert by["server"].skew_us == 40_000
    assert (by["db"].start_us - by["call"].start_us) / 1000 == 30
    # A child of the same service shares its parent's clock: left alone.
    assert by["local"].skew_us == 0 and by["local"].start_us < by["call"].start_us


def test_parse_attributes_and_durations():
    from spyglass.otel.traces_pages import parse_duration

    filters, bad = tq.parse_attributes('http.route=/a k8s.pod.name="web 1" error=true x!=1 junk')
    assert [(f.key, f.value, f.negate) for f in filters] == [
        ("http.route", "/a", False), ("k8s.pod.name", "web 1", False), ("error", "true", False),
        ("x", "1", True)]
    assert bad == ["junk"]
    assert [parse_duration(t) for t in ("250", "250ms", "1.5s", "300us", "2m", "x", "")] == [
        250, 250, 1500, 0.3, 120_000, None, None]


# -- pages on a live server ---------------------------------------------------------------------


def test_search_filters(traces):
    live, client, sdk_trace = traces
    page = client.get(live.base + "/traces")
    assert page.status_code == 200
    assert set(trace_ids(page.text)) == {T_SPLIT, T_SKEW, T_OTHER, sdk_trace}
    assert 'id="trace-scatter"' in page.text and "scatter-data" in page.text

    def found(**params: Any) -> set[str]:
        r = client.get(live.base + "/traces", params=params)
        assert r.status_code == 200, r.text
        return set(trace_ids(r.text))

    assert found(service="orders") == {T_SPLIT}
    assert found(service="backend", operation="SELECT stock") == {sdk_trace}
    assert found(operation="GET /health") == {T_OTHER}
    assert found(status="error") == {T_SKEW, sdk_trace}
    assert found(min="55ms", max="1s", service="payments") == {T_SKEW}
    assert found(max="5ms") == {T_OTHER} | found(max="5ms")  # SDK spans may be quick too
    assert T_OTHER not in found(min="10")
    # Typed hot columns, old and new names.
    assert found(tags="http.route=/orders/{id}") == {T_SPLIT}
    assert found(tags="http.status_code=502") == {T_SKEW}
    assert found(tags="http.response.status_code=500") == {sdk_trace}
    assert found(tags="db.system=postgresql") == {T_SPLIT, sdk_trace}
    assert found(tags="peer.service=orders") == {T_SPLIT}
    # Span attributes in the map, resource attributes through resource_id, several at once.
    assert found(tags="tenant=acme") == {T_SPLIT}
    assert found(tags="cart.items=3") == {sdk_trace}
    assert found(tags="k8s.pod.name=orders-1") == {T_SPLIT}
    assert found(tags='service.version=2.4.1 http.route="/health"') == {T_OTHER}
    assert found(tags="error=true") == {T_SKEW, sdk_trace}
    assert found(tags="k8s.pod.name=nowhere") == set()
    bad = client.get(live.base + "/traces", params={"tags": "nonsense"})
    assert "Not understood" in bad.text and "<code>nonsense</code>" in bad.text
    # Jump to a trace id.
    r = client.get(live.base + "/traces", params={"trace": T_SKEW.upper()},
                   follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/traces/" + T_SKEW)


def test_search_results_describe_whole_traces(traces, token):
    live, client, _ = traces
    html = client.get(live.base + "/traces", params={"service": "orders"}).text
    row = html[html.index(f'data-trace-id="{T_SPLIT}"'):]
    row = row[:row.index("</tr>")]
    assert "gateway" in row and "GET /orders" in row          # the root, not the match
    assert ">120 ms<" in row                                   # the whole trace's duration
    assert re.search(r'<td class="num">5</td>', row)           # spans of all three requests
    for service in ("gateway", "orders"):
        assert f"</i>{service} <b>" in row                    # a chip per service
    # The JSON API says the same.
    r = httpx.get(f"{live.url}/api/v1/projects/{live.tenant.project_id}/traces",
                  params={"service": "orders"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    (hit,) = r.json()["traces"]
    assert hit["trace_id"] == T_SPLIT and hit["span_count"] == 5 and hit["root_name"] == "GET /orders"
    assert hit["services"] == {"gateway": 2, "orders": 3} and hit["duration_ms"] == 120.0


@pytest.fixture
def token(traces):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from spyglass.kernel.auth import accounts
    from spyglass.kernel.meta.models import User

    live = traces[0]
    with live.runtime.db.session() as s:
        user = s.scalar(select(User).where(User.email == "ada@example.com"))
        live.token = accounts.create_api_token(s, user, "test").token
        s.commit()
    return live.token


def test_trace_page_of_a_split_trace_with_a_missing_parent(traces):
    live, client, _ = traces
    r = client.get(f"{live.base}/traces/{T_SPLIT.upper()}")
    assert r.status_code == 200
    html = r.text
    # Spans of three requests nest into one tree; the orphan sits at the top level.
    assert row_ids(html) == [("a" * 16, 0), ("b" * 16, 1), ("c" * 16, 2), ("d" * 16, 3),
                             ("e" * 16, 0)]
    assert 'id="note-orphans"' in html and "missing parent" in html
    # Critical path: gateway → its client call → orders → the query; the orphan ran inside
    # the root's time and held nothing up.
    crit = re.findall(r'class="wf-row [^"]*on-critical[^"]*" id="row-([0-9a-f]{16})"', html)
    assert crit == ["a" * 16, "b" * 16, "c" * 16, "d" * 16]
    # Span details: span attributes (typed columns folded back) and resource attributes.
    detail = html[html.index(f'id="detail-{"c" * 16}"'):]
    detail = detail[:detail.index('class="wf-row')]
    assert "tenant" in detail and "acme" in detail and "/orders/{id}" in detail
    assert "k8s.pod.name" in detail and "orders-1" in detail
    assert f'data-goto-span="{"b" * 16}"' in detail           # the parent, one click away
    assert "(missing)" in html[html.index(f'id="detail-{"e" * 16}"'):]


def test_trace_page_with_clock_skew(traces):
    live, client, _ = traces
    html = client.get(f"{live.base}/traces/{T_SKEW}").text
    assert row_ids(html) == [("1" * 16, 0), ("2" * 16, 1), ("3" * 16, 2), ("4" * 16, 3)]
    assert 'id="note-skew"' in html
    skewed = html[html.index(f'id="row-{"3" * 16}"'):]
    assert "tag-skew" in skewed[:skewed.index("wf-timeline")]
    # The server span was moved into its caller (50 ms + (100 - 60) / 2 = 70 ms → 35%).
    bar = re.search(r'class="wf-bar" style="left: ([\d.]+)%; width: ([\d.]+)%',
                    skewed).groups()
    assert (float(bar[0]), float(bar[1])) == (35.0, 30.0)
    assert "tag-error" in skewed[:skewed.index("wf-timeline")]


def test_trace_page_of_sdk_trace_with_logs_and_errors(traces):
    live, client, sdk_trace = traces
    from spyglass.errors.schema import EVENTS
    from spyglass.otel.schema import LOGS

    spans = live.rows("SELECT span_id, name FROM spans WHERE project_id = {p:UInt64} "
                      "AND trace_id = {t:String}", p=live.tenant.project_id, t=sdk_trace)
    ids = {r["name"]: r["span_id"] for r in spans}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    pid = live.tenant.project_id
    live.runtime.writer.write_sync(LOGS, [{
        "project_id": pid, "timestamp": now, "observed": now, "service": "backend",
        "severity_number": 17, "severity_text": "ERROR", "body": "stock lookup slow",
        "trace_id": sdk_trace, "span_id": ids["SELECT stock"], "event_name": "",
        "scope_name": "", "attributes": {}, "resource_id": 0, "source": "otlp"}])
    issue = _issue(live, pid)
    live.runtime.writer.write_sync(EVENTS, [{
        "project_id": pid, "timestamp": now, "received_at": now, "event_id": "e" * 32,
        "issue_id": issue, "group_hash": "h", "level": "error", "platform": "python",
        "release": "", "environment": "", "title": "ValueError: payment declined",
        "culprit": "checkout", "exception_type": "ValueError",
        "exception_value": "payment declined", "transaction": "GET /checkout",
        "user_key": "", "trace_id": sdk_trace, "tags": {}, "data": "{}", "size": 2}])
    html = client.get(f"{live.base}/traces/{sdk_trace}").text
    rows = row_ids(html)
    assert [d for _, d in rows] == [0, 1, 2, 3]
    assert [sid for sid, _ in rows] == [ids[n] for n in ("GET /checkout", "GET",
                                                          "GET /stock/{sku}", "SELECT stock")]
    # The exception event is shown prominently in the root's detail.
    root = html[html.index(f'id="detail-{ids["GET /checkout"]}"'):]
    assert 'class="det-exception"' in root[:root.index('class="wf-row')]
    assert "payment declined" in root[:root.index('class="wf-row')]
    # Logs link their span, errors link their issue.
    logs = html[html.index('id="logs"'):html.index('id="errors"')]
    assert "stock lookup slow" in logs and f'data-goto-span="{ids["SELECT stock"]}"' in logs
    errors = html[html.index('id="errors"'):]
    assert f'/issues/{live.short_id}"' in errors and "ValueError: payment declined" in errors


def _issue(live: Any, project_id: int) -> int:
    from spyglass.errors.models import Issue
    from spyglass.errors.queries import format_short_id
    from spyglass.kernel.meta.models import Project

    with live.runtime.db.session() as s:
        project = s.get(Project, project_id)
        issue = Issue(project_id=project_id, short_id=7, title="ValueError: payment declined")
        s.add(issue)
        s.commit()
        live.short_id = format_short_id(project.slug, 7)
        return issue.id


def test_pages_need_membership_and_bad_ids_are_404(traces):
    live, client, _ = traces
    assert client.get(f"{live.base}/traces/{'0' * 32}").status_code == 404
    assert client.get(f"{live.base}/traces/not-a-trace").status_code == 404
    anonymous = httpx.get(f"{live.url}{live.base}/traces", follow_redirects=False)
    assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
    from spyglass.kernel.auth import accounts

    with live.runtime.db.session() as s:
        accounts.create_user(s, "eve@example.com", PASSWORD)
        s.commit()
    with httpx.Client(base_url=live.url) as eve:
        eve.post("/login", data={"email": "eve@example.com", "password": PASSWORD})
        assert eve.get(f"{live.base}/traces/{T_SPLIT}").status_code == 404
