"""OTLP request bodies → protobuf messages, from binary protobuf or the OTLP JSON mapping.

The OTLP JSON mapping differs from protobuf's canonical JSON in one way that matters: trace
and span ids are hex strings (any case), not base64. Enum values as integers, 64-bit integers
as strings or numbers, and unknown fields are handled by ``json_format`` once the ids are
rewritten. An id that is not valid hex becomes a one-byte id, which the row conversion then
rejects item by item, so one bad span never fails the spans around it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


@dataclass(frozen=True)
class Signal:
    name: str  # traces | metrics | logs
    request: type[Message]
    response: type[Message]
    #: Field of the response's ``partial_success`` that counts rejected items.
    rejected_field: str
    #: The gRPC service and method that receive it.
    grpc_service: str


SIGNALS: dict[str, Signal] = {
    "traces": Signal(
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        "rejected_spans",
        "opentelemetry.proto.collector.trace.v1.TraceService",
    ),
    "metrics": Signal(
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        "rejected_data_points",
        "opentelemetry.proto.collector.metrics.v1.MetricsService",
    ),
    "logs": Signal(
        "logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        "rejected_log_records",
        "opentelemetry.proto.collector.logs.v1.LogsService",
    ),
}

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

#: JSON keys holding ids, in both the lowerCamelCase the spec asks for and proto field names.
_ID_KEYS = frozenset(
    {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
)
#: A placeholder for an id that is not hex: a valid bytes field, an invalid id length.
_BAD_ID = base64.b64encode(b"\xff").decode()


class DecodeError(Exception):
    """The body is not a valid OTLP request (→ 400 / INVALID_ARGUMENT)."""


def media_type(content_type: str) -> str | None:
    """``PROTOBUF``, ``JSON``, or None for a content type OTLP does not speak."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if kind == JSON:
        return JSON
    return None


def parse(signal: Signal, body: bytes, kind: str) -> Message:
    return parse_json(signal, body) if kind == JSON else parse_protobuf(signal, body)


def parse_protobuf(signal: Signal, body: bytes) -> Message:
    message = signal.request()
    try:
        message.ParseFromString(body)
    except (ProtobufDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"not a valid {signal.request.__name__}: {exc}") from exc
    return message


def parse_json(signal: Signal, body: bytes) -> Message:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise DecodeError("body must be a JSON object")
    _hex_ids_to_base64(document)
    message = signal.request()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError, AttributeError) as exc:
        raise DecodeError(f"not a valid OTLP/JSON {signal.request.__name__}: {exc}") from exc
    return message


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite every id field in place; iterative, so nesting depth cannot exhaust the stack."""
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_KEYS and isinstance(value, str):
                    node[key] = _hex_to_base64(value)
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))


def _hex_to_base64(value: str) -> str:
    if not value:
        return ""
    if len(value) % 2 or not all(c in "0123456789abcdefABCDEF" for c in value):
        return _BAD_ID
    return base64.b64encode(bytes.fromhex(value)).decode()


def render(message: Message, kind: str) -> bytes:
    """A response message in the request's content type (OTLP JSON: ints for enums)."""
    if kind == JSON:
        return orjson.dumps(json_format.MessageToDict(message, use_integers_for_enums=True))
    return message.SerializeToString()


def status_body(code: int, message: str, kind: str) -> bytes:
    """A ``google.rpc.Status`` (code, message), the body of OTLP/HTTP error replies."""
    if kind == JSON:
        return orjson.dumps({"code": code, "message": message})
    text = message.encode()
    # Two fields, hand-encoded to avoid a dependency for one tiny message:
    # 1: int32 code (varint), 2: string message (length-delimited).
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
