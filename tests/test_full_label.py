"""The whole-answer classifier (bot/nlu/full_label.py), on plain data; the real sentence embedding is
tested in tests/test_sentence_embedding.py."""
import pickle

import numpy as np
import pytest

from bot.nlu.full_label import decide, parse_fields, train_full_label_classifier
from bot.nlu.understanding import understanding_from_parse
from bot.vocabulary import full_label


def test_decide():
    scores = {"faq/plans": 0.21, "faq/payment_methods": 0.59, "greet": 0.2}
    assert decide(scores, 0.3, 0.0) == ("faq/payment_methods", False)
    assert decide(scores, 0.6, 0.0) == ("faq/payment_methods", True)              # unsure
    assert decide({"a": 0.41, "b": 0.40}, 0.3, 0.05) == ("a", True)               # too close to the next
    assert decide({"a": 0.40, "b": 0.40}, 0.3, 0.0) == ("a", False)               # a tie: the first by name
    assert decide({}, 0.3, 0.0) == (None, True)


def test_parse_fields_keep_rasas_shape_and_the_chosen_answer():
    scores = {"faq/plans": 0.2, "faq/payment_methods": 0.5, "greet": 0.25, "support/eula": 0.05}
    intent, ranking, selector = parse_fields(scores, "faq/payment_methods")
    assert intent == {"name": "faq", "confidence": pytest.approx(0.7)}
    assert [r["name"] for r in ranking] == ["faq", "greet", "support"]
    picked = selector["faq"]["response"]
    assert picked["intent_response_key"] == "faq/payment_methods" and picked["utter_action"] == \
        "utter_faq/payment_methods"
    assert picked["responses"] == []                         # the domain answers it, by utter_action
    assert picked["confidence"] == pytest.approx(0.5 / 0.7)
    assert [r["intent_response_key"] for r in selector["faq"]["ranking"]] == ["faq/payment_methods", "faq/plans"]
    assert selector["support"]["response"]["intent_response_key"] == "support/eula"
    assert selector["all_retrieval_intents"] == ["faq", "support"]      # Rasa's processor reads the full key by it
    parse = {"intent": intent, "intent_ranking": ranking, "response_selector": selector}
    assert full_label(parse, intent["name"]) == "faq/payment_methods"
    understood = understanding_from_parse(parse)             # intent x answer = the answer's score
    assert understood.label == "faq/payment_methods" and understood.confidence == pytest.approx(0.5)
    # The best label is a plain intent: it comes first even if another intent's answers add up to more.
    intent, ranking, selector = parse_fields({"greet": 0.4, "faq/plans": 0.35, "faq/payment_methods": 0.25}, "greet")
    assert intent["name"] == "greet" and ranking[1]["name"] == "faq"
    assert selector["faq"]["response"]["intent_response_key"] == "faq/plans"
    assert "support" not in selector                         # no support answer scored


def _embeddings(texts, dimensions=8):
    """Stand-in sentence embeddings for the arithmetic: a unit vector per text, the same for the same text."""
    rng = np.random.default_rng(7)
    table = {text: rng.normal(size=dimensions) for text in sorted(set(texts))}
    return np.vstack([table[text] / np.linalg.norm(table[text]) for text in texts])


def test_the_classifier_learns_whole_answers():
    examples = [("berapa harga plan", "faq/plans"), ("what are the plans", "faq/plans"),
                ("harga pakej ksos", "faq/plans"), ("how do i pay", "faq/payment_methods"),
                ("boleh bayar guna boost", "faq/payment_methods"), ("cara bayar bil", "faq/payment_methods"),
                ("hello", "greet"), ("hai", "greet"), ("selamat pagi", "greet")]
    texts = [text for text, _ in examples]
    model = train_full_label_classifier(examples, _embeddings(texts), embedding_weight=5.0)
    assert set(model.labels) == {"faq/plans", "faq/payment_methods", "greet"}
    scores = model.scores("bayar guna kad", np.zeros(8))
    assert max(scores, key=scores.get) == "faq/payment_methods"
    assert sum(scores.values()) == pytest.approx(1.0)


