import pytest

from bot.nlu.text import MAX_CLASSIFIED_CHARS, canonical_words, normalize_message, shortforms, squeeze_repeats


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("account kena suspend, boleh upgrade plan x?", "account kena suspend, boleh upgrade plan tak?"),
        ("camne nk activate ksos", "macam mana nak activate ksos"),
        ("what does support not cover", "what does support not cover negcover"),
        ("sy xleh login", "saya tak boleh negboleh login"),
        ("standard support doesn't cover what", "standard support doesn't cover negcover what"),
        ("tidak diliputi", "tidak diliputi negdiliputi"),
        ("brp harga plan starter sebln", "berapa harga plan starter sebulan"),
        ("Tq!!", "thanks!!"),
        ("PLZ help", "please help"),
        ("pleaseeeee", "please"),
        ("helloooo", "helloo"),
        ("acc sy kene suspend sbb x byr bil", "account saya kena suspend sebab tak bayar negbayar bil"),
        ("nk tau pkej yg ada utk smua pc", "nak tahu pakej yang ada untuk semua pc"),
        ("kapersky dah expired", "kaspersky dah expired"),
        ("dh byr tp masih suspend", "dah bayar tapi masih suspend"),
        ("not not", "not not"),
        ("what does support not cover?", "what does support not cover negcover?"),
        ("tak, bukan yang itu", "tak, bukan yang negyang itu"),
        ("<b>harga</b> pakej", "harga pakej"),
        ("   lots   of    space ", "lots of space"),
        ("", ""),
    ],
)
def test_normalize_message(raw, expected):
    assert normalize_message(raw) == expected


def test_ambiguous_shortforms_are_not_mapped():
    # akn may be "akan" (will) or "akaun" (account): left alone on purpose.
    for token in ("akn", "ak", "k", "r", "y", "da", "tu", "bil"):
        assert token not in shortforms(), token
    assert normalize_message("akn bayar esok") == "akn bayar esok"


def test_lexicon_values_are_lowercase_words():
    for key, value in shortforms().items():
        assert key == key.lower() and value == value.lower()
        assert value.replace(" ", "").isalpha(), (key, value)


def test_long_messages_are_cut_for_classification():
    text = "harga pakej " * 1000
    assert len(normalize_message(text)) <= MAX_CLASSIFIED_CHARS


def test_squeeze_repeats_keeps_doubles():
    assert squeeze_repeats("boooleh") == "booleh"
    assert squeeze_repeats("need") == "need"
    assert squeeze_repeats("2000") == "2000"


def test_canonical_words():
    assert canonical_words("Camne nk byr?") == ["macam", "mana", "nak", "bayar"]
