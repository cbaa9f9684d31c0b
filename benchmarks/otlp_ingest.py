"""OTLP ingest benchmark: spans/s over OTLP/HTTP protobuf, and bytes per span on disk.

    .venv/bin/python benchmarks/otlp_ingest.py [--seconds 20] [--senders 16] [--store duckdb|chdb|both]

For each store it starts ``spyglass serve`` as a subprocess on a fresh data directory, then
sends pre-serialized ``ExportTraceServiceRequest``s of 512 spans (the SDK's default batch)
from several concurrent senders in one load-generator process on the same machine. A span
counts once its request was answered 200, which means committed (acknowledged = durable);
at the end the stored row count is checked against the acknowledged count. Then it measures
bytes per span on disk: DuckDB's file size growth and, for ClickHouse (chDB), the compressed
size of the ``spans`` table's parts after ``OPTIMIZE TABLE ... FINAL``.

The span mix imitates three instrumented services: an HTTP frontend calling two backends
over HTTP, with database and cache client spans, internal spans, 2% error spans carrying an
exception event, and realistic resource attributes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

BATCH = 512

SERVICES = {
    "frontend": {"language": "python", "version": "2.4.1"},
    "checkout": {"language": "python", "version": "1.9.0"},
    "inventory": {"language": "python", "version": "3.0.2"},
}
ROUTES = ["/api/cart", "/api/cart/{id}", "/api/products", "/api/products/{id}", "/api/checkout",
          "/api/orders/{id}", "/healthz", "/api/users/{id}/orders"]
TABLES = ["products", "orders", "order_items", "users", "carts", "stock"]
AGENTS = [("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Safari/537.36"),
          ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"),
          "python-httpx/0.28.1"]


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _resource(service: str, instance: int) -> Resource:
    meta = SERVICES[service]
    return Resource(attributes=[
        _kv("service.name", service),
        _kv("service.version", meta["version"]),
        _kv("service.instance.id", f"{service}-{instance}-7f9c4d"),
        _kv("deployment.environment.name", "production"),
        _kv("host.name", f"node-{instance % 3}.eu-west-1.compute.internal"),
        _kv("process.pid", 1000 + instance),
        _kv("process.runtime.name", "cpython"),
        _kv("process.runtime.version", "3.12.7"),
        _kv("telemetry.sdk.name", "opentelemetry"),
        _kv("telemetry.sdk.language", meta["language"]),
        _kv("telemetry.sdk.version", "1.28.2"),
        _kv("k8s.pod.name", f"{service}-6d5f8b7c9-{instance:05x}"),
        _kv("k8s.namespace.name", "shop"),
    ])


@dataclass
class _Builder:
    rng: random.Random
    now_ns: int

    def ids(self) -> tuple[bytes, bytes]:
        return self.rng.randbytes(16), self.rng.randbytes(8)

    def span(self, trace: bytes, parent: bytes, name: str, kind: int, start: int, dur: int,
             attrs: list[KeyValue], error: bool = False) -> Span:
        span = Span(trace_id=trace, span_id=self.rng.randbytes(8), parent_span_id=parent,
                    name=name, kind=kind, start_time_unix_nano=start,
                    end_time_unix_nano=start + dur, attributes=attrs)
        if error:
            span.status.CopyFrom(Status(code=2, message="upstream request failed"))
            ev = span.events.add(time_unix_nano=start + dur - 1000, name="exception")
            ev.attributes.extend([
                _kv("exception.type", "httpx.ReadTimeout"),
                _kv("exception.message", "timed out after 5.0s"),
                _kv("exception.stacktrace", "Traceback (most recent call last):\n  File "
                    "\"/app/checkout/client.py\", line 88, in reserve\n    resp = await "
                    "self.http.post(url, json=body)\nhttpx.ReadTimeout: timed out"),
            ])
        return span

    def trace(self) -> dict[str, list[Span]]:
        """One request through the shop: ~10 spans across three services."""
        rng = self.rng
        trace = rng.randbytes(16)
        spans: dict[str, list[Span]] = {s: [] for s in SERVICES}
        start = self.now_ns + rng.randrange(0, 10**9)
        route = rng.choice(ROUTES)
        path = route.replace("{id}", str(rng.randrange(1, 100_000)))
        error = rng.random() < 0.02
        total = int(rng.lognormvariate(17.5, 0.6))  # ~40 ms
        status = 500 if error else rng.choice([200, 200, 200, 200, 201, 304, 404])
        root = self.span(trace, b"", f"GET {route}", 2, start, total, [
            _kv("http.request.method", "GET"), _kv("http.route", route),
            _kv("url.path", path), _kv("url.scheme", "https"),
            _kv("http.response.status_code", status), _kv("server.address", "shop.example.com"),
            _kv("network.protocol.version", "1.1"), _kv("client.address",
                                                        f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"),
            _kv("user_agent.original", rng.choice(AGENTS)),
        ], error)
        spans["frontend"].append(root)
        t = start + 200_000
        spans["frontend"].append(self.span(trace, root.span_id, "render template", 1, t,
                                           total // 10, [_kv("template.name", "page.html")]))
        method = route.strip("/").split("/")[-1].strip("{}")
        for backend in ("checkout", "inventory"):
            dur = total // 3
            client = self.span(trace, root.span_id, "POST", 3, t, dur, [
                _kv("http.request.method", "POST"), _kv("server.address", backend),
                _kv("server.port", 8080), 
                _kv("url.full", f"http://{backend}:8080/rpc/{method}"),
                _kv("http.response.status_code", 200), _kv("peer.service", backend),
            ])
            spans["frontend"].append(client)
            server = self.span(trace, client.span_id, "POST /rpc/{method}", 2, t + 300_000,
                               dur - 600_000, [
                                   _kv("http.request.method", "POST"),
                                   _kv("http.route", "/rpc/{method}"),
                                   _kv("http.response.status_code", 200),
                                   _kv("url.path", f"/rpc/{method}"),
                                   _kv("url.scheme", "http"), _kv("server.address", backend),
                               ])
            spans[backend].append(server)
            for _ in range(rng.randrange(1, 4)):
                table = rng.choice(TABLES)
                spans[backend].append(self.span(trace, server.span_id, f"SELECT {table}", 3,
                                                t + 500_000, rng.randrange(300_000, 5_000_000), [
                    _kv("db.system.name", "postgresql"), _kv("db.namespace", "shop"),
                    _kv("db.operation.name", "SELECT"), _kv("db.collection.name", table),
                    _kv("db.query.text", f"SELECT * FROM {table} WHERE id = $1 LIMIT $2"),
                    _kv("server.address", "db.internal"), _kv("server.port", 5432),
                ]))
            spans[backend].append(self.span(trace, server.span_id, "GET", 3, t + 400_000,
                                            rng.randrange(50_000, 400_000), [
                _kv("db.system.name", "redis"), _kv("db.operation.name", "GET"),
                _kv("server.address", "cache.internal"), _kv("server.port", 6379),
            ]))
            t += dur
        return spans


def make_requests(count: int, batch: int = BATCH, seed: int = 1) -> list[bytes]:
    """``count`` serialized requests of ``batch`` spans each, as an SDK batch processor
    would send them: one resource per service, spans of many traces mixed."""
    rng = random.Random(seed)
    builder = _Builder(rng, time.time_ns() - 3600 * 10**9)
    scope = InstrumentationScope(name="opentelemetry.instrumentation.asgi", version="0.49b2")
    bodies = []
    for r in range(count):
        pending: dict[str, list[Span]] = {s: [] for s in SERVICES}
        n = 0
        while n < batch:
            for service, spans in builder.trace().items():
                take = spans[: batch - n]
                pending[service].extend(take)
                n += len(take)
            builder.now_ns += 10**7
        req = ExportTraceServiceRequest(resource_spans=[
            ResourceSpans(resource=_resource(service, r % 4),
                          scope_spans=[ScopeSpans(scope=scope, spans=spans)])
            for service, spans in pending.items() if spans
        ])
        bodies.append(req.SerializeToString())
    return bodies


# -- the run ---------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(data_dir: Path, clickhouse_url: str, writer_interval_ms: int | None = None,
                  ) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = dict(os.environ, SPYGLASS_CLICKHOUSE_URL=clickhouse_url, SPYGLASS_JOBS_ENABLED="false",
               SPYGLASS_OTLP_GRPC_PORT="0")
    if writer_interval_ms is not None:
        env["SPYGLASS_WRITER_INTERVAL_MS"] = str(writer_interval_ms)
    with open(data_dir.parent / "server.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "spyglass", "serve", "--port", str(port),
                                 "--data-dir", str(data_dir)], stdout=log,
                                stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def _project_key(data_dir: Path, clickhouse_url: str) -> tuple[int, str]:
    """The first project's key: ``serve`` creates a project on an empty install."""
    from sqlalchemy import select

    from spyglass.kernel.meta.db import Database
    from spyglass.kernel.meta.models import ProjectKey

    db = Database(f"sqlite:///{data_dir.resolve() / 'spyglass.sqlite3'}")
    with db.session() as s:
        key = s.scalars(select(ProjectKey).where(ProjectKey.revoked_at.is_(None))).first()
        assert key is not None
        result = key.project_id, key.public_key
    db.close()
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of a process (threads of one name added up)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        name = "main (event loop)" if task.name == str(pid) else name
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        out[name] = out.get(name, 0.0) + cpu
    return out


