"""Request body decoding: every Content-Encoding, chains, limits, bombs and hostile bytes."""

from __future__ import annotations

import asyncio
import functools
import gzip
import tracemalloc
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from spyglass.kernel.ingest.decode import CHUNK, BodyError, decode, read_body

ENCODINGS = ["identity", "gzip", "x-gzip", "deflate", "br", "zstd"]
SAMPLE = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(1000))
# Several times CHUNK once inflated, so the chunked loops go round more than once.
BIG = b"".join(b"%08d %s\n" % (i, b"abcdefghij" * (i % 7)) for i in range(12000))


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "identity": lambda d: d,
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda d: zstandard.ZstdCompressor(write_checksum=True).compress(d),
}


def status_of(raw: bytes, encoding: str, limit: int = 10 * 1024 * 1024) -> int:
    try:
        decode(raw, encoding, limit)
    except BodyError as exc:
        return exc.status
    return 200


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("data", [b"", b"x", SAMPLE, bytes(range(256)) * 300])
def test_every_encoding_round_trips(encoding: str, data: bytes) -> None:
    assert decode(COMPRESS[encoding](data), encoding, len(data) + 1) == data


@pytest.mark.parametrize("encoding", ["identity", "gzip", "deflate", "zstd"])
def test_large_bodies_round_trip(encoding: str) -> None:
    assert len(BIG) > 5 * CHUNK
    assert decode(COMPRESS[encoding](BIG), encoding, len(BIG)) == BIG


@pytest.mark.parametrize("size", [98_304, 300_000])
def test_large_brotli_bodies_round_trip(size: int) -> None:
    assert decode(brotli.compress(BIG[:size]), "br", size) == BIG[:size]


def test_no_content_encoding_means_identity() -> None:
    assert decode(SAMPLE, "", len(SAMPLE)) == SAMPLE


@pytest.mark.parametrize("header", ["GZIP", " gzip ", "Gzip", "gzip,", ", gzip"])
def test_encoding_names_are_case_and_space_insensitive(header: str) -> None:
    assert decode(gzip.compress(SAMPLE), header, len(SAMPLE)) == SAMPLE


def test_deflate_accepts_zlib_wrapped_and_raw_streams() -> None:
    wrapped = zlib.compress(SAMPLE)
    raw = _raw_deflate(SAMPLE)
    assert wrapped[2:-4] == raw  # the same deflate data, with and without the zlib frame
    assert decode(wrapped, "deflate", len(SAMPLE)) == SAMPLE
    assert decode(raw, "deflate", len(SAMPLE)) == SAMPLE


@pytest.mark.parametrize("level", [0, 1, 9])
def test_raw_deflate_at_every_level(level: int) -> None:
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    assert decode(c.compress(SAMPLE) + c.flush(), "deflate", len(SAMPLE)) == SAMPLE


def test_gzip_with_several_members_is_the_concatenation() -> None:
    body = gzip.compress(b"first ") + gzip.compress(b"second ") + gzip.compress(b"third")
    assert decode(body, "gzip", 100) == b"first second third"


def test_gzip_trailing_zero_padding_is_ignored() -> None:
    assert decode(gzip.compress(SAMPLE) + bytes(16), "gzip", len(SAMPLE)) == SAMPLE


def test_zstd_with_several_frames_is_the_concatenation() -> None:
    c = zstandard.ZstdCompressor()
    assert decode(c.compress(b"one ") + c.compress(b"two"), "zstd", 100) == b"one two"


def test_zstd_streamed_frame_without_content_size() -> None:
    c = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    body = c.compress(SAMPLE) + c.flush()
    assert decode(body, "zstd", len(SAMPLE)) == SAMPLE


def test_brotli_streamed_in_pieces() -> None:
    c = brotli.Compressor()
    body = b"".join(c.process(SAMPLE[i : i + 1000]) for i in range(0, len(SAMPLE), 1000))
    body += c.finish()
    assert decode(body, "br", len(SAMPLE)) == SAMPLE


