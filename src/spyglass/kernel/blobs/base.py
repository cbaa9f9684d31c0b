"""The blob store interface, key rules, and the factory that picks a store from a URL.

Keys are relative slash-separated paths ("events/12/ab/abcdef.json.zst"). The same rules
apply to every store so that a key valid on S3 is valid on disk and cannot escape the blob
directory there.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

#: S3's own limit on key length, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
#: Names starting with this are the local store's in-flight temporary files, so no key
#: segment may start with it (a listing would otherwise confuse the two).
RESERVED_SEGMENT_PREFIX = ".tmp~"
DEFAULT_S3_REGION = "us-east-1"


class BlobNotFound(KeyError):
    """No blob is stored under this key."""


class BlobStore(ABC):
    """Bytes by key. Every method validates its key or prefix and raises ValueError first."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any blob there; durable once it returns."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the blob under ``key``; raise ``BlobNotFound`` when there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob under ``key``; removing a missing blob is not an error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every blob whose key starts with ``prefix``; return how many were removed.

        The prefix must not be empty: wiping a whole store is never what retention means.
        """

    @abstractmethod
    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield the keys that start with ``prefix``, in ascending UTF-8 byte order."""

    def close(self) -> None:
        """Release connections or handles; the store is unusable afterwards."""

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative path, else raise ValueError.

    Rejected: empty, absolute, empty segments ("a//b", trailing "/"), "." and ".." segments,
    backslashes, control characters (NUL included), text that is not valid UTF-8, keys over
    1024 bytes, and segments starting with the reserved temporary-file prefix.
    """
    if not isinstance(key, str):
        raise ValueError(f"blob key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("blob key is empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("blob key is not valid UTF-8") from None
    if size > MAX_KEY_BYTES:
        raise ValueError(f"blob key is longer than {MAX_KEY_BYTES} bytes")
    if "\\" in key:
        raise ValueError(f"blob key contains a backslash: {key!r}")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise ValueError(f"blob key contains a control character: {key!r}")
    if key.startswith("/"):
        raise ValueError(f"blob key is absolute: {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"blob key has an empty, '.' or '..' segment: {key!r}")
        if segment.startswith(RESERVED_SEGMENT_PREFIX):
            raise ValueError(f"blob key segment starts with {RESERVED_SEGMENT_PREFIX!r}: {key!r}")
    return key


def is_valid_key(key: str) -> bool:
    """Whether ``validate_key`` accepts ``key``; for skipping foreign names in listings."""
    try:
        validate_key(key)
    except ValueError:
        return False
    return True


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is empty or a key, optionally ending in "/"; else ValueError.

    A prefix matches keys by string, as on S3: "events/1" matches "events/12/x".
    """
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def open_blob_store(url: str, data_dir: Path, s3_endpoint_url: str = "") -> BlobStore:
    """Open the store named by ``url`` (the ``blob_url`` setting).

    "" means a ``blobs`` directory in ``data_dir``; ``file:///abs/path`` a directory there;
    ``s3://bucket/optional/prefix`` S3 or an S3-compatible server at ``s3_endpoint_url``.
    """
    # Imported here so that base.py stays the interface and local/s3 can import from it.
    from spyglass.kernel.blobs.local import LocalBlobStore

    if not url:
        return LocalBlobStore(Path(data_dir) / "blobs")
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"blob_url must be file:///absolute/path, not {url!r}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"blob_url file path must be absolute: {url!r}")
        return LocalBlobStore(Path(path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"blob_url has no bucket: {url!r}")
        prefix = unquote(parts.path).strip("/")
        if prefix:
            validate_key(prefix)
        region = (
            os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or DEFAULT_S3_REGION
        )
        from spyglass.kernel.blobs.s3 import S3BlobStore  # boto3 costs ~0.2 s to import

        return S3BlobStore.connect(
            bucket=parts.netloc, prefix=prefix, endpoint_url=s3_endpoint_url, region=region
        )
    raise ValueError(f"blob_url must be empty, file:///... or s3://...: {url!r}")
