"""Find the existing issues most like an event, for merging and for "similar issues" lists.

Each issue keeps a few exemplar events (the first distinct ones it saw). An event's score
against an issue is its best cosine similarity to one of that issue's exemplars, in [0, 1].

The default backend, ``tfidf``, needs no model: an event's weighted tokens (exception types,
parameterized value words, in-app frames; see ``features``) are hashed into a sparse vector,
and weighted by inverse document frequency over the project's exemplars at query time, so
tokens every issue shares (``type:ValueError``, a common middleware frame) count for little.
The optional backends ``wordllama`` and ``minilm`` embed ``features_text(event)`` instead.

An index belongs to one project, lives in memory, and is not thread-safe; ``to_bytes`` and
``from_bytes`` persist it (numpy arrays in an ``.npz``, no pickle).
"""

from __future__ import annotations

import io
import itertools
import json
import zlib
from typing import Any

import numpy as np

from .config import GroupingConfig
from .embedders import EMBEDDERS, BackendUnavailable, load_embedder
from .features import features, features_text
from .group import Analysis

__all__ = ["MERGE_THRESHOLDS", "BackendUnavailable", "SimilarityIndex"]

_FORMAT = 1
_DIM = 1 << 18
# Chosen on the labelled corpus of benchmarks/grouping_quality.py: the lowest threshold whose
# merges stay precise (see docs/benchmarks.md, "Error grouping").
MERGE_THRESHOLDS: dict[str, float] = {"tfidf": 0.7, "wordllama": 0.97, "minilm": 0.95}


def _token_column(token: str) -> int:
    # crc32, not hash(): columns must be the same in every process that loads the index.
    return zlib.crc32(token.encode("utf-8", "surrogatepass")) & (_DIM - 1)


