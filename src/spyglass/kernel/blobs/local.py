"""Blob store in a local directory: one file per key, written atomically and durably.

A key is a path under the root directory. A write goes to a temporary file in the target
directory, is fsynced, renamed over the target with ``os.replace`` and then the directory is
fsynced, so a reader sees the old blob or the new one, and a crash after ``put`` returns
loses neither. Directories are created on demand and pruned when they become empty.

On disk a key cannot also be a directory: with "a/b" stored, ``put("a/b/c")`` raises OSError
(S3 allows both; shard keys so that no key is another key's prefix directory).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from spyglass.kernel.blobs.base import (
    RESERVED_SEGMENT_PREFIX,
    BlobNotFound,
    BlobStore,
    is_valid_key,
    validate_key,
    validate_prefix,
)

# A concurrent delete may prune a directory between our mkdir and creating the temp file in
# it; recreating it a few times is enough, since a directory holding a file is never pruned.
_PUT_ATTEMPTS = 5


class LocalBlobStore(BlobStore):
    """Blobs as files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        for attempt in range(_PUT_ATTEMPTS):
            try:
                self._make_parents(path.parent)
                self._write_atomically(path, data)
                return
            except FileNotFoundError:
                if attempt == _PUT_ATTEMPTS - 1:
                    raise

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            return  # a directory is not a blob
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        _fsync_dir(path.parent)
        self._prune(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        if not validate_prefix(prefix):
            raise ValueError("delete_prefix needs a non-empty prefix")
        removed = 0
        touched: set[Path] = set()
        for key in self.iter_keys(prefix):
            path = self.root / key
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # removed concurrently; not ours to count
            removed += 1
            touched.add(path.parent)
        for directory in touched:
            _fsync_dir(directory)
        # Deepest first, so that a parent is only tried once its children are gone.
        for directory in sorted(touched, key=lambda p: len(p.parts), reverse=True):
            self._prune(directory)
        return removed

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        directory, _, name_start = prefix.rpartition("/")
        base = self.root / directory if directory else self.root
        start = f"{directory}/" if directory else ""
        yield from self._walk(base, start, name_start)

    def _walk(self, directory: Path, key_start: str, name_start: str = "") -> Iterator[str]:
        try:
            with os.scandir(directory) as scan:
                entries = [e for e in scan if e.name.startswith(name_start)]
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sorting a directory's entries with "/" after directory names yields whole keys in
        # byte order, the order S3 lists them in.
        sortable = []
        for entry in entries:
            is_dir = entry.is_dir(follow_symlinks=False)
            try:
                sort_key = (entry.name + ("/" if is_dir else "")).encode("utf-8")
            except UnicodeEncodeError:
                continue  # not a name we wrote
            sortable.append((sort_key, is_dir, entry))
        sortable.sort(key=lambda item: item[0])
        for _, is_dir, entry in sortable:
            key = key_start + entry.name
            if is_dir:
                yield from self._walk(Path(entry.path), key + "/")
            elif entry.is_file(follow_symlinks=False) and is_valid_key(key):
                yield key

    def _make_parents(self, directory: Path) -> None:
        """Create ``directory`` and its missing parents, fsyncing each new entry's parent."""
        missing: list[Path] = []
        current = directory
        while current != self.root and not current.is_dir():
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                if not path.is_dir():
                    raise
                continue
            _fsync_dir(path.parent)

    def _write_atomically(self, path: Path, data: bytes) -> None:
        temp = path.with_name(f"{RESERVED_SEGMENT_PREFIX}{secrets.token_hex(8)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove ``directory`` and its parents while they are empty, stopping at the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError as error:
                if error.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    return
                raise
            _fsync_dir(directory.parent)
            directory = directory.parent


def _fsync_dir(directory: Path) -> None:
    # A rename or unlink is durable only once the directory holding the entry is synced.
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return  # pruned concurrently; nothing of ours left to make durable there
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