def test_the_sentence_embedding_counts_by_its_weight():
    """Two answers told apart only by their embeddings: with a weight the embedding decides, without it not."""
    examples = [("same words", "faq/plans"), ("same words", "greet")] * 3
    plans, greet = np.eye(8)[0], np.eye(8)[1]
    embeddings = np.vstack([plans, greet] * 3)
    weighted = train_full_label_classifier(examples, embeddings, embedding_weight=5.0)
    assert weighted.scores("same words", plans)["faq/plans"] > 0.9
    assert weighted.scores("same words", greet)["greet"] > 0.9
    unweighted = train_full_label_classifier(examples, embeddings, embedding_weight=0.0)
    assert unweighted.scores("same words", plans)["faq/plans"] == pytest.approx(0.5)


def test_malay_stems_are_features():
    """"pembayaran" was never seen, but its stem "bayar" was (in "membayar")."""
    examples = [("cara membayar", "faq/payment_methods"), ("nak membayar", "faq/payment_methods"),
                ("senarai pelan", "faq/plans"), ("pelan apa ada", "faq/plans")]
    model = train_full_label_classifier(examples, np.zeros((4, 8)), embedding_weight=0.0)
    scores = model.scores("pembayaran", np.zeros(8))
    assert max(scores, key=scores.get) == "faq/payment_methods"


def test_a_message_of_mostly_unseen_words_is_told_apart():
    examples = [("berapa harga plan", "faq/plans"), ("hello there", "greet")]
    model = train_full_label_classifier(examples, np.zeros((2, 8)), embedding_weight=5.0)
    assert model.known_share("blorf snargle harga") == pytest.approx(1 / 3)
    assert model.known_share("berapa harga") == 1.0
    assert model.known_share("zzz") == 1.0                     # one word: the scores decide


def test_a_conversation_intent_needs_more_than_an_answer():
    scores = {"goodbye": 0.45, "faq/plans": 0.30, "greet": 0.25}
    assert decide(scores, 0.1, 0.0, conversation_threshold=0.5) == ("goodbye", True)     # unsure: fall back
    assert decide({"faq/plans": 0.45, "goodbye": 0.55}, 0.1, 0.0, 0.5) == ("goodbye", False)
    assert decide({"faq/plans": 0.45, "goodbye": 0.30}, 0.1, 0.0, 0.5) == ("faq/plans", False)
    assert decide({"ask_my_subscription": 0.45, "goodbye": 0.30}, 0.1, 0.0, 0.5) == ("ask_my_subscription", False)


def test_sparse_margins_equal_scikit_learns_transform():
    """The direct TF-IDF arithmetic (no scikit-learn checks at parse time) gives scikit-learn's numbers: repeated
    terms (sublinear tf), unseen terms, Malay stems, punctuation, other scripts, nothing known at all."""
    examples = [("berapa harga plan starter", "faq/plans"), ("plan plan apa yang ada", "faq/plans"),
                ("macam mana nak membayar bil", "faq/payment_methods"),
                ("boleh bayar guna kad kredit?", "faq/payment_methods"),
                ("hello there", "greet"), ("hi hi selamat pagi", "greet")]
    model = train_full_label_classifier(examples, np.zeros((len(examples), 8)), embedding_weight=1.0)
    for text in ["berapa harga plan", "plan plan plan plan", "pembayaran bil bulan ni", "blorf snargle",
                 "", "hi!!! hello?", "harga 价格 plan", "boleh bayar guna kad kredit? hi hi"]:
        expected = np.asarray(model.features.transform([text]) @ model.weights).ravel()
        assert model.sparse_margins(text) == pytest.approx(expected, abs=1e-12), text


def test_a_pickled_model_scores_the_same():
    examples = [("berapa harga plan", "faq/plans"), ("hello there", "greet"), ("selamat pagi", "greet")]
    model = train_full_label_classifier(examples, np.zeros((3, 8)), embedding_weight=1.0)
    before = model.scores("harga plan", np.zeros(8))
    assert model.__getstate__()["_blocks"] == ()      # the lookups are not stored, but rebuilt when loaded
    restored = pickle.loads(pickle.dumps(model))
    assert restored.scores("harga plan", np.zeros(8)) == pytest.approx(before)
