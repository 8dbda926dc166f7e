"""Two questions in one message: the parts of a message (bot/nlu/questions.py) and which second answer a part
asks for (bot/nlu/full_label.py order_two_answers)."""
import pytest

from bot.nlu.full_label import order_two_answers
from bot.nlu.questions import joiners, question_parts


@pytest.mark.parametrize("text, parts", [
    ("how much is the starter plan? and can i pay with jompay?",
     ["how much is the starter plan", "and can i pay with jompay"]),
    ("berapa harga pelan starter dan macam mana nak bayar", ["berapa harga pelan starter", "dan macam mana nak bayar"]),
    ("i forgot my password. also, when is my bill date", ["i forgot my password", "also, when is my bill date"]),
    ("plan starter berapa sebulan? lepas tu boleh bayar guna kad", ["plan starter berapa sebulan",
                                                                   "lepas tu boleh bayar guna kad"]),
])
def test_a_message_is_cut_where_a_second_question_starts(text, parts):
    assert question_parts(text) == parts


@pytest.mark.parametrize("text", [
    "what are the plans and prices",                   # "and" between nouns
    "boleh bayar guna kad kredit juga ke",             # "juga" inside one question
    "saya juga nak tahu harga",
    "how much? ok",                                    # short pieces stay with their neighbour
    "harga",
    "got an email from no-reply@kaspersky.com.my about my subscription, is that really from you",
    "is version 2.5 of the app supported on windows 11",
])
def test_one_question_stays_whole(text):
    assert len(question_parts(text)) == 1


def test_the_joiners_are_lower_case_and_longest_first():
    phrases = joiners()
    assert all(phrase == phrase.lower() for phrase in phrases)
    assert [len(p) for p in phrases] == sorted((len(p) for p in phrases), reverse=True)


def test_the_second_answer_is_another_sure_answer_of_the_knowledge_base_in_the_order_asked():
    plans = {"faq/plans": 0.8, "faq/payment_methods": 0.1, "greet": 0.1}
    payment = {"faq/payment_methods": 0.7, "faq/plans": 0.2, "greet": 0.1}
    assert order_two_answers([plans, payment], "faq/plans", 0.5) == ("faq/plans", "faq/payment_methods")
    # The whole message preferred the later question: the answers still come in the order asked.
    assert order_two_answers([plans, payment], "faq/payment_methods", 0.5) == ("faq/plans", "faq/payment_methods")
    unsure = {"faq/payment_methods": 0.4, "faq/plans": 0.35, "greet": 0.25}
    assert order_two_answers([plans, unsure], "faq/plans", 0.5) == ("faq/plans", None)          # not sure enough
    thanks = {"thank": 0.9, "faq/plans": 0.1}
    assert order_two_answers([plans, thanks], "faq/plans", 0.5) == ("faq/plans", None)          # not an answer
    assert order_two_answers([plans, plans], "faq/plans", 0.5) == ("faq/plans", None)           # the same one
    assert order_two_answers([{}, payment], "faq/plans", 0.5) == ("faq/plans", "faq/payment_methods")
