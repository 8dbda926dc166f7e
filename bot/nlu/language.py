"""English / Malay detection for chat messages, offline.

The rule, in order (words are canonical forms, after resources/lexicon/shortforms.yml):
1. Any Malay grammar word (nak, tak/x, ke, boleh, macam mana, saya, kena, ...; resources/lexicon/language.yml)
   -> Malay. Mixed "bahasa rojak" messages therefore get Malay when they carry Malay grammar:
   "account kena suspend, boleh upgrade plan x?" -> ms.
2. Otherwise any English function word (the, is, can, my, how, ...) -> English: "can I pay with boost?" -> en.
3. Otherwise any Malay content word (harga, pakej, terima kasih, ...) -> Malay: "harga pakej starter" -> ms.
4. Otherwise, for two or more words of a message that was understood (not nlu_fallback), the lingua detector
   restricted to English and Malay, when it is at least LINGUA_MIN_CONFIDENCE sure: "download ksos" -> en.
5. Otherwise None: too short to tell ("ok", "tq", "12", "ksos"); the conversation keeps its language.
"""
from __future__ import annotations

import functools
from typing import Dict, FrozenSet, List, Optional

import yaml

from bot.nlu.text import canonical_words, is_payload
from bot.paths import LEXICON_DIR

ENGLISH = "en"
MALAY = "ms"
SUPPORTED_LANGUAGES = (ENGLISH, MALAY)
LINGUA_MIN_CONFIDENCE = 0.8

# Words that, right before a language name, mark it as the one asked for ("tukar ke BM", "reply in English")
# or as the one being left ("dari English", "not Malay").
_TARGET_MARKERS = frozenset({"ke", "kepada", "to", "in", "into", "dalam", "guna", "pakai", "use", "using", "gunakan"})
_SOURCE_MARKERS = frozenset({"dari", "daripada", "from", "not", "bukan", "instead", "tak", "tidak", "no"})


@functools.lru_cache(maxsize=None)
def _markers() -> Dict[str, FrozenSet[str]]:
    with open(LEXICON_DIR / "language.yml", encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    markers = {
        key: frozenset(str(word).lower() for word in data[key])
        for key in ("malay_grammar", "malay_words", "english_function")
    }
    for code, names in data["language_names"].items():
        markers[f"names_{code}"] = frozenset(str(name).lower() for name in names)
    return markers


@functools.lru_cache(maxsize=None)
def _lingua_detector():
    from lingua import Language, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.MALAY).build()


def warm_up() -> None:
    """Load the lexicons and lingua's models now rather than on the first message."""
    _markers()
    _lingua_detector().compute_language_confidence_values("selamat pagi, good morning")


def _lingua_language(text: str) -> Optional[str]:
    values = _lingua_detector().compute_language_confidence_values(text)
    if not values or values[0].value < LINGUA_MIN_CONFIDENCE:
        return None
    return values[0].language.iso_code_639_1.name.lower()


def detect_language(text: Optional[str], statistical: bool = True) -> Optional[str]:
    """'en', 'ms', or None when the message is too short or unclear to tell (see the module docstring).

    `statistical=False` skips rule 4 (lingua): used for messages the assistant did not understand, where
    gibberish such as "blorp zzz" must not switch the conversation's language.
    """
    if not text or is_payload(text):
        return None
    words = [word for word in canonical_words(text) if not word.isdigit()]
    if not words:
        return None
    markers = _markers()
    if any(word in markers["malay_grammar"] for word in words):
        return MALAY
    if any(word in markers["english_function"] for word in words):
        return ENGLISH
    if any(word in markers["malay_words"] for word in words):
        return MALAY
    if statistical and len(words) >= 2:
        return _lingua_language(" ".join(words))
    return None


def requested_language(text: Optional[str]) -> Optional[str]:
    """The language a switch_language message asks for ("boleh cakap BM?" -> 'ms'), or None if unnamed.

    A name right after "ke/to/in/guna" wins; a name after "dari/from/not" is the language being left;
    otherwise the first language named. English names are matched before Malay ones, so
    "bahasa inggeris" is English although "bahasa" alone means Malay.
    """
    if not text:
        return None
    words: List[str] = canonical_words(text)
    markers = _markers()
    mentions = []  # (position, language, previous word)
    skip_next = False
    for position, word in enumerate(words):
        if skip_next:
            skip_next = False
            continue
        following = words[position + 1] if position + 1 < len(words) else ""
        if word in markers["names_en"] or (word == "bahasa" and following in markers["names_en"]):
            language = ENGLISH
            skip_next = word == "bahasa"
        elif word in markers["names_ms"]:
            language = MALAY
            skip_next = word == "bahasa" and following in markers["names_ms"]
        else:
            continue
        previous = words[position - 1] if position > 0 else ""
        mentions.append((position, language, previous))
    if not mentions:
        return None
    for _, language, previous in mentions:
        if previous in _TARGET_MARKERS:
            return language
    for _, language, previous in mentions:
        if previous not in _SOURCE_MARKERS:
            return language
    return mentions[-1][1] if len(mentions) == 1 else None
