"""Two questions in one message, with the trained model: the development set tests/nlu_multi/ (make eval prints
its table) keeps its floors, and a conversation answers both questions, in the customer's language."""
from tools.evaluation import predict_two_questions

# Floors below what make eval measured (README, Measured: 14 to 16 of 16 both answered, 0 of 6 unasked).
MIN_BOTH_ANSWERED = 13
MAX_UNASKED_SECOND = 1


def test_two_questions_get_two_answers_and_one_question_gets_one(model_path):
    results = predict_two_questions(model_path)
    two = [r for r in results if len(r.expected) == 2]
    one = [r for r in results if len(r.expected) == 1]
    assert len(two) >= 15 and len(one) >= 6
    both = [r for r in two if (r.first, r.second) == r.expected]
    assert len(both) >= MIN_BOTH_ANSWERED, [r for r in two if r not in both]
    assert sum(r.second is not None for r in one) <= MAX_UNASKED_SECOND


BOTH_ASKED = [
    ("en", "what is the price of the Professional plan? also, where can I download the app", "You also asked about"),
    ("ms", "berapakah yuran pelan Professional? satu lagi, di mana saya boleh muat turun aplikasi",
     "Anda juga bertanya tentang"),
]


def test_both_answers_come_back_in_order_and_in_malay(assistant):
    from bot.dialogue.knowledge import knowledge_base

    kb = knowledge_base()
    for language, message, lead in BOTH_ASKED:
        replies = [m.get("text", "") for m in assistant.send(f"two-questions-{language}", message)]
        assert replies[0].startswith(kb.get("faq/plans").text(language).strip()[:60])
        assert replies[1] == f"{lead} {kb.get('faq/download').title(language)}:"
        assert replies[2].startswith(kb.get("faq/download").text(language).strip()[:60])


def test_a_single_question_gets_one_answer(assistant):
    replies = assistant.send("one-question", "how much is the Starter plan?")
    assert not any("also asked" in m.get("text", "") for m in replies)
