import pytest

from bot.nlu.language import detect_language, requested_language


@pytest.mark.parametrize(
    "text",
    [
        "how much is the professional plan?",
        "can I pay with boost?",
        "how to download ksos",
        "my account is suspended, what should I do",
        "i want to pay my bil",
        "where do I get the activation code",
        "good morning",
        "what is the billing cut-off date",
        "is there any penalty if I terminate after 12 months",
        "u guys got any cheaper plan",
        "pls help me reset my password",
        "thanks, that is all",
    ],
)
def test_english(text):
    assert detect_language(text) == "en"


@pytest.mark.parametrize(
    "text",
    [
        "berapa harga pelan professional?",
        "bagaimana saya hendak membuat pembayaran",
        "harga pakej starter",
        "terima kasih",
        "selamat pagi",
        "assalamualaikum",
        "kod pengaktifan hilang",
        "akaun saya digantung",
        "sy nk tukar pelan",
        "camne nk activate",
        "bila bil ksos akan sampai",
        "mksh",
    ],
)
def test_malay(text):
    assert detect_language(text) == "ms"


@pytest.mark.parametrize(
    "text",
    [
        # mixed messages with Malay grammar -> Malay
        "account kena suspend, boleh upgrade plan x?",
        "nak download ksos",
        "my acc kena suspend",
        "can i upgrade plan kalau acc suspended",
        "how much penalty kalau terminate now",
        "plan starter tu ada vpn ke",
        "dah bayar but still suspended",
        "i lost my code, macam mana nak dapat balik",
        "boleh pay guna boost?",
        "kenapa my bill come late",
    ],
)
def test_mixed_with_malay_grammar_is_malay(text):
    assert detect_language(text) == "ms"


@pytest.mark.parametrize(
    "text",
    [
        # mixed messages without Malay grammar -> English
        "can I pay the bil at tmpoint kiosk?",
        "how do I renew my langganan",
        "is the pakej price per month?",
        "what is the harga for professional",
    ],
)
def test_mixed_without_malay_grammar_is_english(text):
    assert detect_language(text) == "en"


@pytest.mark.parametrize("text", ["ok", "tq", "12", "ksos", "hi", "👍", "", "   ", None, "/faq/plans", "RM30", "ok2"])
def test_too_short_to_tell(text):
    assert detect_language(text) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("can we speak in malay", "ms"),
        ("boleh cakap BM?", "ms"),
        ("bm please", "ms"),
        ("reply in BM pls", "ms"),
        ("bahasa melayu", "ms"),
        ("tukar ke bahasa melayu", "ms"),
        ("in english please", "en"),
        ("english pls", "en"),
        ("bahasa inggeris boleh?", "en"),
        ("cakap english je", "en"),
        ("tukar dari english ke bm", "ms"),
        ("switch from malay to english", "en"),
        ("speak malay not english", "ms"),
        ("can you talk to me in a different way", None),
    ],
)
def test_requested_language(text, expected):
    assert requested_language(text) == expected


def test_gibberish_only_uses_the_lexicon_rules_when_not_understood():
    assert detect_language("download ksos") == "en"  # lingua, for an understood message
    assert detect_language("blorp zzz", statistical=False) is None
    assert detect_language("nak blorp zzz", statistical=False) == "ms"  # lexicon rules still apply