async def _load(url: str, key: str, bodies: list[bytes], senders: int, seconds: float,
                warmup: float, server_pid: int) -> dict[str, float]:
    headers = {"content-type": "application/x-protobuf", "x-spyglass-key": key}
    acked = 0
    acked_after_warmup = 0
    refused = 0
    latencies: list[float] = []
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + seconds

    async def sender(i: int) -> None:
        nonlocal acked, acked_after_warmup, refused
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            j = i
            while time.perf_counter() < stop_at:
                body = bodies[j % len(bodies)]
                j += senders
                t0 = time.perf_counter()
                resp = await client.post("/v1/traces", content=body, headers=headers)
                t1 = time.perf_counter()
                if resp.status_code == 200:
                    acked += BATCH
                    if t0 >= measure_from:
                        acked_after_warmup += BATCH
                        latencies.append(t1 - t0)
                elif resp.status_code in (429, 503):
                    refused += 1
                    await asyncio.sleep(float(resp.headers.get("retry-after", "1")))
                else:
                    raise RuntimeError(f"unexpected {resp.status_code}: {resp.text[:300]}")

    threads: dict[str, float] = {}

    async def meter() -> tuple[float, float]:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        server0, self0 = _cpu_seconds(server_pid), time.process_time()
        threads0 = _thread_cpu(server_pid)
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        for name, cpu in _thread_cpu(server_pid).items():
            threads[name] = cpu - threads0.get(name, 0.0)
        return _cpu_seconds(server_pid) - server0, time.process_time() - self0

    *_, (server_cpu, load_cpu) = await asyncio.gather(*(sender(i) for i in range(senders)),
                                                       meter())
    elapsed = time.perf_counter() - measure_from
    latencies.sort()
    return {
        "acked": acked,
        "spans_per_s": acked_after_warmup / elapsed,
        "server_cpu_us_per_span": server_cpu / max(acked_after_warmup, 1) * 1e6,
        "load_cpu_us_per_span": load_cpu / max(acked_after_warmup, 1) * 1e6,
        "server_cores": server_cpu / elapsed,
        "threads_us_per_span": {name: cpu / max(acked_after_warmup, 1) * 1e6
                                for name, cpu in sorted(threads.items(), key=lambda kv: -kv[1])
                                if cpu > 0},
        "refused_requests": refused,
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0,
    }


