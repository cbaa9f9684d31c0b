"""A lean HTTP/1.1 load generator: pre-built requests over many concurrent connections.

The requests (headers and gzip body) are built before the clock starts, so sending one costs
a socket write and a response parse. Each connection sends its next request once the previous
one is answered (closed loop); a server that closes the connection after each reply (gunicorn's
sync workers) gets a new connection per request, whose connect time counts in the latency.
This stays well under a tenth of a core at several thousand requests per second, where httpx
would need most of one; its own CPU time is measured and reported.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import time
import uuid
from dataclasses import dataclass, field

SDK_AUTH = "Sentry sentry_version=7, sentry_client=sentry.python/2.75.0, sentry_key={key}"
_EVENT_ID = re.compile(rb'"event_id":"([0-9a-f]{32})"')


@dataclass
class Target:
    name: str
    host: str
    port: int
    project_id: int
    public_key: str


@dataclass
class Result:
    sent: int = 0
    ok: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    started: float = 0.0
    last_ack: float = 0.0
    connects: int = 0
    cpu_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.last_ack - self.started


def fresh_copy(envelope: bytes) -> bytes:
    """The same envelope under a new event id (in its header and in the event)."""
    match = _EVENT_ID.search(envelope)
    if match is None:
        return envelope
    return envelope.replace(match.group(1), uuid.uuid4().hex.encode())


def build_requests(target: Target, envelopes: list[bytes], count: int,
                   level: int = 6) -> list[bytes]:
    """``count`` requests cycling over the corpus, each event under a fresh id."""
    head = (
        f"POST /api/{target.project_id}/envelope/ HTTP/1.1\r\n"
        f"Host: {target.host}:{target.port}\r\n"
        "User-Agent: sentry.python/2.75.0\r\n"
        f"X-Sentry-Auth: {SDK_AUTH.format(key=target.public_key)}\r\n"
        "Content-Type: application/x-sentry-envelope\r\n"
        "Content-Encoding: gzip\r\n"
    )
    out = []
    for i in range(count):
        body = gzip.compress(fresh_copy(envelopes[i % len(envelopes)]), compresslevel=level)
        out.append((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    return out


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    close = lines[0].startswith(b"HTTP/1.0")
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, close


async def _connection(target: Target, queue: list[bytes], result: Result,
                      retry_statuses: frozenset[int]) -> None:
    reader = writer = None
    while queue:
        request = queue.pop()
        for attempt in range(50):
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(target.host, target.port)
                    result.connects += 1
                writer.write(request)
                status, close = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
                continue
            done = time.perf_counter()
            if close:
                writer.close()
                reader = writer = None
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status in retry_statuses:  # overload: back off briefly and resend, as SDKs do
                await asyncio.sleep(0.05)
                continue
            result.latencies.append(done - started)
            if 200 <= status < 300:
                result.ok += 1
                result.last_ack = done
            break
        result.sent += 1
    if writer is not None:
        writer.close()


async def _run(target: Target, requests: list[bytes], concurrency: int) -> Result:
    result = Result()
    queue = list(reversed(requests))
    result.started = time.perf_counter()
    await asyncio.gather(*(_connection(target, queue, result, frozenset({429, 503}))
                           for _ in range(concurrency)))
    return result


def run(target: Target, requests: list[bytes], concurrency: int) -> Result:
    """Send every request; returns counts, latencies and the generator's own CPU time."""
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = asyncio.new_event_loop
    # The event loop runs on this thread alone, so its CPU time is the generator's.
    cpu = time.thread_time()
    loop = loop_factory()
    try:
        result = loop.run_until_complete(_run(target, requests, concurrency))
    finally:
        loop.close()
    result.cpu_s = time.thread_time() - cpu
    return result


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(result: Result) -> dict[str, float]:
    return {
        "sent": result.sent, "ok": result.ok, "statuses": json.dumps(result.statuses),
        "p50_ms": quantile(result.latencies, 0.50) * 1000,
        "p95_ms": quantile(result.latencies, 0.95) * 1000,
        "p99_ms": quantile(result.latencies, 0.99) * 1000,
    }
