"""Whole conversations through Rasa's REST channel, with the real action server and the trained model."""
import uuid

import pytest

from bot.dialogue.knowledge import knowledge_base

CONTACT_MARKERS = ("help@tm.com.my", "@helpmeunifi", "100")


def new_sender() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def answer(key: str, language: str) -> str:
    return knowledge_base().get(key).text(language).strip()


def test_greeting_in_english_and_malay(assistant):
    assert "Kaspersky Small Office Security" in assistant.text(new_sender(), "hello there")
    assert assistant.text(new_sender(), "selamat petang").startswith("Helo! Saya pembantu Unifi")


@pytest.mark.parametrize(
    "message, key, language",
    [
        ("how much does the professional plan cost every month?", "faq/plans", "en"),
        ("berapa harga pelan professional sebulan?", "faq/plans", "ms"),
        ("brp harga plan starter sebulan", "faq/plans", "ms"),
        ("which payment methods can I use to pay my KSOS bill?", "faq/payment_methods", "en"),
        ("macam mana saya nak bayar bil kaspersky", "faq/payment_methods", "ms"),
        ("I forgot my password for the KSOS portal", "faq/forgot_password", "en"),
        ("saya lupa kata laluan portal ksos", "faq/forgot_password", "ms"),
        ("what does Kaspersky standard support not cover?", "support/not_covered", "en"),
        ("apa yang sokongan standard kaspersky tidak liputi?", "support/not_covered", "ms"),
    ],
)
def test_answers_come_from_the_knowledge_base_in_the_customers_language(assistant, message, key, language):
    assert assistant.text(new_sender(), message) == answer(key, language)


@pytest.mark.parametrize(
    "message, key, language",
    [
        ("is there a penalty if i terminate before my contract ends?", "ask_termination_penalty", "en"),
        ("kena bayar penalti ke kalau saya tamatkan langganan awal?", "ask_termination_penalty", "ms"),
    ],
)
def test_account_questions_get_the_general_answer_before_verification(assistant, message, key, language):
    reply = assistant.text(new_sender(), message)
    assert reply.startswith(answer(key, language))
    assert ("Shall we do that now?" if language == "en" else "Mahu lakukannya sekarang?") in reply


def test_parse_returns_the_full_retrieval_key(assistant):
    parsed = assistant.parse("when is the payment cut-off date for my bill?")
    assert parsed["intent"]["name"] == "faq"
    assert parsed["response_selector"]["faq"]["response"]["intent_response_key"] == "faq/billing_cutoff"
    assert {"entity": "language", "value": "en"}.items() <= parsed["entities"][0].items()


def test_language_switch_and_short_messages_keep_the_language(assistant):
    sender = new_sender()
    assert assistant.text(sender, "hi, how do I download KSOS?") == answer("faq/download", "en")
    assert assistant.text(sender, "can we continue in malay please").startswith("Baik, saya akan teruskan")
    # too short to tell: the conversation stays in Malay
    assert assistant.text(sender, "ok").startswith("Baik.")
    assert assistant.text(sender, "/faq/plans") == answer("faq/plans", "ms")
    assert assistant.text(sender, "reply in english pls").startswith("Sure, I'll continue in English")
    assert assistant.text(sender, "tq") .startswith("You're welcome")


def test_mixed_message_with_malay_grammar_gets_malay(assistant):
    sender = new_sender()
    reply = assistant.text(sender, "account kena suspend, boleh upgrade plan x?")
    slots = assistant.tracker(sender)["slots"]
    assert slots["language"] == "ms"
    malay_answers = {a.text("ms").strip() for a in knowledge_base()}
    assert reply in malay_answers or reply.startswith("Maaf, saya kurang pasti")


def test_nonsense_is_asked_to_be_rephrased_then_gets_the_contact_channels(assistant):
    """Words never seen in training leave no answer worth suggesting: the first miss asks to rephrase (the
    suggestions of a vague message are tested in Malay below), the second gives the contact channels."""
    sender = new_sender()
    first = assistant.send(sender, "qwerty zxcv plmokn")
    assert first[0]["text"].startswith("Sorry, I didn't quite understand. Could you rephrase")
    assert not first[0].get("buttons")
    second = assistant.text(sender, "blorf snargle wumpus")
    assert all(marker in second for marker in CONTACT_MARKERS)


def test_fallback_in_malay_and_none_of_these(assistant):
    sender = new_sender()
    assistant.text(sender, "selamat pagi")
    first = assistant.send(sender, "pasal benda tu")         # vague: some candidates, none confident
    assert first[0]["text"].startswith("Maaf, saya kurang pasti")
    buttons = first[0]["buttons"]
    assert 2 <= len(buttons) <= 4 and buttons[-1] == {"title": "Tiada yang sesuai", "payload": "/deny"}
    for button in buttons[:-1]:                               # answers of ours, titled in Malay
        key = button["payload"][1:]
        assert key in knowledge_base() and button["title"] == knowledge_base().get(key).title("ms")
    # clicking a suggestion answers it (an account question also offers verification after the answer)
    chosen = first[0]["buttons"][0]
    assert assistant.text(sender, chosen["payload"]).startswith(answer(chosen["payload"][1:], "ms"))
    assistant.send(sender, "xyzzy plugh qwop again")
    contact = assistant.text(sender, "/deny")
    assert contact.startswith("Maaf, saya masih kurang faham") and "help@tm.com.my" in contact


@pytest.mark.parametrize(
    "message, expected_start",
    [
        ("", "I didn't receive any text"),
        ("   ", "I didn't receive any text"),
        ("👍👍👍", "I can only read words"),
        ("你好，我想知道价格", "Sorry, I can answer in English or Bahasa Melayu only"),
    ],
)
def test_unreadable_input_gets_a_polite_answer(assistant, message, expected_start):
    sender = new_sender()
    assert assistant.text(sender, message).startswith(expected_start)
    # and again: unreadable input is never escalated as "not understood"
    assert assistant.text(sender, message).startswith(expected_start)


def test_unreadable_input_in_malay(assistant):
    sender = new_sender()
    assistant.text(sender, "assalamualaikum")
    assert assistant.text(sender, "").startswith("Saya tidak menerima sebarang teks")
    assert assistant.text(sender, "🙏").startswith("Saya hanya boleh membaca perkataan")


@pytest.mark.parametrize(
    "message",
    [
        "<script>alert('x')</script>",
        "<img src=x onerror=alert(1)>",
        "harga pakej " * 420,  # ~5,000 characters
        "/faq/does_not_exist",
        "/no_such_intent",
        "/faq/plans{\"x\": 1}",
        "'; DROP TABLE events; --",
        "\u0000\u0001 null bytes",
    ],
)
def test_bad_input_never_breaks_the_conversation(assistant, message):
    sender = new_sender()
    replies = assistant.send(sender, message)
    assert replies, "no answer"
    text = " ".join(r.get("text", "") for r in replies)
    assert text.strip() and "Traceback" not in text and "<script>" not in text
    # the conversation still works afterwards, in the language it has
    language = assistant.tracker(sender)["slots"]["language"]
    assert assistant.text(sender, "/faq/billing_cutoff") == answer("faq/billing_cutoff", language)
