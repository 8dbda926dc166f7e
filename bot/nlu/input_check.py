"""Messages the assistant cannot read: empty, symbols/emoji only, or written in a script other than Latin."""
from __future__ import annotations

import unicodedata
from typing import Optional

from bot.nlu.text import strip_markup

EMPTY = "empty"
NO_WORDS = "no_words"
UNSUPPORTED_SCRIPT = "unsupported_script"


def _is_latin_letter(char: str) -> bool:
    return char.isalpha() and "LATIN" in unicodedata.name(char, "")


def input_problem(text: Optional[str]) -> Optional[str]:
    """Why a message cannot be understood, or None when it can be classified.

    - EMPTY: nothing but whitespace (or markup that strips to nothing).
    - NO_WORDS: no letters and no digits, e.g. only emoji or punctuation.
    - UNSUPPORTED_SCRIPT: most letters are not Latin (Chinese, Tamil, Arabic, ...); we serve English and Malay.
    """
    if text is None or not text.strip():
        return EMPTY
    visible = strip_markup(text)
    if not visible.strip():
        return EMPTY
    letters = [char for char in visible if char.isalpha()]
    if not letters:
        return None if any(char.isdigit() for char in visible) else NO_WORDS
    latin = sum(1 for char in letters if _is_latin_letter(char))
    if latin < len(letters) / 2:
        return UNSUPPORTED_SCRIPT
    return None
