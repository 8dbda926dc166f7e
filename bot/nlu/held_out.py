"""The evaluation sets no training example may copy: the development set (tests/nlu/) and the frozen test set
(tests/nlu_test/). A training example is a copy of a held-out message when their normalised words are at least
MAX_SIMILARITY (rapidfuzz token_sort_ratio) alike. The frozen set was written blind to data/: one of its messages
of one to three words ("hi", "tq", "yes") says what every customer says and matches a training example by
coincidence, so only its messages of MIN_WORDS_OF_A_COPY words or more count.

tests/test_data.py holds data/ to this; `python -m bot review export` leaves out the reviewed customer messages
that would break it (they would make the evaluation report on messages it was trained on). A deployment without
tests/ has nothing held out.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import yaml
from rapidfuzz import fuzz, process

from bot.dialogue.knowledge import parse_examples
from bot.nlu.text import normalize_message
from bot.paths import FROZEN_NLU_DIR, TESTS_NLU_DIR

MAX_SIMILARITY = 90
MIN_WORDS_OF_A_COPY = 4
HELD_OUT_SETS = ((TESTS_NLU_DIR, 1), (FROZEN_NLU_DIR, MIN_WORDS_OF_A_COPY))     # (folder, fewest words that count)


def held_out_messages(folder: Path, min_words: int = 1) -> List[str]:
    """The normalised messages of an evaluation set's files with at least `min_words` words."""
    messages = []
    for path in sorted(folder.glob("*.yml")):
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []:
            for example in parse_examples(str(item.get("examples", ""))):
                text = normalize_message(example)
                if len(text.split()) >= min_words:
                    messages.append(text)
    return messages


@functools.lru_cache(maxsize=1)
def all_held_out() -> Tuple[str, ...]:
    return tuple(message for folder, words in HELD_OUT_SETS for message in held_out_messages(folder, words))


def near_copy(text: str, held_out: Iterable[str]) -> Optional[str]:
    """The held-out message `text` (nearly) copies, if any."""
    match = process.extractOne(normalize_message(text), list(held_out), scorer=fuzz.token_sort_ratio,
                               score_cutoff=MAX_SIMILARITY)
    return match[0] if match else None
