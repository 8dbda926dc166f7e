"""Two questions in one message ("how much is the Starter plan? and can I pay with JomPAY?"): the message's
parts, so that each can be classified on its own (bot/nlu/components.py FullLabelClassifier: the whole message
decides the first answer; a part whose answer is another one of the knowledge base, surely enough, is answered
after it).

A part ends at a question mark, a full stop (not one inside "kaspersky.com" or "1.5"), an exclamation mark or a
new line, or before a word that joins a
second question ("also", "lagi satu"...: resources/lexicon/question_joiners.yml). Parts of fewer than
MIN_PART_WORDS words are joined to the part before ("plans and prices" stays whole).
"""
from __future__ import annotations

import functools
import re
from typing import List, Tuple

import yaml

from bot.paths import LEXICON_DIR

MIN_PART_WORDS = 3
SENTENCE_END = re.compile(r"(?:[?!\n]|\.(?!\w))+")
WORD = re.compile(r"[^\W_]+", re.UNICODE)


@functools.lru_cache(maxsize=None)
def joiners() -> Tuple[str, ...]:
    """The joining words and phrases (canonical spelling, lower case), longest first."""
    with open(LEXICON_DIR / "question_joiners.yml", encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return tuple(sorted({str(phrase).lower() for phrase in data["joiners"]}, key=len, reverse=True))


@functools.lru_cache(maxsize=None)
def _joiner_pattern() -> "re.Pattern[str]":
    alternatives = "|".join(re.escape(phrase) for phrase in joiners())
    return re.compile(rf"(?:^|\s|,)(?:{alternatives})(?=\s)")


def question_parts(text: str) -> List[str]:
    """The parts of a normalised message (see the module's docstring); one part for a single question."""
    pieces: List[str] = []
    for sentence in SENTENCE_END.split(text):
        start = 0
        for match in _joiner_pattern().finditer(sentence):
            pieces.append(sentence[start:match.start()])
            start = match.start()
        pieces.append(sentence[start:])
    parts: List[str] = []
    for piece in (piece.strip(" ,") for piece in pieces):
        if not piece:
            continue
        if parts and len(WORD.findall(piece)) < MIN_PART_WORDS:
            parts[-1] = f"{parts[-1]} {piece}"
        elif not parts or len(WORD.findall(parts[-1])) >= MIN_PART_WORDS:
            parts.append(piece)
        else:
            parts[-1] = f"{parts[-1]} {piece}"
    return parts
