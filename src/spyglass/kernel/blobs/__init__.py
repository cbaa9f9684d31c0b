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
from spyglass.kernel.blobs.s3 import S3BlobStore

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "LocalBlobStore",
    "S3BlobStore",
    "open_blob_store",
    "validate_key",
    "validate_prefix",
]