# --- chained encodings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "chain", ["gzip, br", "br, gzip", "deflate, zstd", "zstd, gzip, br", "identity, gzip", "gzip, gzip"]
)
def test_chained_encodings_are_undone_last_first(chain: str) -> None:
    body = SAMPLE
    for encoding in (e.strip() for e in chain.split(",")):
        body = COMPRESS[encoding](body)
    assert decode(body, chain, len(SAMPLE)) == SAMPLE


def test_chain_applied_in_the_wrong_order_is_refused() -> None:
    body = brotli.compress(gzip.compress(SAMPLE))  # that is "gzip, br"
    assert status_of(body, "br, gzip") == 400


def test_chain_with_an_unknown_encoding_is_415() -> None:
    assert status_of(gzip.compress(SAMPLE), "compress, gzip") == 415
    assert status_of(gzip.compress(SAMPLE), "gzip, compress") == 415


@pytest.mark.parametrize("encoding", ["compress", "lzma", "exi", "pack200-gzip", "br;q=1", "*"])
def test_unknown_encoding_is_415(encoding: str) -> None:
    assert status_of(b"whatever", encoding) == 415


# --- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_limit_is_inclusive(encoding: str) -> None:
    body = COMPRESS[encoding](SAMPLE)
    assert decode(body, encoding, len(SAMPLE)) == SAMPLE
    with pytest.raises(BodyError) as info:
        decode(body, encoding, len(SAMPLE) - 1)
    assert info.value.status == 413


def test_limit_covers_all_gzip_members_together() -> None:
    member = gzip.compress(b"x" * 1000)
    assert decode(member * 3, "gzip", 3000) == b"x" * 3000
    assert status_of(member * 3, "gzip", 2999) == 413


def test_limit_covers_all_zstd_frames_together() -> None:
    frame = zstandard.ZstdCompressor().compress(b"x" * 1000)
    assert status_of(frame * 3, "zstd", 2999) == 413


def _zeros_stream(feed: Callable[[bytes], bytes], finish: Callable[[], bytes], mb: int = 1024) -> bytes:
    """About ``mb`` megabytes of zeros compressed, without ever holding them in memory."""
    zeros = bytes(1 << 20)
    return b"".join([feed(zeros) for _ in range(mb)] + [finish()])


@functools.cache
def bomb(encoding: str) -> bytes:
    """1 GiB of zeros, compressed as ``encoding`` (a few MB at most)."""
    if encoding in ("gzip", "deflate", "raw-deflate"):
        wbits = {"gzip": 31, "deflate": 15, "raw-deflate": -15}[encoding]
        z = zlib.compressobj(9, zlib.DEFLATED, wbits, 9, zlib.Z_RLE)  # RLE: fast on zeros
        return _zeros_stream(z.compress, z.flush)
    if encoding == "br":
        b = brotli.Compressor(quality=5)
        return _zeros_stream(b.process, b.finish)
    c = zstandard.ZstdCompressor(level=3).compressobj()
    return _zeros_stream(c.compress, c.flush)


