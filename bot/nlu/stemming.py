"""Malay stems, an extra feature of the whole-answer classifier (bot/nlu/full_label.py).

Malay builds words from a root with prefixes and suffixes: "pembayaran", "membayar", "dibayar" and "bayarkan" are
all "bayar" (pay); "langganan" and "berlangganan" are both "langgan". Customers write whichever form
comes to mind, and training examples cannot hold them all, so the classifier also sees each word's stem.

The rule is deliberately plain (one suffix, then one prefix; the root keeps at least three or four letters) and
applied to every word. It is crude: it cuts some roots too far ("melanggan" -> "langg", "menyimpan" -> "simp"),
and an English word that it cuts ("pending" -> "ding") only adds a feature the classifier learns to ignore.
Reduplication ("kali-kali") needs no rule here: the tokeniser splits it into two words. Chosen by
cross-validation on the training data (README, Measured): +0.5 points without the sentence embedding, +0.2 with.
"""
from __future__ import annotations

import re
from typing import List

# Longest first, so "memper" is taken before "mem" and "kannya" before "kan" / "nya".
SUFFIXES = ("kannya", "kan", "nya", "an", "i", "lah", "kah", "pun")
PREFIXES = ("memper", "diper", "menge", "meny", "meng", "mem", "men", "me", "peng", "peny", "pem", "pen", "per",
            "pe", "ber", "be", "ter", "di", "ke", "se")
# meN- / peN- swallow the root's first consonant before a vowel: "menukar" <- tukar, "memilih" <- pilih,
# "menyimpan" <- simpan, "mengira" <- kira.
RESTORED_CONSONANT = {"meny": "s", "peny": "s", "mem": "p", "pem": "p", "men": "t", "pen": "t", "meng": "k",
                      "peng": "k"}
VOWELS = frozenset("aeiou")
MIN_ROOT_AFTER_SUFFIX = 4
MIN_ROOT_AFTER_PREFIX = 3
LETTERS = re.compile(r"[a-z]+")


def stem(word: str) -> str:
    """The root of a lower-case Malay word, by the rule above ("pembayaran" -> "bayar")."""
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_ROOT_AFTER_SUFFIX:
            word = word[: -len(suffix)]
            break
    for prefix in PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= MIN_ROOT_AFTER_PREFIX:
            rest = word[len(prefix):]
            if prefix in RESTORED_CONSONANT and rest[0] in VOWELS:
                return RESTORED_CONSONANT[prefix] + rest
            return rest
    return word


def stems(text: str) -> List[str]:
    """The stem of every word of a normalised message (the classifier's analyzer: module-level, so the trained
    model pickles)."""
    return [stem(word) for word in LETTERS.findall(text)]
