"""Blob store on S3 or an S3-compatible server (MinIO, Garage, R2 ...), for scale-out.

Every key lives under an optional prefix inside one bucket, so several installs or
environments can share a bucket. S3 acknowledges a PUT only once the object is stored
durably, which is what ``put`` promises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from spyglass.kernel.blobs.base import (
    BlobNotFound,
    BlobStore,
    is_valid_key,
    validate_key,
    validate_prefix,
)

#: S3 accepts at most this many keys per DeleteObjects request.
DELETE_BATCH = 1000
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3BlobStore(BlobStore):
    """Blobs as objects ``<prefix>/<key>`` in ``bucket``, through a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{validate_key(prefix)}/" if prefix else ""

    @classmethod
    def connect(
        cls, bucket: str, prefix: str = "", endpoint_url: str = "", region: str = "us-east-1"
    ) -> S3BlobStore:
        """Build a client from the usual AWS environment (credentials) and open the store."""
        config = Config(
            retries={"mode": "standard"},
            # Most S3-compatible servers only route path-style requests; AWS accepts both.
            s3={"addressing_style": "path"} if endpoint_url else {},
        )
        client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, region_name=region, config=config
        )
        return cls(client, bucket, prefix)

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _object_key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._object_key(key), Body=data)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as error:
            if _is_missing(error):
                raise BlobNotFound(key) from None
            raise
        with response["Body"] as body:
            return body.read()

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as error:
            if _is_missing(error):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        # S3 answers 204 for a missing key too, so this is idempotent as it stands.
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def delete_prefix(self, prefix: str) -> int:
        if not validate_prefix(prefix):
            raise ValueError("delete_prefix needs a non-empty prefix")
        removed = 0
        # Each listed page holds at most 1000 keys, exactly one DeleteObjects batch. Objects
        # under the prefix that are not valid keys are removed too: retention means all.
        for page in self._pages(prefix):
            object_keys = [item["Key"] for item in page.get("Contents", [])]
            for start in range(0, len(object_keys), DELETE_BATCH):
                batch = object_keys[start : start + DELETE_BATCH]
                removed += self._delete_batch(batch)
        return removed

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        for page in self._pages(prefix):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                if is_valid_key(key):
                    yield key

    def close(self) -> None:
        self.client.close()

    def _pages(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        yield from paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)

    def _delete_batch(self, object_keys: list[str]) -> int:
        response = self.client.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": key} for key in object_keys], "Quiet": True},
        )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise OSError(
                f"S3 refused to delete {len(errors)} of {len(object_keys)} objects in "
                f"{self.bucket!r}, first {first.get('Key')!r}: {first.get('Code')} "
                f"{first.get('Message')}"
            )
        return len(object_keys)


def _is_missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in _MISSING_CODES
