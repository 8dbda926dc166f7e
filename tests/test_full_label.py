"""The whole-answer classifier and its blend with DIET (bot/nlu/full_label.py), on plain data."""
import pytest

from bot.nlu.full_label import blend, decide, diet_scores, parse_fields, train_full_label_classifier
from bot.nlu.understanding import understanding_from_parse
from bot.vocabulary import full_label

SELECTOR = {
    "all_retrieval_intents": ["faq", "support"],
    "faq": {"response": {"responses": [{"text": "Three plans"}], "confidence": 0.6, "intent_response_key": "faq/plans",
                         "utter_action": "utter_faq/plans"},
            "ranking": [{"confidence": 0.6, "intent_response_key": "faq/plans"},
                        {"confidence": 0.4, "intent_response_key": "faq/payment_methods"}]},
    "support": {"response": {"responses": [], "confidence": 1.0, "intent_response_key": "support/eula",
                             "utter_action": "utter_support/eula"},
                "ranking": [{"confidence": 1.0, "intent_response_key": "support/eula"}]},
}
RANKING = [{"name": "faq", "confidence": 0.7}, {"name": "greet", "confidence": 0.2},
           {"name": "support", "confidence": 0.1}]


def test_diet_scores_are_intent_times_answer():
    scores = diet_scores(RANKING, SELECTOR)
    assert scores == pytest.approx({"faq/plans": 0.42, "faq/payment_methods": 0.28, "greet": 0.2,
                                    "support/eula": 0.1})


def test_blend_and_decide():
    diet = {"faq/plans": 0.42, "faq/payment_methods": 0.28, "greet": 0.3}
    lexical = {"faq/payment_methods": 0.9, "greet": 0.1}
    blended = blend(diet, lexical, 0.5)
    assert blended == pytest.approx({"faq/plans": 0.21, "faq/payment_methods": 0.59, "greet": 0.2})
    assert blend(diet, lexical, 0.0) == pytest.approx({**diet, "greet": 0.3})
    assert decide(blended, 0.3, 0.0) == ("faq/payment_methods", False)
    assert decide(blended, 0.6, 0.0) == ("faq/payment_methods", True)             # unsure
    assert decide({"a": 0.41, "b": 0.40}, 0.3, 0.05) == ("a", True)               # too close to the next
    assert decide({}, 0.3, 0.0) == (None, True)


def test_parse_fields_keep_rasas_shape_and_the_blended_answer():
    blended = {"faq/plans": 0.2, "faq/payment_methods": 0.5, "greet": 0.25, "support/eula": 0.05}
    intent, ranking, selector = parse_fields(blended, "faq/payment_methods", SELECTOR)
    assert intent == {"name": "faq", "confidence": pytest.approx(0.7)}
    assert [r["name"] for r in ranking] == ["faq", "greet", "support"]
    picked = selector["faq"]["response"]
    assert picked["intent_response_key"] == "faq/payment_methods" and picked["utter_action"] == \
        "utter_faq/payment_methods"
    assert picked["responses"] == []                         # not the selector's own pick: the domain answers it
    assert picked["confidence"] == pytest.approx(0.5 / 0.7)
    assert selector["all_retrieval_intents"] == ["faq", "support"]
    parse = {"intent": intent, "intent_ranking": ranking, "response_selector": selector}
    assert full_label(parse, intent["name"]) == "faq/payment_methods"
    understood = understanding_from_parse(parse)             # intent x answer = the blended score
    assert understood.label == "faq/payment_methods" and understood.confidence == pytest.approx(0.5)
    # The best label is a plain intent: it comes first even if another intent's answers add up to more.
    intent, ranking, selector = parse_fields({"greet": 0.4, "faq/plans": 0.3, "faq/payment_methods": 0.3},
                                             "greet", SELECTOR)
    assert intent["name"] == "greet" and ranking[1]["name"] == "faq"
    assert selector["faq"]["response"]["intent_response_key"] in ("faq/plans", "faq/payment_methods")
    assert selector["faq"]["response"]["responses"] in ([], [{"text": "Three plans"}])


def test_the_classifier_learns_whole_answers():
    examples = [("berapa harga plan", "faq/plans"), ("what are the plans", "faq/plans"),
                ("harga pakej ksos", "faq/plans"), ("how do i pay", "faq/payment_methods"),
                ("boleh bayar guna boost", "faq/payment_methods"), ("cara bayar bil", "faq/payment_methods"),
                ("hello", "greet"), ("hai", "greet"), ("selamat pagi", "greet")]
    model = train_full_label_classifier(examples)
    assert set(model.labels) == {"faq/plans", "faq/payment_methods", "greet"}
    scores = model.scores("bayar guna kad")
    assert max(scores, key=scores.get) == "faq/payment_methods"
    assert sum(scores.values()) == pytest.approx(1.0)


def test_one_selector_for_both_retrieval_intents():
    """A ResponseSelector without `retrieval_intent` ranks faq/* and support/* answers together, under "default":
    each intent's answers are taken from it, and the chosen intent's answer is the default's."""
    default = {"all_retrieval_intents": ["faq", "support"],
               "default": {"response": {"intent_response_key": "support/eula", "confidence": 0.5, "responses": []},
                           "ranking": [{"intent_response_key": "support/eula", "confidence": 0.5},
                                       {"intent_response_key": "faq/plans", "confidence": 0.3},
                                       {"intent_response_key": "faq/payment_methods", "confidence": 0.1}]}}
    scores = diet_scores(RANKING, default)
    assert scores == pytest.approx({"faq/plans": 0.525, "faq/payment_methods": 0.175, "greet": 0.2,
                                    "support/eula": 0.1})
    intent, _, selector = parse_fields(scores, "faq/plans", default)
    assert intent["name"] == "faq"
    assert selector["default"]["response"]["intent_response_key"] == "faq/plans" == \
        selector["faq"]["response"]["intent_response_key"]
    assert selector["support"]["response"]["intent_response_key"] == "support/eula"


def test_a_message_of_mostly_unseen_words_is_told_apart():
    model = train_full_label_classifier([("berapa harga plan", "faq/plans"), ("hello there", "greet")])
    assert model.known_share("blorf snargle harga") == pytest.approx(1 / 3)
    assert model.known_share("berapa harga") == 1.0
    assert model.known_share("zzz") == 1.0                     # one word: the scores decide
