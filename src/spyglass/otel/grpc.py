"""OTLP/gRPC: the trace, metrics and logs ``Export`` services on their own port (4317).

The same semantics as OTLP/HTTP: the key in the ``x-spyglass-key`` or ``authorization:
Bearer`` metadata (UNAUTHENTICATED otherwise), INVALID_ARGUMENT for a malformed message,
``partial_success`` for refused items, UNAVAILABLE (which exporters retry) when the writer
is overloaded or failing. gRPC itself undoes gzip and enforces the 64 MiB message limit
(after decompression).

The server is grpcio's threaded server: each call parses and converts in a worker thread and
waits there until its rows are committed, so it needs nothing from the HTTP event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from spyglass.kernel.auth.keycache import KeyCache
from spyglass.kernel.ingest.writer import Overloaded, WriteFailed, WriterStopped
from spyglass.kernel.runtime import Runtime
from spyglass.otel import ingest
from spyglass.otel.auth import AuthError, key_from_mapping, project_for
from spyglass.otel.decode import SIGNALS, DecodeError, Signal, parse_protobuf
from spyglass.otel.resources import ResourceLog

log = structlog.get_logger(__name__)

WORKERS = 16


@dataclass
class GrpcHandle:
    """A running OTLP/gRPC server; ``port`` is the bound one (useful when asked for 0)."""

    server: grpc.Server
    port: int

    def stop(self, grace: float = 5.0) -> None:
        self.server.stop(grace).wait(grace + 1)


def _export(runtime: Runtime, keys: KeyCache, resources: ResourceLog, signal: Signal,
            ) -> Callable[[bytes, Any], bytes]:
    def handle(raw: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = {k.lower(): v for k, v in context.invocation_metadata()
                    if isinstance(v, str)}
        try:
            project_id = project_for(keys, key_from_mapping(metadata))
        except AuthError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        try:
            message = parse_protobuf(signal, raw)
        except DecodeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)[:500])
        spec, converted = ingest.convert(signal, message, project_id)
        try:
            for future in ingest.submit(runtime.writer, resources, project_id, spec, converted):
                future.result()
        except Overloaded as exc:
            context.set_trailing_metadata((("retry-after", str(exc.retry_after)),))
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except (WriteFailed, WriterStopped) as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        ingest.count(signal, "grpc", converted)
        return ingest.reply(signal, converted).SerializeToString()

    return handle


def _handlers(runtime: Runtime, keys: KeyCache, resources: ResourceLog,
              ) -> list[grpc.GenericRpcHandler]:
    handlers = []
    for signal in SIGNALS.values():
        # No deserializer: the handler gets the raw bytes, so a malformed message is our
        # INVALID_ARGUMENT rather than grpcio's INTERNAL.
        method = grpc.unary_unary_rpc_method_handler(_export(runtime, keys, resources, signal))
        handlers.append(grpc.method_handlers_generic_handler(signal.grpc_service,
                                                             {"Export": method}))
    return handlers


def start_grpc(runtime: Runtime, port: int, host: str | None = None,
               keys: KeyCache | None = None, resources: ResourceLog | None = None,
               ) -> GrpcHandle:
    """Start the OTLP/gRPC server on ``host:port`` (port 0: any free port)."""
    host = host or runtime.settings.host
    server = grpc.server(
        ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="spyglass-otlp-grpc"),
        handlers=_handlers(runtime, keys or runtime.keys,
                           resources or ResourceLog(runtime.writer)),
        options=[
            ("grpc.max_receive_message_length", ingest.MAX_BODY),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=WORKERS * 4,
    )
    address = f"[{host}]" if ":" in host and not host.startswith("[") else host
    bound = server.add_insecure_port(f"{address}:{port}")
    server.start()
    log.info("otlp_grpc_listening", host=host, port=bound)
    return GrpcHandle(server, bound)
