"""The blob store suite, run against a local directory and a real S3-compatible server.

The S3 side talks HTTP to moto in server mode on a free port, through the same factory
(``open_blob_store``) the application uses.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.server import ThreadedMotoServer

from spyglass.kernel.blobs import (
    BlobNotFound,
    BlobStore,
    LocalBlobStore,
    S3BlobStore,
    open_blob_store,
    validate_key,
    validate_prefix,
)
from spyglass.kernel.blobs.base import MAX_KEY_BYTES, RESERVED_SEGMENT_PREFIX

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

BAD_KEYS = [
    "",
    "/etc/passwd",
    "../secret",
    "a/../../secret",
    "a/..",
    "..",
    ".",
    "a/./b",
    "a//b",
    "a/b/",
    "a\\b",
    "..\\..\\secret",
    "a\x00b",
    "a\nb",
    "\udcff",  # a lone surrogate: not encodable as UTF-8
    "x" * (MAX_KEY_BYTES + 1),
    f"a/{RESERVED_SEGMENT_PREFIX}0123",
]


@pytest.fixture(scope="session")
def blob_s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def blob_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Fake credentials, and no profile or config file of the developer's leaking in.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def blob_bucket(blob_s3_endpoint: str, blob_aws_env: None) -> str:
    """A fresh, empty bucket per test, so tests cannot see each other's keys."""
    name = f"spyglass-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=blob_s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    client.close()
    return name


