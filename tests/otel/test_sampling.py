"""Per-project trace sampling at OTLP ingest, set on the Tracing settings page."""

from __future__ import annotations

import re
import time

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from spyglass.kernel.auth import accounts
from spyglass.kernel.meta.models import Role
from spyglass.otel.sampling import head_keeps

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _browser(live, role: Role = Role.admin) -> tuple[httpx.Client, str]:  # type: ignore[no-untyped-def]
    email = f"{role.value}@example.com"
    with live.runtime.db.session() as s:
        accounts.create_user(s, email, PASSWORD)
        accounts.set_member(s, accounts.get_or_create_org(s, "org-otel"), email, role)
        s.commit()
    web = httpx.Client(base_url=live.url)
    r = web.post("/login", data={"email": email, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return web, CSRF.search(web.get("/settings/tokens").text).group(1)


PAGE = "/o/org-otel/p/otel-app/settings/tracing"


def _save(web: httpx.Client, csrf: str, **form: str) -> httpx.Response:
    return web.post(PAGE, data={"csrf_token": csrf, **form})


def _tracer() -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def _send(live, spans) -> None:  # type: ignore[no-untyped-def]
    exporter = HttpSpans(endpoint=live.url + "/v1/traces", headers=live.headers())
    assert exporter.export(spans).name == "SUCCESS"


def _stored_traces(live) -> dict[str, int]:  # type: ignore[no-untyped-def]
    rows = live.rows("SELECT trace_id, count() AS n FROM spans GROUP BY trace_id")
    return {r["trace_id"]: int(r["n"]) for r in rows}


def test_tail_policy_keeps_errors_slow_traces_and_their_later_spans(live) -> None:  # type: ignore[no-untyped-def]
    web, csrf = _browser(live)
    r = _save(web, csrf, enabled="1", keep_errors="1", slow_ms="500", percent="0")
    assert r.status_code == 303 and r.headers["location"].endswith("?done=saved")

    provider, memory = _tracer()
    tracer = provider.get_tracer("t")
    for _ in range(20):  # fast, fine traces: dropped (0 %)
        with tracer.start_as_current_span("GET /"), tracer.start_as_current_span("SELECT"):
            pass
    with tracer.start_as_current_span("POST /pay") as failing, \
            tracer.start_as_current_span("charge") as child:
        child.set_status(Status(StatusCode.ERROR, "declined"))
    start = time.time_ns()
    slow = tracer.start_span("GET /report", start_time=start)
    slow.end(end_time=start + 700_000_000)
    _send(live, memory.get_finished_spans())

    kept = _stored_traces(live)
    error_trace = format(failing.get_span_context().trace_id, "032x")
    slow_trace = format(slow.get_span_context().trace_id, "032x")
    assert kept == {error_trace: 2, slow_trace: 1}

    # Later spans: one of the kept error trace (kept by memory), one of a dropped trace.
    memory.clear()
    dropped_trace_span = tracer.start_span("late", context=None)
    dropped_trace_span.end()
    late = tracer.start_span("late retry", context=set_span_in_context(failing))
    late.end()
    _send(live, memory.get_finished_spans())
    assert _stored_traces(live) == {error_trace: 3, slow_trace: 1}

    page = web.get(PAGE).text
    assert re.search(r'data-count="kept">4<', page), page
    assert re.search(r'data-count="dropped">41<', page)
    reasons = {(r["outcome"], r["reason"]): int(r["n"]) for r in live.rows(
        "SELECT outcome, reason, sum(quantity) AS n FROM outcomes WHERE category = 'span' "
        "GROUP BY outcome, reason")}
    assert reasons == {("accepted", "error"): 2, ("accepted", "slow"): 1,
                       ("accepted", "kept_trace"): 1, ("sampled_out", "trace_sampling"): 41}


def test_head_percentage_matches_the_sdk_ratio_sampler(live) -> None:  # type: ignore[no-untyped-def]
    web, csrf = _browser(live)
    assert _save(web, csrf, enabled="1", slow_ms="0", percent="30").status_code == 303
    provider, memory = _tracer()
    tracer = provider.get_tracer("t")
    for _ in range(200):
        with tracer.start_as_current_span("job") as span:
            span.set_status(Status(StatusCode.ERROR))  # keep_errors is off: no exception made
    spans = memory.get_finished_spans()
    _send(live, spans)
    sdk = TraceIdRatioBased(0.3)
    expected = {format(s.context.trace_id, "032x") for s in spans
                if sdk.should_sample(None, s.context.trace_id, "job").decision
                == Decision.RECORD_AND_SAMPLE}
    assert set(_stored_traces(live)) == expected
    assert 30 < len(expected) < 90
    assert all(head_keeps(t, 30) for t in expected)


def test_form_validation_rights_and_off_switch(live) -> None:  # type: ignore[no-untyped-def]
    web, csrf = _browser(live)
    page = web.get(PAGE)
    assert page.status_code == 200 and "Sample traces" in page.text
    assert "every span is kept" in page.text
    bad = _save(web, csrf, enabled="1", slow_ms="-3", percent="120")
    assert bad.status_code == 400
    assert "A number from 0 to 100." in bad.text and "A whole number" in bad.text
    assert _save(web, csrf, enabled="", percent="0").status_code == 303  # saved but off
    provider, memory = _tracer()
    with provider.get_tracer("t").start_as_current_span("kept"):
        pass
    _send(live, memory.get_finished_spans())
    assert len(_stored_traces(live)) == 1
    assert live.rows("SELECT * FROM outcomes") == []

    viewer, viewer_csrf = _browser(live, Role.viewer)
    assert viewer.get(PAGE).status_code == 200
    assert _save(viewer, viewer_csrf, enabled="1", percent="0").status_code in (403, 404)
