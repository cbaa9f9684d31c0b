"""Exceptions recorded through the real OpenTelemetry SDK (on spans, in logs) become error events."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from spyglass.errors.record import parse_stacktrace, sentry_event

pytestmark = pytest.mark.filterwarnings("ignore:`LoggingHandler`:DeprecationWarning")

RESOURCE = {"service.name": "payments", "service.version": "2.3.1",
            "deployment.environment.name": "staging"}


class CardDeclined(Exception):
    pass


def charge(amount: int) -> None:
    raise CardDeclined(f"card declined for {amount}")


def _events(live: Any) -> list[dict[str, Any]]:
    return live.rows("SELECT * FROM events WHERE project_id = {p:UInt64} ORDER BY timestamp",
                     p=live.tenant.project_id)


def test_span_exceptions_become_grouped_events(live) -> None:  # type: ignore[no-untyped-def]
    provider = TracerProvider(resource=Resource.create(RESOURCE))
    provider.add_span_processor(SimpleSpanProcessor(
        HttpSpans(endpoint=live.url + "/v1/traces", headers=live.headers())))
    tracer = provider.get_tracer("payments.api")
    contexts = []
    for amount in (10, 20):
        # The SDK records the exception as an ``exception`` span event when it escapes.
        with pytest.raises(CardDeclined), tracer.start_as_current_span(
                "POST /charge", kind=SpanKind.SERVER,
                attributes={"http.route": "/charge", "customer.tier": "gold"}) as span:
            contexts.append(span.get_span_context())
            charge(amount)
    with tracer.start_as_current_span("GET /health"):
        pass  # no exception: no event
    provider.shutdown()

    events = _events(live)
    assert len(events) == 2
    assert len({e["issue_id"] for e in events}) == 1  # same stack: one issue
    first = events[0]
    assert first["exception_type"].endswith("CardDeclined")
    assert first["exception_value"] == "card declined for 10"
    assert first["platform"] == "python" and first["release"] == "2.3.1"
    assert first["environment"] == "staging" and first["transaction"] == "POST /charge"
    assert first["level"] == "error"
    assert first["trace_id"] == format(contexts[0].trace_id, "032x")
    data = json.loads(first["data"])
    assert data["server_name"] == "payments"
    assert data["contexts"]["trace"]["span_id"] == format(contexts[0].span_id, "016x")
    frames = data["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames[-1]["function"] == "charge" and frames[-1]["in_app"] is True
    assert frames[-1]["filename"].endswith("test_exceptions_to_errors.py")
    tags = dict(first["tags"])
    assert tags["customer.tier"] == "gold" and tags["service"] == "payments"
    # The spans themselves are stored as usual.
    assert len(live.rows("SELECT span_id FROM spans")) == 3


def test_handled_exception_recorded_on_a_span(live) -> None:  # type: ignore[no-untyped-def]
    provider = TracerProvider(resource=Resource.create(RESOURCE))
    provider.add_span_processor(SimpleSpanProcessor(
        HttpSpans(endpoint=live.url + "/v1/traces", headers=live.headers())))
    with provider.get_tracer("t").start_as_current_span("retry loop") as span:
        try:
            charge(5)
        except CardDeclined as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR))
        span.record_exception(CardDeclined("gave up"), escaped=True)
    provider.shutdown()
    handled, escaped = sorted(_events(live), key=lambda e: e["exception_value"])
    assert handled["exception_value"] == "card declined for 5"
    assert dict(handled["tags"])["handled"] == "yes"
    assert dict(escaped["tags"])["handled"] == "no"  # exception.escaped: it left the span


def test_logged_exceptions_become_events(live) -> None:  # type: ignore[no-untyped-def]
    logs = LoggerProvider(resource=Resource.create(RESOURCE))
    logs.add_log_record_processor(SimpleLogRecordProcessor(
        HttpLogs(endpoint=live.url + "/v1/logs", headers=live.headers())))
    tracer = TracerProvider(resource=Resource.create(RESOURCE)).get_tracer("t")
    logger = logging.getLogger("payments.worker")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=logs)
    logger.addHandler(handler)
    try:
        with tracer.start_as_current_span("job") as span:
            try:
                charge(99)
            except CardDeclined:
                logger.exception("charging failed")
            logger.warning("no exception here")
        logs.force_flush()
    finally:
        logger.removeHandler(handler)
        logs.shutdown()
    (event,) = _events(live)
    assert event["exception_type"].endswith("CardDeclined") and event["level"] == "error"
    assert event["trace_id"] == format(span.get_span_context().trace_id, "032x")
    data = json.loads(event["data"])
    assert data["logger"] == "payments.worker" and data["message"] == "charging failed"
    assert data["exception"]["values"][-1]["stacktrace"]["frames"][-1]["function"] == "charge"
    assert len(live.rows("SELECT body FROM logs")) == 2  # both records stored as logs


JAVA = """java.lang.IllegalStateException: order 7 not payable
\tat com.shop.Orders.pay(Orders.java:42)
\tat java.base/java.lang.Thread.run(Thread.java:833)
Caused by: java.io.IOException: gateway timeout
\tat com.shop.Gateway.call(Gateway.java:7)
\t... 1 more
"""
NODE = """TypeError: Cannot read properties of undefined (reading 'price')
    at priceOf (/app/src/cart.js:10:5)
    at /app/node_modules/express/lib/router.js:3:1
"""
GO = """goroutine 1 [running]:
main.handler(0x1234)
\t/app/main.go:12 +0x1d
runtime.main()
\t/usr/local/go/src/runtime/proc.go:250 +0x207
"""
DOTNET = """System.InvalidOperationException: boom
   at Shop.Cart.Total(Int32 n) in /app/Cart.cs:line 42
   at Shop.Program.Main()
"""


def test_stack_traces_of_other_languages() -> None:
    cause, main = parse_stacktrace(JAVA, "java")
    assert (cause["type"], main["type"]) == ("java.io.IOException",
                                             "java.lang.IllegalStateException")
    frames = main["stacktrace"]["frames"]
    assert [f["function"] for f in frames] == ["run", "pay"]  # oldest first
    assert frames[-1]["module"] == "com.shop.Orders" and frames[-1]["lineno"] == 42
    assert frames[-1]["in_app"] and not frames[0]["in_app"]

    (js,) = parse_stacktrace(NODE, "nodejs")
    assert js["type"] == "TypeError"
    assert [(f["function"], f["in_app"]) for f in js["stacktrace"]["frames"]] == [
        ("?", False), ("priceOf", True)]
    assert js["stacktrace"]["frames"][-1]["colno"] == 5

    (go,) = parse_stacktrace(GO, "go")
    assert [(f["function"], f["in_app"]) for f in go["stacktrace"]["frames"]] == [
        ("runtime.main", False), ("main.handler", True)]

    (net,) = parse_stacktrace(DOTNET, "dotnet")
    assert net["stacktrace"]["frames"][-1] == {
        "function": "Shop.Cart.Total", "filename": "/app/Cart.cs", "abs_path": "/app/Cart.cs",
        "lineno": 42, "in_app": True}

    event = sentry_event({"type": "java.lang.IllegalStateException", "message": "m",
                          "stacktrace": JAVA, "source": "span", "service": "orders",
                          "resource": {"telemetry.sdk.language": "java"}})
    assert event["platform"] == "java" and event["server_name"] == "orders"
    assert len(event["exception"]["values"]) == 2
