"""The OpenTelemetry part of ``spyglass demo``: a small shop of four services.

``frontend`` calls ``checkout``, which calls ``payments`` and ``inventory`` (and inventory its
database). Each service has its own OpenTelemetry SDK providers (traces, metrics, logs) with
its own resource, exporting over OTLP/HTTP to the demo server with the demo project's key,
exactly as an instrumented application would. Calls between services carry the W3C
``traceparent`` through the SDK's propagator, so the four services' spans form one trace
(spans get explicit start and end times instead of sleeping, so the feed costs little).

About one request in twenty fails at payments (an exception recorded on the span, which
becomes an issue in the error tracker, and a logged exception at checkout), and inventory is
now and then slow: the trace, service map, metrics and logs pages have something to show.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import httpx

SERVICES = {"frontend": "3.3.0", "checkout": "1.5.0", "payments": "0.9.2", "inventory": "2.1.0"}
RATE_PER_S = 1.5
SKUS = ["A-100", "B-220", "C-310", "D-404", "E-512"]


class CardDeclined(Exception):
    """What the payments service raises for a declined card."""


@dataclass
class Service:
    name: str
    tracer: Any
    meter_provider: Any
    tracer_provider: Any
    logger_provider: Any
    logger: logging.Logger
    requests: Any
    duration: Any


def _service(name: str, version: str, base_url: str, key: str) -> Service:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    headers = {"x-spyglass-key": key}
    resource = Resource.create({"service.name": name, "service.version": version,
                                "deployment.environment.name": "production",
                                "host.name": f"{name}-1"})
    # No exit hooks: a flush to a server that is already gone would hold the process up.
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", headers=headers, timeout=5),
        schedule_delay_millis=2000))
    meter_provider = MeterProvider(resource=resource, shutdown_on_exit=False, metric_readers=[
        PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{base_url}/v1/metrics", headers=headers, timeout=5),
            export_interval_millis=10_000)])
    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(
        OTLPLogExporter(endpoint=f"{base_url}/v1/logs", headers=headers, timeout=5),
        schedule_delay_millis=2000))
    logger = logging.getLogger(f"shop.{name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False  # only to the demo project, not the server's own log
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        logger.addHandler(LoggingHandler(logger_provider=logger_provider))
    meter = meter_provider.get_meter(f"shop.{name}", version)
    return Service(
        name, tracer_provider.get_tracer(f"shop.{name}", version), meter_provider,
        tracer_provider, logger_provider, logger,
        meter.create_counter("http.server.requests", unit="{request}",
                             description="Requests handled"),
        meter.create_histogram("http.server.request.duration", unit="s",
                               description="Duration of handled requests"),
    )


class OtelShop:
    """Runs the four services' traffic in a background thread until :meth:`stop`."""

    def __init__(self, base_url: str, key: str, seed: int | None = None) -> None:
        self.base_url = base_url
        self.key = key
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self.services: dict[str, Service] = {}
        self.carts = 0

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="spyglass-demo-otel", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        if not self._wait_ready():
            return
        # Exporters retrying while the server stops are expected here, not worth a warning.
        logging.getLogger("opentelemetry").setLevel(logging.ERROR)
        self.services = {n: _service(n, v, self.base_url, self.key) for n, v in SERVICES.items()}
        self._gauges()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.request()
            except Exception:
                logging.getLogger(__name__).exception("demo otel request failed")
            self._stop.wait(max(0.0, 1 / RATE_PER_S - (time.monotonic() - started)))
        for service in self.services.values():  # send what is buffered, briefly
            service.tracer_provider.force_flush(2000)
            service.logger_provider.force_flush(2000)

    def _wait_ready(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if httpx.get(self.base_url + "/readyz", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        return False

    def _gauges(self) -> None:
        from opentelemetry.metrics import Observation

        inventory = self.services["inventory"].meter_provider.get_meter("shop.inventory")
        inventory.create_observable_gauge(
            "inventory.stock.level", unit="{item}", description="Items in stock",
            callbacks=[lambda options: [Observation(40 + (hash(s) + int(time.time() / 60)) % 60,
                                                    {"sku": s}) for s in SKUS]])
        checkout = self.services["checkout"].meter_provider.get_meter("shop.checkout")
        self.active_carts = checkout.create_up_down_counter(
            "shop.carts.active", unit="{cart}", description="Carts being checked out")
        self.orders = checkout.create_counter("shop.orders", unit="{order}")

    # -- one user request through the four services ---------------------------------------

    def request(self) -> None:
        from opentelemetry.trace import SpanKind

        rng = self.rng
        now = time.time_ns()
        sku = rng.choice(SKUS)
        front = self.services["frontend"]
        with self._span(front, "GET /checkout", now, SpanKind.SERVER,
                        {"http.request.method": "GET", "http.route": "/checkout",
                         "url.path": "/checkout", "user_agent.original": "Mozilla/5.0"}) as root:
            with self._span(front, "POST", now + 2_000_000, SpanKind.CLIENT,
                            {"http.request.method": "POST", "server.address": "checkout",
                             "peer.service": "checkout"}) as call:
                carrier = self._inject()
                status, end = self.checkout(carrier, now + 3_000_000, sku)
                call.set_attribute("http.response.status_code", status)
                self._finish(call, end + 1_000_000, status)
            front.logger.info("rendered checkout page for %s", sku)
            self._finish(root, end + 4_000_000, status, front, "/checkout")

    def checkout(self, carrier: dict[str, str], start: int, sku: str) -> tuple[int, int]:
        from opentelemetry.trace import SpanKind

        svc = self.services["checkout"]
        self.active_carts.add(1)
        try:
            with self._span(svc, "POST /orders", start, SpanKind.SERVER,
                            {"http.request.method": "POST", "http.route": "/orders"},
                            carrier) as span:
                t = start + 1_000_000
                stock_ok, t = self.call(svc, "inventory", "GET", "/stock/{sku}", t,
                                        lambda c, s: self.inventory(c, s, sku))
                paid, t = self.call(svc, "payments", "POST", "/charge", t + 500_000,
                                    lambda c, s: self.payments(c, s))
                status = 201 if stock_ok == 200 and paid == 200 else 502
                if paid != 200:
                    try:
                        raise RuntimeError(f"payment for order of {sku} failed: {paid}")
                    except RuntimeError:
                        svc.logger.exception("order failed")
                else:
                    self.orders.add(1, {"sku": sku})
                    svc.logger.info("order placed for %s", sku)
                self._finish(span, t + 800_000, status, svc, "/orders")
                return status, t + 800_000
        finally:
            self.active_carts.add(-1)

    def call(self, svc: Service, peer: str, method: str, route: str, start: int,
             handler: Any) -> tuple[int, int]:
        """A client span from ``svc`` to ``peer``, whose handler continues the trace."""
        from opentelemetry.trace import SpanKind

        with self._span(svc, method, start, SpanKind.CLIENT,
                        {"http.request.method": method, "server.address": peer,
                         "peer.service": peer}) as span:
            status, end = handler(self._inject(), start + 400_000)
            span.set_attribute("http.response.status_code", status)
            self._finish(span, end + 400_000, status)
            return status, end + 400_000

    def inventory(self, carrier: dict[str, str], start: int, sku: str) -> tuple[int, int]:
        from opentelemetry.trace import SpanKind

        svc = self.services["inventory"]
        with self._span(svc, "GET /stock/{sku}", start, SpanKind.SERVER,
                        {"http.request.method": "GET", "http.route": "/stock/{sku}"},
                        carrier) as span:
            query_ms = self.rng.lognormvariate(1.2, 0.5)
            if self.rng.random() < 0.04:
                query_ms += self.rng.uniform(800, 1500)  # a slow query now and then
                svc.logger.warning("slow stock query for %s", sku)
            db_start = start + 300_000
            db_end = db_start + int(query_ms * 1_000_000)
            with self._span(svc, "SELECT stock", db_start, SpanKind.CLIENT,
                            {"db.system.name": "postgresql", "db.namespace": "inventory",
                             "db.query.text": "SELECT qty FROM stock WHERE sku = $1"}) as db:
                db.end(end_time=db_end)
            self._finish(span, db_end + 300_000, 200, svc, "/stock/{sku}")
            return 200, db_end + 300_000

    def payments(self, carrier: dict[str, str], start: int) -> tuple[int, int]:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        svc = self.services["payments"]
        with self._span(svc, "POST /charge", start, SpanKind.SERVER,
                        {"http.request.method": "POST", "http.route": "/charge",
                         "payment.method": self.rng.choice(["card", "card", "paypal"])},
                        carrier) as span:
            end = start + int(self.rng.lognormvariate(3.2, 0.4) * 1_000_000)
            if self.rng.random() < 0.05:
                try:
                    _charge_card(self.rng.randint(1000, 9999))
                except CardDeclined as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                    svc.logger.error("card declined")
                    self._finish(span, end, 402, svc, "/charge")
                    return 402, end
            self._finish(span, end, 200, svc, "/charge")
            return 200, end

    # -- helpers -----------------------------------------------------------------------------

    def _span(self, svc: Service, name: str, start: int, kind: Any,
              attributes: dict[str, Any], carrier: dict[str, str] | None = None) -> Any:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        context = TraceContextTextMapPropagator().extract(carrier) if carrier else None
        return svc.tracer.start_as_current_span(name, context=context, kind=kind,
                                                start_time=start, attributes=attributes,
                                                end_on_exit=False)

    def _inject(self) -> dict[str, str]:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        return carrier

    def _finish(self, span: Any, end: int, status: int, svc: Service | None = None,
                route: str = "") -> None:
        from opentelemetry.trace import Status, StatusCode

        if status >= 500 and span.is_recording():
            span.set_status(Status(StatusCode.ERROR))
        if svc is not None:
            span.set_attribute("http.response.status_code", status)
            attrs = {"http.route": route, "http.response.status_code": status}
            svc.requests.add(1, attrs)
            svc.duration.record((end - span.start_time) / 1e9, attrs)
        span.end(end_time=end)


def _charge_card(number: int) -> None:
    raise CardDeclined(f"card ending {number} declined: insufficient funds")


def start_otel_shop(base_url: str, key: str) -> OtelShop:
    """Start the four services' traffic (a daemon thread); call ``stop()`` when done."""
    shop = OtelShop(base_url, key)
    shop.start()
    return shop
