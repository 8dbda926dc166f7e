"""Malay stems (bot/nlu/stemming.py): one root for a word's affixed forms."""
import pytest

from bot.nlu.stemming import stem, stems


@pytest.mark.parametrize("word, root", [
    ("pembayaran", "bayar"), ("membayar", "bayar"), ("dibayar", "bayar"), ("bayarkan", "bayar"),
    ("bayarlah", "bayar"), ("langganan", "langgan"), ("berlangganan", "langgan"),
    ("menukar", "tukar"), ("memilih", "pilih"), ("mengira", "kira"),           # meN- swallowed the consonant
    ("penamatan", "tamat"), ("ditamatkan", "tamat"),
    ("harga", "harga"), ("bil", "bil"), ("akaunnya", "akaun"),
])
def test_affixes_come_off(word, root):
    assert stem(word) == root


def test_short_words_keep_their_letters():
    assert stem("dia") == "dia" and stem("kan") == "kan" and stem("beli") == "beli"


def test_stems_of_a_message():
    assert stems("nak buat pembayaran, kena bayar-bayar lagi") == ["nak", "buat", "bayar", "kena", "bayar",
                                                                  "bayar", "lagi"]


def test_the_rule_is_crude_and_says_so():
    """As bot/nlu/stemming.py's docstring owns: some roots are cut too far. Still a feature, never shown."""
    assert stem("melanggan") == "langg" and stem("peranti") == "ant"
