"""Text normalisation for Malaysian chat messages.

`normalize_message` is what the NLU pipeline classifies: HTML tags removed, lower case, letter runs squeezed
("pleaseeee" -> "pleasee"), shortforms and misspellings from resources/lexicon/shortforms.yml expanded ("x" -> "tak",
"camne" -> "macam mana"), negation marked ("does not cover" -> "does not cover negcover", so that bag-of-words
features tell "not covered" from "covered"), and cut to MAX_CLASSIFIED_CHARS.
"""
from __future__ import annotations

import functools
import html
import re
from typing import Dict, List

import yaml

from bot.paths import LEXICON_DIR

# Only the start of a very long message is classified; the whole message is still stored in the tracker.
MAX_CLASSIFIED_CHARS = 600

WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
TAG_RE = re.compile(r"<[^<>]{0,200}>")
REPEAT_RE = re.compile(r"([^\W\d_])\1{2,}", re.UNICODE)
SPACE_RE = re.compile(r"\s+")
# Negators (canonical forms) in English and Malay; the next word gets a joint "neg<word>" token.
NEGATORS = frozenset(
    {"not", "never", "cannot", "tak", "tidak", "bukan", "belum",
     "don't", "doesn't", "isn't", "aren't", "won't", "can't", "didn't", "wasn't",
     "dont", "doesnt", "isnt", "arent", "wont", "cant", "didnt", "wasnt"}
)
NEGATION_MARK = "neg"


@functools.lru_cache(maxsize=None)
def shortforms() -> Dict[str, str]:
    """The reviewed shortform lexicon: token -> canonical spelling."""
    with open(LEXICON_DIR / "shortforms.yml", encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return {str(key).lower(): str(value).lower() for key, value in data["shortforms"].items()}


def is_payload(text: str) -> bool:
    """Button payloads ("/faq/plans", "/deny") are commands, not words to normalise or detect a language in."""
    return text.lstrip().startswith("/")


def squeeze_repeats(text: str) -> str:
    """Squeeze runs of three or more identical letters to two ("helloooo" -> "helloo")."""
    return REPEAT_RE.sub(r"\1\1", text)


def canonical_word(word: str) -> str:
    """One token in canonical spelling (may expand to several words)."""
    word = squeeze_repeats(word.lower())
    lexicon = shortforms()
    if word in lexicon:
        return lexicon[word]
    squeezed_once = REPEAT_RE.sub(r"\1", word)  # "pleasee" is in the lexicon, "pleaseee" squeezes to it
    return lexicon.get(squeezed_once, word)


def strip_markup(text: str) -> str:
    """Remove HTML/XML tags and decode entities, so "<b>harga</b>" reads as "harga"."""
    return html.unescape(TAG_RE.sub(" ", text))


def normalize_message(text: str) -> str:
    """The canonical form of a chat message that the NLU pipeline classifies."""
    if not text:
        return ""
    normalized = mark_negation(SPACE_RE.sub(" ", expand_shortforms(text)).strip())
    return normalized[:MAX_CLASSIFIED_CHARS]


def expand_shortforms(text: str) -> str:
    """The start of the message without markup, every word in canonical spelling (case and spacing as typed)."""
    text = strip_markup(text[: MAX_CLASSIFIED_CHARS * 2])
    return WORD_RE.sub(lambda match: canonical_word(match.group(0)), text)


def mark_negation(text: str) -> str:
    """Add "neg<word>" after the word that follows a negator: "tak boleh bayar" -> "tak boleh negboleh bayar"."""
    pieces, previous, position = [], "", 0
    for match in WORD_RE.finditer(text):
        word = match.group(0)
        pieces.append(text[position:match.end()])
        position = match.end()
        if previous in NEGATORS and word.isalpha() and word not in NEGATORS:
            pieces.append(f" {NEGATION_MARK}{word}")
        previous = word
    pieces.append(text[position:])
    return "".join(pieces)


def canonical_words(text: str) -> List[str]:
    """The message as a list of canonical lowercase words (shortforms expanded, no negation marks)."""
    return WORD_RE.findall(expand_shortforms(text))