def _stored(data_dir: Path, clickhouse_url: str, project_id: int) -> int:
    from spyglass.kernel.telemetry import open_telemetry_store

    store = open_telemetry_store(clickhouse_url, data_dir)
    try:
        return store.count("spans", project_id)
    finally:
        store.close()


def _bytes_per_span_duckdb(spans: int) -> dict[str, float]:
    """A fresh DuckDB file holding ``spans`` distinct spans of the mix, checkpointed."""
    import spyglass.otel  # noqa: F401 -- registers the tables
    from spyglass.kernel.telemetry.duckdb import DuckDBStore
    from spyglass.otel.rows import spans_table
    from spyglass.otel.schema import SPANS

    bodies = make_requests(-(-spans // BATCH), seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.duckdb"
        store = DuckDBStore(path)
        store.ensure_table(SPANS)
        store.execute("CHECKPOINT")
        empty = path.stat().st_size
        n = 0
        i = 0
        while n < spans:
            req = ExportTraceServiceRequest.FromString(bodies[i])
            table = spans_table(req, 1).table
            store.insert(SPANS, table)
            n += table.num_rows
            i += 1
        store.execute("CHECKPOINT")
        store.close()
        size = path.stat().st_size - empty
        return {"spans": n, "bytes": size, "bytes_per_span": size / n}


def _bytes_per_span_chdb(spans: int) -> dict[str, float]:
    """chDB in a subprocess (one chDB session per process): parts' compressed bytes."""
    code = f"""
import sys, json
sys.path.insert(0, {str(Path(__file__).parent)!r})
from otlp_ingest import chdb_bytes_per_span
print(json.dumps(chdb_bytes_per_span({spans})))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    import json

    return json.loads(out.strip().splitlines()[-1])


def chdb_bytes_per_span(spans: int, bodies: list[bytes] | None = None) -> dict[str, float]:
    import spyglass.otel  # noqa: F401 -- registers the tables
    from spyglass.kernel.telemetry.clickhouse import ClickHouseStore
    from spyglass.otel.rows import spans_table
    from spyglass.otel.schema import SPANS

    bodies = bodies or make_requests(-(-spans // BATCH), seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        store = ClickHouseStore.from_url(f"chdb://{tmp}/ch")
        store.ensure_table(SPANS)
        n = 0
        i = 0
        while n < spans:
            req = ExportTraceServiceRequest.FromString(bodies[i])
            table = spans_table(req, 1).table
            store.insert(SPANS, table)
            n += table.num_rows
            i += 1
        store.execute("OPTIMIZE TABLE spans FINAL")
        rows = store.rows(
            "SELECT name, sum(data_compressed_bytes) AS c, sum(data_uncompressed_bytes) AS u "
            "FROM system.columns WHERE table = 'spans' AND database = currentDatabase() "
            "GROUP BY name ORDER BY c DESC")
        parts = store.rows(
            "SELECT sum(bytes_on_disk) AS b, sum(rows) AS r FROM system.parts "
            "WHERE table = 'spans' AND active AND database = currentDatabase()")[0]
        store.close()
        return {
            "spans": n,
            "bytes_on_disk": int(parts["b"]),
            "bytes_per_span": int(parts["b"]) / n,
            "columns": {r["name"]: round(int(r["c"]) / n, 2) for r in rows},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--senders", type=int, default=16,
                        help="concurrent exporters (a Collector sends with 10 by default)")
    parser.add_argument("--requests", type=int, default=64, help="distinct pre-built requests")
    parser.add_argument("--store", choices=["duckdb", "chdb", "both"], default="both")
    parser.add_argument("--size-spans", type=int, default=200_000)
    parser.add_argument("--writer-interval-ms", type=int, default=None,
                        help="override the server's writer_interval_ms (default: its setting)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    bodies = make_requests(args.requests)
    print(f"built {len(bodies)} requests of {BATCH} spans, "
          f"{sum(map(len, bodies)) / len(bodies) / BATCH:.0f} bytes/span in protobuf, "
          f"in {time.perf_counter() - t0:.1f}s")
    stores = ["duckdb", "chdb"] if args.store == "both" else [args.store]
    for store in stores:
        tmp = Path(tempfile.mkdtemp(prefix="otlp-bench-"))
        data_dir = tmp / "data"
        data_dir.mkdir()
        ch_url = f"chdb://{tmp / 'chdb'}" if store == "chdb" else ""
        proc, url = _start_server(data_dir, ch_url, args.writer_interval_ms)
        try:
            pid, key = _project_key(data_dir, ch_url)
            result = asyncio.run(_load(url, key, bodies, args.senders, args.seconds,
                                       args.warmup, proc.pid))
        finally:
            proc.terminate()
            proc.wait(30)
        stored = _stored(data_dir, ch_url, pid)
        print(f"[{store}] {result['spans_per_s']:,.0f} spans/s sustained over {args.seconds:.0f}s "
              f"({args.senders} senders; request p50 {result['p50_ms']:.1f} ms, "
              f"p99 {result['p99_ms']:.1f} ms; {result['refused_requests']} refused with "
              f"429/503); acknowledged {result['acked']:,}, stored {stored:,} "
              f"({'all durable' if stored >= result['acked'] else 'MISSING SPANS'})")
        print(f"[{store}] CPU per span: server {result['server_cpu_us_per_span']:.1f} us "
              f"({result['server_cores']:.2f} cores busy), load generator "
              f"{result['load_cpu_us_per_span']:.1f} us; machine load average "
              f"{os.getloadavg()[0]:.1f}")
        per_thread = result["threads_us_per_span"]
        print(f"[{store}] server CPU by thread (us/span): " + ", ".join(
            f"{name} {us:.1f}" for name, us in list(per_thread.items())[:5]))
        main_us = per_thread.get("main (event loop)", 0.0)
        if main_us:
            capacity = min(1e6 / main_us, 2e6 / (result["server_cpu_us_per_span"]
                                                 + result["load_cpu_us_per_span"]))
            print(f"[{store}] CPU-bound capacity on 2 idle cores (event loop on one core, "
                  f"all work on two): {capacity:,.0f} spans/s")
        shutil.rmtree(tmp, ignore_errors=True)
    if "duckdb" in stores:
        size = _bytes_per_span_duckdb(args.size_spans)
        print(f"[duckdb] {size['bytes_per_span']:.1f} bytes/span on disk "
              f"({size['spans']:,} spans, {size['bytes'] / 1e6:.1f} MB after CHECKPOINT)")
    if "chdb" in stores:
        size = _bytes_per_span_chdb(args.size_spans)
        print(f"[chdb] {size['bytes_per_span']:.1f} bytes/span on disk "
              f"({size['spans']:,} spans after OPTIMIZE FINAL)")
        print("        per column: " + ", ".join(f"{k} {v}" for k, v in size["columns"].items()))


if __name__ == "__main__":
    main()
