"""Blob store: raw event payloads, replay segments and attachments, by key.

A local directory by default, S3-compatible object storage for scale-out. Features call
``open_blob_store`` once and then use the ``BlobStore`` interface; they never see which one
they got.
"""

from spyglass.kernel.blobs.base import (
    BlobNotFound,
    BlobStore,
    open_blob_store,
    validate_key,
    validate_prefix,
)
from spyglass.kernel.blobs.local import LocalBlobStore


def __getattr__(name: str) -> object:
    # S3BlobStore pulls in boto3 (~0.2 s); only deployments that use S3 pay for it.
    if name == "S3BlobStore":
        from spyglass.kernel.blobs.s3 import S3BlobStore

        return S3BlobStore
    raise AttributeError(name)

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "LocalBlobStore",
    "S3BlobStore",
    "open_blob_store",
    "validate_key",
    "validate_prefix",
]