@pytest.mark.parametrize("kind", ["gzip", "deflate", "raw-deflate", "br", "zstd"])
def test_decompression_bomb_is_413_and_memory_stays_low(kind: str) -> None:
    body = bomb(kind)
    assert len(body) < 2 * 1024 * 1024
    limit = 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(BodyError) as info:
            decode(body, "deflate" if kind == "raw-deflate" else kind, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.status == 413
    assert peak < 50 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while refusing a bomb"


def test_bomb_in_the_second_gzip_member_is_413() -> None:
    body = gzip.compress(b"harmless") + bomb("gzip")
    assert status_of(body, "gzip", 1024 * 1024) == 413


def test_bomb_in_the_inner_layer_of_a_chain_is_413() -> None:
    body = zstandard.ZstdCompressor().compress(bomb("gzip"))  # the outer layer stays small
    tracemalloc.start()
    try:
        assert status_of(body, "gzip, zstd", 4 * 1024 * 1024) == 413
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024


def test_bomb_refused_after_at_most_limit_plus_a_chunk() -> None:
    # The module's promise: a bomb is refused having produced <= max_decompressed + CHUNK.
    limit = 3 * CHUNK + 17
    tracemalloc.start()
    try:
        assert status_of(bomb("zstd"), "zstd", limit) == 413
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit + CHUNK + 2 * 1024 * 1024  # plus the zstd context itself


def test_many_tiny_gzip_members_do_not_recurse() -> None:
    member = gzip.compress(b"x")  # 21 bytes each: 3000 of them are a 63 kB body
    assert status_of(member * 3000, "gzip") in (200, 400, 413)


# --- truncated and corrupt data -------------------------------------------------------------

COMPRESSED = ["gzip", "deflate", "br"]


@pytest.mark.parametrize("encoding", COMPRESSED)
def test_every_truncation_is_400(encoding: str) -> None:
    body = COMPRESS[encoding](SAMPLE[:3000])
    for cut in range(len(body)):
        assert status_of(body[:cut], encoding) == 400, f"cut at {cut} of {len(body)}"


def test_truncated_raw_deflate_is_400() -> None:
    body = _raw_deflate(SAMPLE[:3000])
    for cut in range(1, len(body)):
        assert status_of(body[:cut], "deflate") == 400, f"cut at {cut} of {len(body)}"


def test_truncated_zstd_is_400() -> None:
    body = COMPRESS["zstd"](SAMPLE[:3000])
    bad = [cut for cut in range(1, len(body)) if status_of(body[:cut], "zstd") != 400]
    assert not bad, f"{len(bad)} of {len(body) - 1} truncations were accepted"


def test_zstd_complete_frame_then_truncated_frame_is_400() -> None:
    frame = COMPRESS["zstd"](SAMPLE[:3000])
    assert status_of(frame + frame[: len(frame) // 2], "zstd") == 400


def test_gzip_with_a_wrong_crc_is_400() -> None:
    body = bytearray(gzip.compress(SAMPLE))
    body[-8] ^= 0xFF  # CRC32 of the uncompressed data
    assert status_of(bytes(body), "gzip") == 400


def test_gzip_with_a_wrong_size_is_400() -> None:
    body = bytearray(gzip.compress(SAMPLE))
    body[-1] ^= 0x01  # ISIZE
    assert status_of(bytes(body), "gzip") == 400


def test_zlib_with_a_wrong_adler_is_400() -> None:
    body = bytearray(zlib.compress(SAMPLE))
    body[-1] ^= 0xFF
    assert status_of(bytes(body), "deflate") == 400


def test_zstd_with_a_wrong_checksum_is_400() -> None:
    body = bytearray(COMPRESS["zstd"](SAMPLE))
    body[-1] ^= 0xFF
    assert status_of(bytes(body), "zstd") == 400


@pytest.mark.parametrize("encoding", COMPRESSED + ["zstd"])
def test_plain_text_declared_compressed_is_400(encoding: str) -> None:
    assert status_of(b'{"event_id":"abc"}\n{"type":"event"}\n{}\n', encoding) == 400


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
def test_garbage_after_a_complete_stream_is_400(encoding: str) -> None:
    assert status_of(COMPRESS[encoding](SAMPLE) + b"trailing garbage", encoding) == 400


def test_gzip_of_other_encoding_is_400() -> None:
    assert status_of(zstandard.ZstdCompressor().compress(SAMPLE), "gzip") == 400
    assert status_of(gzip.compress(SAMPLE), "br") == 400


# --- hypothesis: hostile bytes never raise anything but BodyError -------------------------


def _decode_or_status(raw: bytes, encoding: str, limit: int) -> bytes | int:
    try:
        out = decode(raw, encoding, limit)
    except BodyError as exc:
        assert exc.status in (400, 413, 415)
        return exc.status
    assert len(out) <= limit
    return out


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=2048), encoding=st.sampled_from(ENCODINGS),
       limit=st.integers(0, 1 << 20))
def test_arbitrary_bytes_only_raise_body_error(raw: bytes, encoding: str, limit: int) -> None:
    _decode_or_status(raw, encoding, limit)


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=512),
       header=st.lists(st.sampled_from(ENCODINGS + ["", " ", "bogus", "GZIP"]), max_size=4))
