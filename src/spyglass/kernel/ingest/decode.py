"""Reading ingest request bodies: size limits before and after decompression.

Both limits are enforced while bytes arrive and while they are inflated, chunk by chunk, so a
decompression bomb is refused after producing at most ``max_decompressed + CHUNK`` bytes.
Supported ``Content-Encoding`` values: identity, gzip, deflate (zlib-wrapped or raw, as
clients disagree), br and zstd; a comma-separated list is undone from last to first.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli
import zstandard
from starlette.requests import Request

CHUNK = 64 * 1024


class BodyError(Exception):
    """A request body we refuse; ``status`` is the HTTP code to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def too_large(what: str, limit: int) -> BodyError:
    return BodyError(413, f"{what} exceeds the limit of {limit} bytes")


async def read_body(request: Request, max_compressed: int, max_decompressed: int) -> bytes:
    """The request body, decoded per ``Content-Encoding``, within both limits."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_compressed:
        raise too_large("request body", max_compressed)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_compressed:
            raise too_large("request body", max_compressed)
        parts.append(chunk)
    raw = b"".join(parts)
    return decode(raw, request.headers.get("content-encoding", ""), max_decompressed)


def decode(raw: bytes, content_encoding: str, limit: int) -> bytes:
    encodings = [e.strip().lower() for e in content_encoding.split(",") if e.strip()]
    data = raw
    for encoding in reversed(encodings):
        data = _DECODERS.get(encoding, _unsupported(encoding))(data, limit)
    if len(data) > limit:
        raise too_large("decompressed body", limit)
    return data


def _unsupported(encoding: str) -> Callable[[bytes, int], bytes]:
    def fail(data: bytes, limit: int) -> bytes:
        raise BodyError(415, f"unsupported Content-Encoding {encoding!r}")

    return fail


def _zlib(data: bytes, limit: int, wbits: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out: list[bytes] = []
    size = 0
    buf = data
    try:
        while True:
            piece = d.decompress(buf, CHUNK)
            size += len(piece)
            if size > limit:
                raise too_large("decompressed body", limit)
            out.append(piece)
            buf = d.unconsumed_tail
            if d.eof or (not buf and not piece):
                break
        if not d.eof:
            raise BodyError(400, "compressed body is truncated")
        # gzip allows several members back to back.
        if wbits == 31 and d.unused_data.strip(b"\0"):
            out.append(_zlib(d.unused_data, limit - size, 31))
    except zlib.error as exc:
        raise BodyError(400, f"cannot decompress body: {exc}") from exc
    return b"".join(out)


def _gzip(data: bytes, limit: int) -> bytes:
    return _zlib(data, limit, 31)


def _deflate(data: bytes, limit: int) -> bytes:
    # RFC 9110 says zlib-wrapped; some clients send raw deflate. The zlib header tells.
    wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0
    return _zlib(data, limit, 15 if wrapped else -15)


def _brotli(data: bytes, limit: int) -> bytes:
    d = brotli.Decompressor()
    out: list[bytes] = []
    size = 0
    try:
        piece = d.process(data, output_buffer_limit=CHUNK)
        while True:
            size += len(piece)
            if size > limit:
                raise too_large("decompressed body", limit)
            out.append(piece)
            if d.is_finished() or d.can_accept_more_data():
                break
            piece = d.process(b"", output_buffer_limit=CHUNK)
    except brotli.error as exc:
        raise BodyError(400, f"cannot decompress body: {exc}") from exc
    if not d.is_finished():
        raise BodyError(400, "compressed body is truncated")
    return b"".join(out)


def _zstd(data: bytes, limit: int) -> bytes:
    out: list[bytes] = []
    size = 0
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        while piece := reader.read(CHUNK):
            size += len(piece)
            if size > limit:
                raise too_large("decompressed body", limit)
            out.append(piece)
    except zstandard.ZstdError as exc:
        raise BodyError(400, f"cannot decompress body: {exc}") from exc
    return b"".join(out)


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "identity": lambda data, limit: data,
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