@pytest.fixture(params=["local", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        store = open_blob_store("", tmp_path)
    else:
        bucket = request.getfixturevalue("blob_bucket")
        endpoint = request.getfixturevalue("blob_s3_endpoint")
        # A prefix, as a shared bucket would use, so that prefix handling is always on.
        store = open_blob_store(f"s3://{bucket}/install/one", tmp_path, endpoint)
    yield store
    store.close()


def put_many(store: BlobStore, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda key: store.put(key, key.encode()), keys))


# -- behaviour shared by every store -------------------------------------------------------


def test_round_trip(blob_store: BlobStore) -> None:
    key = "events/12/ab/abcdef.json.zst"
    assert not blob_store.exists(key)
    blob_store.put(key, b'{"event_id": "abcdef"}')
    assert blob_store.exists(key)
    assert blob_store.get(key) == b'{"event_id": "abcdef"}'


def test_overwrite_replaces_the_blob(blob_store: BlobStore) -> None:
    blob_store.put("replays/1/segment-0", b"first, longer payload")
    blob_store.put("replays/1/segment-0", b"second")
    assert blob_store.get("replays/1/segment-0") == b"second"
    assert list(blob_store.iter_keys()) == ["replays/1/segment-0"]


def test_missing_key_raises_blob_not_found(blob_store: BlobStore) -> None:
    with pytest.raises(BlobNotFound) as raised:
        blob_store.get("events/1/nope")
    assert isinstance(raised.value, KeyError)
    assert not blob_store.exists("events/1/nope")


def test_a_prefix_directory_is_not_a_blob(blob_store: BlobStore) -> None:
    blob_store.put("events/1/a", b"x")
    assert not blob_store.exists("events/1")
    with pytest.raises(BlobNotFound):
        blob_store.get("events/1")
    blob_store.delete("events/1")
    assert blob_store.get("events/1/a") == b"x"


def test_delete_is_idempotent(blob_store: BlobStore) -> None:
    blob_store.put("attachments/7/log.txt", b"hello")
    blob_store.delete("attachments/7/log.txt")
    assert not blob_store.exists("attachments/7/log.txt")
    blob_store.delete("attachments/7/log.txt")
    blob_store.delete("never/was/there")
    with pytest.raises(BlobNotFound):
        blob_store.get("attachments/7/log.txt")


def test_delete_prefix_counts_and_keeps_neighbours(blob_store: BlobStore) -> None:
    doomed = [f"project/12/events/{i}" for i in range(5)] + ["project/12/replays/a/b"]
    kept = ["project/123/events/0", "project/1/events/0", "project/12x"]
    put_many(blob_store, doomed + kept)
    assert blob_store.delete_prefix("project/12/") == len(doomed)
    assert sorted(blob_store.iter_keys()) == sorted(kept)
    assert blob_store.delete_prefix("project/12/") == 0
    assert blob_store.delete_prefix("nothing/here/") == 0


def test_delete_prefix_refuses_the_empty_prefix(blob_store: BlobStore) -> None:
    blob_store.put("a/b", b"x")
    with pytest.raises(ValueError):
        blob_store.delete_prefix("")
    assert blob_store.exists("a/b")


def test_iter_keys_lists_in_byte_order_and_filters_by_string_prefix(
    blob_store: BlobStore,
) -> None:
    keys = ["events/1/a", "events/12/b", "events/1-x", "events/2/c", "events-old/d", "é/f", "z"]
    put_many(blob_store, keys)
    assert list(blob_store.iter_keys()) == sorted(keys, key=lambda k: k.encode())
    assert list(blob_store.iter_keys("events/1")) == ["events/1-x", "events/1/a", "events/12/b"]
    assert list(blob_store.iter_keys("events/1/")) == ["events/1/a"]
    assert list(blob_store.iter_keys("events/12/b")) == ["events/12/b"]
    assert list(blob_store.iter_keys("missing/")) == []
    assert list(blob_store.iter_keys("z/")) == []


def test_more_than_a_thousand_keys(blob_store: BlobStore) -> None:
    # S3 lists and deletes 1000 keys per request: this crosses a page boundary.
    keys = [f"bulk/{i:05d}" for i in range(1100)]
    started = time.monotonic()
    put_many(blob_store, keys)
    blob_store.put("other/0", b"stays")
    assert list(blob_store.iter_keys("bulk/")) == keys
    assert blob_store.delete_prefix("bulk/") == 1100
    assert list(blob_store.iter_keys()) == ["other/0"]
    assert time.monotonic() - started < 30  # about 2-3s on a laptop; a hang fails loudly


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_rejected_everywhere(blob_store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        blob_store.put(key, b"x")
    with pytest.raises(ValueError):
        blob_store.get(key)
    with pytest.raises(ValueError):
        blob_store.exists(key)
    with pytest.raises(ValueError):
        blob_store.delete(key)
    if key not in ("", "a/b/"):  # both are valid prefixes
        with pytest.raises(ValueError):
            list(blob_store.iter_keys(key))
        with pytest.raises(ValueError):
            blob_store.delete_prefix(key)


def test_binary_data_round_trips(blob_store: BlobStore) -> None:
    payloads = {
        "bin/empty": b"",
        "bin/every-byte": bytes(range(256)) * 4,
        "bin/random": os.urandom(1 << 20),
        "bin/crlf": b"\r\n\x00\r\n",
    }
    for key, data in payloads.items():
        blob_store.put(key, data)
    for key, data in payloads.items():
        assert blob_store.get(key) == data


def test_unicode_keys(blob_store: BlobStore) -> None:
    key = "attachments/ünïcode ключ/文件 with spaces & #?%.txt"
    blob_store.put(key, b"ok")
    assert blob_store.get(key) == b"ok"
    assert list(blob_store.iter_keys("attachments/")) == [key]


segment = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=["Cc", "Cs"], exclude_characters="/\\"
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", "..") and not s.startswith(RESERVED_SEGMENT_PREFIX))
good_keys = st.lists(segment, min_size=1, max_size=5).map("/".join)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=good_keys, data=st.binary(max_size=64))
def test_any_valid_key_round_trips(blob_store: BlobStore, key: str, data: bytes) -> None:
    blob_store.put(key, data)
    assert blob_store.get(key) == data
    assert key in set(blob_store.iter_keys())
    blob_store.delete(key)
    assert not blob_store.exists(key)


# -- key validation ------------------------------------------------------------------------


@given(key=st.text(max_size=40))
def test_validate_key_accepts_only_paths_that_stay_inside(key: str) -> None:
    root = Path("/srv/blobs")
    try:
        validate_key(key)
    except ValueError:
        return
    segments = key.split("/")
    assert all(s not in ("", ".", "..") for s in segments)
    assert "\\" not in key and "\x00" not in key and not key.startswith("/")
    resolved = Path(os.path.normpath(root / key))
    assert resolved.parts[: len(root.parts)] == root.parts
    assert resolved.parts[len(root.parts) :] == tuple(segments)


@given(key=good_keys)
def test_validate_key_accepts_well_formed_keys(key: str) -> None:
    assert validate_key(key) == key
    assert validate_prefix(key + "/") == key + "/"


@given(
    left=good_keys,
    right=good_keys,
    join=st.sampled_from(["/../", "/./", "//", "\\", "\x00", "\n", f"/{RESERVED_SEGMENT_PREFIX}"]),
)
def test_validate_key_rejects_any_bad_part(left: str, right: str, join: str) -> None:
    with pytest.raises(ValueError):
        validate_key(left + join + right)
    with pytest.raises(ValueError):
        validate_key("/" + left)


# -- the local directory store -------------------------------------------------------------


def test_local_writes_leave_no_temporary_files_and_prune_empty_directories(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.put("a/b/c/d", b"1")
    store.put("a/b/e", b"2")
    assert sorted(p.name for p in (tmp_path / "blobs" / "a" / "b").iterdir()) == ["c", "e"]
    store.delete("a/b/c/d")
    assert not (tmp_path / "blobs" / "a" / "b" / "c").exists()
    assert store.delete_prefix("a/") == 1
    assert list((tmp_path / "blobs").iterdir()) == []


def test_local_listing_skips_foreign_and_temporary_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.put("a/b", b"1")
    (tmp_path / "blobs" / "a" / f"{RESERVED_SEGMENT_PREFIX}deadbeef").write_bytes(b"partial")
    (tmp_path / "blobs" / "a" / "back\\slash").write_bytes(b"foreign")
    (tmp_path / "outside").write_bytes(b"secret")
    (tmp_path / "blobs" / "link").symlink_to(tmp_path)
    assert list(store.iter_keys()) == ["a/b"]


def test_local_key_cannot_also_be_a_directory(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.put("a/b", b"1")
    with pytest.raises(OSError):
        store.put("a/b/c", b"2")
    with pytest.raises(OSError):
        store.put("a", b"3")
    assert store.get("a/b") == b"1"


def test_bad_keys_never_touch_the_disk(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    for key in BAD_KEYS:
        with pytest.raises(ValueError):
            store.put(key, b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["blobs"]
    assert list((tmp_path / "blobs").iterdir()) == []


# -- the S3 store and the factory ----------------------------------------------------------


def test_s3_prefixes_isolate_stores_in_one_bucket(
    blob_bucket: str, blob_s3_endpoint: str, tmp_path: Path
) -> None:
    one = open_blob_store(f"s3://{blob_bucket}/install/one", tmp_path, blob_s3_endpoint)
    two = open_blob_store(f"s3://{blob_bucket}/install/two/", tmp_path, blob_s3_endpoint)
    whole = open_blob_store(f"s3://{blob_bucket}", tmp_path, blob_s3_endpoint)
    one.put("k", b"1")
    two.put("k", b"2")
    assert (one.get("k"), two.get("k")) == (b"1", b"2")
    assert list(whole.iter_keys()) == ["install/one/k", "install/two/k"]
    assert one.delete_prefix("k") == 1
    assert two.get("k") == b"2"
    for store in (one, two, whole):
        store.close()


def test_s3_region_defaults_to_us_east_1(
    blob_aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    store = open_blob_store("s3://some-bucket", tmp_path)
    assert isinstance(store, S3BlobStore)
    assert store.client.meta.region_name == "us-east-1"
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert open_blob_store("s3://some-bucket", tmp_path).client.meta.region_name == "eu-west-3"


def test_factory_opens_local_stores(tmp_path: Path) -> None:
    default = open_blob_store("", tmp_path)
    assert isinstance(default, LocalBlobStore) and default.root == tmp_path / "blobs"
    elsewhere = open_blob_store(f"file://{tmp_path}/other%20dir", tmp_path)
    assert isinstance(elsewhere, LocalBlobStore) and elsewhere.root == tmp_path / "other dir"
    assert (tmp_path / "other dir").is_dir()


@pytest.mark.parametrize(
    "url",
    ["file://relative/path", "file:relative", "s3://", "s3:///prefix", "s3://b/../x", "gs://b"],
)
def test_factory_rejects_bad_urls(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        open_blob_store(url, tmp_path)