def test_arbitrary_bytes_with_chains_only_raise_body_error(raw: bytes, header: list[str]) -> None:
    _decode_or_status(raw, ", ".join(header), 1 << 20)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=4096), encoding=st.sampled_from(ENCODINGS))
def test_arbitrary_data_round_trips(data: bytes, encoding: str) -> None:
    assert decode(COMPRESS[encoding](data), encoding, len(data)) == data


@st.composite
def mutated_streams(draw: st.DrawFn) -> tuple[bytes, str]:
    """A valid compressed stream with a few bytes flipped, inserted or deleted."""
    encoding = draw(st.sampled_from(["gzip", "deflate", "br", "zstd"]))
    body = bytearray(COMPRESS[encoding](draw(st.binary(max_size=1024)) + SAMPLE[:2000]))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(body) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "flip":
            body[i] ^= draw(st.integers(1, 255))
        elif op == "insert":
            body.insert(i, draw(st.integers(0, 255)))
        elif len(body) > 1:
            del body[i]
    return bytes(body), encoding


@settings(max_examples=300, deadline=None)
@given(case=mutated_streams(), limit=st.integers(0, 1 << 16))
def test_mutated_streams_only_raise_body_error(case: tuple[bytes, str], limit: int) -> None:
    _decode_or_status(case[0], case[1], limit)


# --- read_body --------------------------------------------------------------------------------


def _request(body_chunks: list[bytes], headers: dict[str, str]) -> Request:
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in body_chunks]
    messages.append({"type": "http.request", "body": b"", "more_body": False})

    async def receive() -> dict:
        return messages.pop(0)

    scope = {
        "type": "http", "method": "POST", "path": "/", "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive)


def _read(chunks: list[bytes], headers: dict[str, str], max_c: int, max_d: int) -> bytes | int:
    try:
        return asyncio.run(read_body(_request(chunks, headers), max_c, max_d))
    except BodyError as exc:
        return exc.status


def test_read_body_decodes_streamed_chunks() -> None:
    body = gzip.compress(SAMPLE)
    chunks = [body[i : i + 700] for i in range(0, len(body), 700)]
    assert _read(chunks, {"Content-Encoding": "gzip"}, len(body), len(SAMPLE)) == SAMPLE


def test_read_body_without_encoding() -> None:
    assert _read([b"abc", b"def"], {}, 6, 6) == b"abcdef"


def test_read_body_refuses_a_declared_length_over_the_limit_before_reading() -> None:
    def never() -> None:
        raise AssertionError("the body was read")

    request = _request([], {"Content-Length": "1001"})
    request._receive = never  # type: ignore[assignment]
    with pytest.raises(BodyError) as info:
        asyncio.run(read_body(request, 1000, 10_000))
    assert info.value.status == 413


def test_read_body_refuses_a_stream_over_the_limit_without_content_length() -> None:
    assert _read([b"x" * 600, b"x" * 600], {}, 1000, 10_000) == 413


def test_read_body_refuses_a_stream_longer_than_its_content_length_says() -> None:
    assert _read([b"x" * 600, b"x" * 600], {"Content-Length": "10"}, 1000, 10_000) == 413


def test_read_body_applies_the_limit_after_decompression() -> None:
    body = gzip.compress(SAMPLE)
    assert _read([body], {"Content-Encoding": "gzip"}, len(body), len(SAMPLE) - 1) == 413


def test_read_body_bomb_is_413() -> None:
    body = bomb("zstd")
    assert _read([body], {"Content-Encoding": "zstd"}, len(body), 1 << 20) == 413


def test_read_body_unknown_encoding_is_415() -> None:
    assert _read([b"abc"], {"Content-Encoding": "compress"}, 100, 100) == 415
