"""The multilingual sentence embedding (bot/nlu/sentence_embedding.py): it comes with the package and needs no
network (a unit test: conftest refuses every socket connect and every process), and it puts a Malay question
next to its English paraphrase."""
import numpy as np

from bot.nlu.sentence_embedding import BATCH, DIMENSIONS, embed

MALAY = ["berapa harga pelan ini", "saya lupa kata laluan", "macam mana nak bayar bil",
         "komputer saya dijangkiti virus", "bagaimana untuk menamatkan langganan"]
ENGLISH = ["how much is this plan", "I forgot my password", "how do I pay my bill",
           "my computer is infected with a virus", "how do I end my subscription"]


def test_unit_vectors_offline_and_the_same_every_time():
    vectors = embed(["berapa harga pelan", "how much is the plan"])
    assert vectors.shape == (2, DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(embed(["berapa harga pelan"])[0], vectors[0])
    assert embed([]).shape == (0, DIMENSIONS)


def test_texts_embedded_together_are_embedded_as_alone():
    texts = (MALAY + ENGLISH)[:BATCH + 1]                # more than one engine call
    together = embed(texts)
    assert together.shape == (len(texts), DIMENSIONS)
    assert np.allclose(together, np.vstack([embed([text]) for text in texts]), atol=1e-6)


def test_a_malay_question_is_nearest_its_english_paraphrase():
    similarity = embed(MALAY) @ embed(ENGLISH).T
    assert list(similarity.argmax(axis=1)) == list(range(len(MALAY)))


def test_the_thread_count_reaches_the_engine_even_after_scikit_learn():
    """scikit-learn (imported by Rasa before us) starts the OpenMP runtime the engine then shares, so an
    environment variable set later changes nothing: the count is set on the runtime (one thread, then two)."""
    import sklearn.linear_model  # noqa: F401  - as in Rasa: scikit-learn's OpenMP runtime is loaded first
    import threadpoolctl

    def engine_threads():
        return {info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "openmp"}

    embed(["berapa harga pelan"], threads=1)
    assert engine_threads() == {1}
    embed(["berapa harga pelan"], threads=2)
    assert engine_threads() == {2}
    # ... and BLAS on one thread, whose spinning second thread would take a core from the engine's.
    assert {info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"} == {1}


def test_pieces_combine_by_their_token_counts_into_a_unit_vector():
    from bot.nlu.sentence_embedding import combine, token_counts

    first, second = np.eye(DIMENSIONS, dtype=np.float32)[:2]
    combined = combine(np.vstack([first, second]), [3, 1])
    assert combined.dtype == np.float32 and np.isclose(np.linalg.norm(combined), 1.0)
    assert np.allclose(combined[:2], np.array([3, 1]) / np.sqrt(10))
    # The engine's count: the "query: " prefix and two special tokens come with every text.
    short, longer = token_counts(["harga", "berapa harga pelan starter sebulan"])
    assert 3 < short < longer