def _sparse(weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    merged: dict[int, float] = {}
    for token, weight in weights.items():
        column = _token_column(token)
        merged[column] = merged.get(column, 0.0) + weight
    cols = np.fromiter(merged.keys(), dtype=np.int32, count=len(merged))
    vals = np.fromiter(merged.values(), dtype=np.float32, count=len(merged))
    return cols, vals


class _SparseStore:
    """Exemplar rows as sparse vectors, scored by TF-IDF cosine with numpy bincount."""

    def __init__(self) -> None:
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.df = np.zeros(_DIM, dtype=np.float32)
        self._flat: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._scratch = np.zeros(_DIM, dtype=np.float32)

    def append(self, vector: tuple[np.ndarray, np.ndarray]) -> None:
        cols, vals = vector
        self.cols.append(cols)
        self.vals.append(vals)
        self.df[cols] += 1
        self._flat = None

    def forget(self, row: int) -> None:
        self.df[self.cols[row]] -= 1

    def keep(self, rows: list[int]) -> None:
        self.cols = [self.cols[r] for r in rows]
        self.vals = [self.vals[r] for r in rows]
        self._flat = None

    def _flatten(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._flat is None:
            lengths = [len(c) for c in self.cols]
            rows = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
            cols = np.concatenate(self.cols) if self.cols else np.zeros(0, np.int32)
            vals = np.concatenate(self.vals) if self.vals else np.zeros(0, np.float32)
            self._flat = (rows, cols, vals)
        return self._flat

    def scores(self, vector: tuple[np.ndarray, np.ndarray], documents: int) -> np.ndarray:
        rows, cols, vals = self._flatten()
        n = len(self.cols)
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        log_n = np.log1p(documents)
        weights = vals * (log_n - np.log1p(self.df[cols]) + 1.0)
        norms = np.sqrt(np.bincount(rows, weights * weights, minlength=n))
        q_cols, q_vals = vector
        q_weights = q_vals * (log_n - np.log1p(self.df[q_cols]) + 1.0)
        q_norm = float(np.sqrt(np.dot(q_weights, q_weights))) or 1.0
        scratch = self._scratch
        np.add.at(scratch, q_cols, q_weights)
        try:
            dots = np.bincount(rows, weights * scratch[cols], minlength=n)
        finally:
            scratch[q_cols] = 0.0
        return (dots / (np.maximum(norms, 1e-12) * q_norm)).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        _, cols, vals = self._flatten()
        return {
            "lengths": np.array([len(c) for c in self.cols], dtype=np.int32),
            "cols": cols,
            "vals": vals,
        }

    def load(self, arrays: Any) -> None:
        offsets = np.concatenate([[0], np.cumsum(arrays["lengths"])])
        cols, vals = arrays["cols"], arrays["vals"]
        for start, end in itertools.pairwise(offsets):
            self.append((cols[start:end].astype(np.int32), vals[start:end].astype(np.float32)))


class _DenseStore:
    """Exemplar rows as normalized embeddings; cosine is one matrix-vector product."""

    def __init__(self, dim: int) -> None:
        self.matrix = np.zeros((0, dim), dtype=np.float32)
        self.count = 0

    def append(self, vector: np.ndarray) -> None:
        if self.count == len(self.matrix):
            grown = np.zeros((max(16, 2 * len(self.matrix)), self.matrix.shape[1]), np.float32)
            grown[: self.count] = self.matrix[: self.count]
            self.matrix = grown
        self.matrix[self.count] = vector
        self.count += 1

    def forget(self, row: int) -> None:
        pass

    def keep(self, rows: list[int]) -> None:
        self.matrix = self.matrix[rows].copy()
        self.count = len(rows)

    def scores(self, vector: np.ndarray, documents: int) -> np.ndarray:
        return np.clip(self.matrix[: self.count] @ vector, 0.0, 1.0)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"matrix": self.matrix[: self.count]}

    def load(self, arrays: Any) -> None:
        for row in arrays["matrix"]:
            self.append(row.astype(np.float32))


class SimilarityIndex:
    """Per-project nearest-issue search over exemplar events.

    ``backend``: ``"tfidf"`` (default, numpy only), ``"wordllama"`` or ``"minilm"`` (optional
    packages; :class:`BackendUnavailable` if missing). ``merge_threshold``: the score from
    which an event joins the nearest issue instead of opening a new one; defaults to the
    backend's value in :data:`MERGE_THRESHOLDS`. ``max_exemplars``: events kept per issue.
    """

    def __init__(
        self,
        backend: str = "tfidf",
        *,
        merge_threshold: float | None = None,
        max_exemplars: int = 8,
        config: GroupingConfig | None = None,
    ) -> None:
        if backend != "tfidf" and backend not in EMBEDDERS:
            raise BackendUnavailable(f"unknown similarity backend {backend!r}")
        self.backend = backend
        self.merge_threshold = (
            MERGE_THRESHOLDS[backend] if merge_threshold is None else float(merge_threshold)
        )
        self.max_exemplars = max_exemplars
        self.config = config
        self._embedder = None if backend == "tfidf" else load_embedder(backend)
        self._store: _SparseStore | _DenseStore = (
            _SparseStore() if self._embedder is None else _DenseStore(self._embedder.dim)
        )
        self._row_issue: list[int] = []
        self._row_alive: list[bool] = []
        self._row_digest: list[int] = []
        self._issue_rows: dict[int, list[int]] = {}
        self._dead = 0

    def __len__(self) -> int:
        """Number of issues in the index."""
        return len(self._issue_rows)

    def __contains__(self, issue_id: object) -> bool:
        return issue_id in self._issue_rows

    def _vector(self, event: dict[str, Any]) -> tuple[Any, int]:
        analysis = Analysis(event, self.config)
        if self._embedder is None:
            weights = features(analysis)  # type: ignore[arg-type]
            digest = zlib.crc32("\n".join(sorted(weights)).encode("utf-8", "surrogatepass"))
            return _sparse(weights), digest
        text = features_text(analysis)  # type: ignore[arg-type]
        digest = zlib.crc32(text.encode("utf-8", "surrogatepass"))
        return self._embedder.embed([text])[0], digest

    def add(self, issue_id: int, event: dict[str, Any]) -> bool:
        """Keep ``event`` as an exemplar of the issue; False if the issue has enough already
        or an identical one."""
        rows = self._issue_rows.get(issue_id, [])
        if len(rows) >= self.max_exemplars:
            return False
        vector, digest = self._vector(event)
        if any(self._row_digest[r] == digest for r in rows):
            return False
        self._append(issue_id, vector, digest)
        return True

    def _append(self, issue_id: int, vector: Any, digest: int) -> None:
        row = len(self._row_issue)
        self._store.append(vector)
        self._row_issue.append(issue_id)
        self._row_alive.append(True)
        self._row_digest.append(digest)
        self._issue_rows.setdefault(issue_id, []).append(row)

    def remove(self, issue_id: int) -> None:
        """Forget an issue (deleted, or merged into another: add its events there instead)."""
        for row in self._issue_rows.pop(issue_id, []):
            self._row_alive[row] = False
            self._store.forget(row)
            self._dead += 1
        if self._dead > 64 and self._dead > len(self._row_issue) // 2:
            self._compact()

    def _compact(self) -> None:
        keep = [r for r, alive in enumerate(self._row_alive) if alive]
        self._store.keep(keep)
        self._row_issue = [self._row_issue[r] for r in keep]
        self._row_digest = [self._row_digest[r] for r in keep]
        self._row_alive = [True] * len(keep)
        self._issue_rows = {}
        for row, issue in enumerate(self._row_issue):
            self._issue_rows.setdefault(issue, []).append(row)
        self._dead = 0

    def nearest(
        self, event: dict[str, Any], k: int = 5, *, exclude: int | None = None
    ) -> list[tuple[int, float]]:
        """Up to ``k`` issues most similar to ``event`` as ``(issue_id, score)``, best first."""
        if not self._issue_rows or k <= 0:
            return []
        vector, _ = self._vector(event)
        documents = len(self._row_issue) - self._dead
        scores = self._store.scores(vector, documents)
        if self._dead:
            scores = scores * np.asarray(self._row_alive, dtype=np.float32)
        # An issue has at most max_exemplars rows, so this many rows hold k distinct issues.
        wanted = min(len(scores), (k + 1) * self.max_exemplars)
        top = np.argpartition(-scores, wanted - 1)[:wanted] if wanted < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        out: list[tuple[int, float]] = []
        seen: set[int] = set()
        for row in top:
            issue = self._row_issue[row]
            if issue in seen or issue == exclude or not self._row_alive[row] or scores[row] <= 0:
                continue
            seen.add(issue)
            out.append((issue, float(scores[row])))
            if len(out) == k:
                break
        return out

    def to_bytes(self) -> bytes:
        """The index as bytes (an ``.npz``), for the blob store or a database column."""
        if self._dead:
            self._compact()
        meta = {
            "format": _FORMAT,
            "backend": self.backend,
            "merge_threshold": self.merge_threshold,
            "max_exemplars": self.max_exemplars,
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            issues=np.asarray(self._row_issue, dtype=np.int64),
            digests=np.asarray(self._row_digest, dtype=np.uint32),
            **self._store.arrays(),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, config: GroupingConfig | None = None) -> SimilarityIndex:
        """Load an index saved by :meth:`to_bytes`; ``config`` as for the constructor."""
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode())
            if meta.get("format") != _FORMAT:
                raise ValueError(f"unknown similarity index format {meta.get('format')!r}")
            index = cls(
                meta["backend"],
                merge_threshold=meta["merge_threshold"],
                max_exemplars=meta["max_exemplars"],
                config=config,
            )
            loaded = {name: arrays[name] for name in arrays.files}
        index._store.load(loaded)
        for issue, digest in zip(loaded["issues"].tolist(), loaded["digests"].tolist()):
            index._row_issue.append(issue)
            index._row_alive.append(True)
            index._row_digest.append(digest)
            index._issue_rows.setdefault(issue, []).append(len(index._row_issue) - 1)
        return index
