"""Agent assist ranking (bot/assist.py) without Rasa: the model's scores are given as parse data."""
import pytest

from bot.assist import FUZZY_WEIGHT, MODEL_WEIGHT, ExampleIndex, rank_answers, suggestions
from bot.dialogue.knowledge import Answer, KnowledgeBase, knowledge_base

KB = KnowledgeBase([
    Answer("faq/plans", "utter_faq/plans", "FAQ 1", {"en": "Plans", "ms": "Pelan"},
           {"en": "There are three plans.", "ms": "Terdapat tiga pelan."},
           ("what plans do you have", "pelan apa yang ada", "how much is each plan")),
    Answer("faq/payment_methods", "utter_faq/payment_methods", "FAQ 20", {"en": "Paying", "ms": "Bayaran"},
           {"en": "Pay via JomPAY.", "ms": "Bayar melalui JomPAY."},
           ("how can i pay my bill", "cara bayar bil", "boleh bayar guna kad debit")),
    Answer("ask_termination_penalty", "utter_ask_termination_penalty", "FAQ 32, 33",
           {"en": "Penalty", "ms": "Penalti"}, {"en": "Fee x remaining months.", "ms": "Yuran x baki bulan."},
           ("what is the penalty if i terminate early", "berapa penalti kalau tamatkan awal")),
])


def parse(intents, faq=()):
    return {
        "intent": {"name": intents[0][0], "confidence": intents[0][1]},
        "intent_ranking": [{"name": name, "confidence": c} for name, c in intents],
        "response_selector": {"faq": {"ranking": [{"intent_response_key": k, "confidence": c} for k, c in faq]}},
    }


def test_the_model_and_the_similarity_are_combined():
    data = parse([("faq", 0.9), ("ask_termination_penalty", 0.1)],
                 faq=[("faq/plans", 0.8), ("faq/payment_methods", 0.2)])
    ranked = rank_answers(data, {"faq/payment_methods": 1.0}, KB.keys())
    scores = dict(ranked)
    assert scores["faq/plans"] == pytest.approx(MODEL_WEIGHT * 0.72, abs=1e-3)
    assert scores["faq/payment_methods"] == pytest.approx(MODEL_WEIGHT * 0.18 + FUZZY_WEIGHT * 1.0, abs=1e-3)
    assert [key for key, _ in ranked] == ["faq/plans", "faq/payment_methods", "ask_termination_penalty"]
    assert all(0 <= score <= 1 for _, score in ranked)


def test_without_the_model_the_similarity_still_ranks():
    ranked = rank_answers(None, {"faq/plans": 0.5, "faq/payment_methods": 0.9, "unknown/key": 1.0}, KB.keys())
    assert [key for key, _ in ranked] == ["faq/payment_methods", "faq/plans"]
    assert rank_answers(None, {}, KB.keys()) == []


def test_similarity_reads_shortforms_and_typos():
    index = ExampleIndex(KB)
    best = max(index.similarity("camne nk bayar bil").items(), key=lambda item: item[1])
    assert best[0] == "faq/payment_methods"
    assert index.similarity("") == {} and index.similarity("   ") == {}


def test_suggestions_are_in_the_customers_language_with_sources():
    data = parse([("faq", 0.95)], faq=[("faq/plans", 0.9)])
    (first, *rest) = suggestions(data, "pelan apa ada", "ms", kb=KB)
    assert (first.key, first.title, first.source) == ("faq/plans", "Pelan", "FAQ 1")
    assert first.answer == "Terdapat tiga pelan."
    assert len(rest) <= 2 and not first.account_aware
    english = suggestions(data, "which plans", "en", kb=KB)[0]
    assert english.answer == "There are three plans."


def test_a_verified_customer_gets_their_own_figures_for_account_intents():
    data = parse([("ask_termination_penalty", 0.9), ("faq", 0.1)], faq=[("faq/plans", 1.0)])
    asked = []

    def own(key):
        asked.append(key)
        return "Your penalty is RM468.00."

    top = suggestions(data, "penalty if i stop now", "en", kb=KB, account_answer=own)
    assert top[0].key == "ask_termination_penalty" and top[0].account_aware
    assert top[0].answer == "Your penalty is RM468.00." and top[0].source == "FAQ 32, 33"
    assert asked == ["ask_termination_penalty"]            # only account intents are computed


def test_the_real_knowledge_base_answers_its_own_example_questions():
    kb = knowledge_base()
    index = ExampleIndex(kb)
    found = 0
    for answer in kb:
        assert answer.text("en") and answer.text("ms") and answer.source, answer.key
        ranked = rank_answers(None, index.similarity(answer.examples[0]), kb.keys(), limit=3)
        found += answer.key in [key for key, _ in ranked]
    assert found >= 0.9 * len(kb)           # similarity alone; with the model's ranking it is the model's call
