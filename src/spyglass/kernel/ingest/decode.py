"""Reading ingest request bodies: size limits before and after decompression.

Both limits are enforced while bytes arrive and while they are inflated, chunk by chunk, so a
decompression bomb is refused after producing at most ``max_decompressed + CHUNK`` bytes.
Supported ``Content-Encoding`` values: identity, gzip, deflate (zlib-wrapped or raw, as
clients disagree), br and zstd; a comma-separated list is undone from last to first.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import brotli
import zstandard

if TYPE_CHECKING:  # ingest workers decode without importing the web stack
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


async def read_raw(request: Request, max_compressed: int) -> bytes:
    """The request body as sent (still encoded), refused past ``max_compressed`` bytes."""
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
    return b"".join(parts)


async def read_body(request: Request, max_compressed: int, max_decompressed: int) -> bytes:
    """The request body, decoded per ``Content-Encoding``, within both limits."""
    raw = await read_raw(request, max_compressed)
    encoding = request.headers.get("content-encoding", "")
    if encoding.strip().lower() in ("", "identity"):
        return decode(raw, encoding, max_decompressed)
    # Inflating up to the limit takes a while; keep the event loop free meanwhile.
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(decode, raw, encoding, max_decompressed)


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


def _check(size: int, limit: int) -> None:
    if size > limit:
        raise too_large("decompressed body", limit)


def _zlib(data: bytes, limit: int, wbits: int) -> bytes:
    """Inflate in bounded steps; gzip may hold several members back to back."""
    out: list[bytes] = []
    size = 0
    rest = memoryview(data)
    try:
        while True:
            d = zlib.decompressobj(wbits)
            # Feed the input in slices: handing back ``unconsumed_tail`` would copy the whole
            # remaining input for every chunk of output.
            pos = 0
            while not d.eof and pos < len(rest):
                piece = d.decompress(rest[pos : pos + CHUNK], CHUNK)
                pos += CHUNK - len(d.unconsumed_tail)
                while True:
                    size += len(piece)
                    _check(size, limit)
                    out.append(piece)
                    if not d.unconsumed_tail or d.eof:
                        break
                    tail = d.unconsumed_tail
                    piece = d.decompress(tail, CHUNK)
                    pos += len(tail) - len(d.unconsumed_tail)
            if not d.eof:
                raise BodyError(400, "compressed body is truncated")
            rest = memoryview(d.unused_data)
            if wbits != 31 or not bytes(rest).strip(b"\0"):
                break
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
            _check(size, limit)
            out.append(piece)
            if d.is_finished():
                break
            if not piece and d.can_accept_more_data():
                break  # all input consumed, no output pending: the stream was cut short
            piece = d.process(b"", output_buffer_limit=CHUNK)
    except brotli.error as exc:
        raise BodyError(400, f"cannot decompress body: {exc}") from exc
    if not d.is_finished():
        raise BodyError(400, "compressed body is truncated")
    return b"".join(out)


ZSTD_MIN_SLICE, ZSTD_MAX_SLICE = 64, 64 * 1024


def _zstd(data: bytes, limit: int) -> bytes:
    """Decompress frame by frame from input slices, so a truncated frame is noticed (it never
    reaches its end). zstd's decompressobj has no output cap, so the slice size follows the
    observed ratio to aim at about CHUNK bytes of output per step."""
    out: list[bytes] = []
    size = 0
    rest = memoryview(data)
    dctx = zstandard.ZstdDecompressor()
    try:
        while len(rest):
            d = dctx.decompressobj()
            pos, step = 0, ZSTD_MIN_SLICE
            while not d.eof and pos < len(rest):
                piece = d.decompress(rest[pos : pos + step])
                pos += step
                step = max(ZSTD_MIN_SLICE, min(ZSTD_MAX_SLICE, CHUNK * step // max(len(piece), 1)))
                size += len(piece)
                _check(size, limit)
                out.append(piece)
            if not d.eof:
                raise BodyError(400, "compressed body is truncated")
            rest = memoryview(d.unused_data + bytes(rest[pos:])) if pos < len(rest) else memoryview(d.unused_data)
    except zstandard.ZstdError as exc:
        raise BodyError(400, f"cannot decompress body: {exc}") from exc
    if not data:
        raise BodyError(400, "empty zstd body")
    return b"".join(out)


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "identity": lambda data, limit: data,
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
