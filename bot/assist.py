"""Agent assist: the three answers of the knowledge base most likely to answer a customer's message, for a human
agent to send as they are or edit.

The ranking combines two signals for each answer key ('faq/plans', 'ask_termination_penalty' ...):
- the Rasa model: intent confidence, times the response selector's confidence for retrieval intents
  (`/model/parse`, the same scores as the "did you mean…?" buttons, bot/dialogue/fallback.py);
- rapidfuzz similarity of the message to the answer's example questions (the NLU training examples), on the
  canonical spelling (shortforms expanded, bot/nlu/text.py): token-set ratio, averaged over the answer's three
  closest examples (one lucky example says less than three close ones). It still finds an answer when the model
  is unsure or unreachable.
confidence = MODEL_WEIGHT x model + FUZZY_WEIGHT x similarity, in 0–1. For a verified customer the answers of
the account intents are computed from their account (the same text the assistant would give them).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from rapidfuzz import fuzz, process

from bot.dialogue.fallback import rank_candidates
from bot.dialogue.knowledge import KnowledgeBase, knowledge_base
from bot.nlu.text import canonical_words
from bot.vocabulary import COMPUTED_ACCOUNT_INTENTS

MODEL_WEIGHT, FUZZY_WEIGHT = 0.7, 0.3
SUGGESTIONS = 3
FUZZY_CANDIDATES = 80          # nearest example questions looked at per message
CLOSEST_EXAMPLES = 3           # an answer's similarity: the mean of its best this many example scores
# Account intents whose answer can be computed for a verified customer without side effects (the lost-activation
# answer re-sends the codes by email, so agents get the general FAQ 14 answer for it).
ACCOUNT_AWARE_KEYS = COMPUTED_ACCOUNT_INTENTS


@dataclass(frozen=True)
class Suggestion:
    key: str
    title: str
    answer: str
    source: str
    confidence: float
    account_aware: bool = False

    def to_json(self) -> Dict[str, object]:
        return asdict(self)


def canonical(text: str) -> str:
    return " ".join(canonical_words(text or "")).lower()


class ExampleIndex:
    """Every example question of the knowledge base in canonical spelling, with the answer key it belongs to."""

    def __init__(self, kb: KnowledgeBase):
        self.keys: List[str] = []
        self.examples: List[str] = []
        for answer in kb:
            for example in answer.examples:
                self.keys.append(answer.key)
                self.examples.append(canonical(example))

    def similarity(self, text: str, limit: int = FUZZY_CANDIDATES) -> Dict[str, float]:
        """Answer key -> similarity (0–1) of `text` to its closest example questions."""
        query = canonical(text)
        if not query:
            return {}
        scores: Dict[str, List[float]] = {}
        for _example, score, index in process.extract(query, self.examples, scorer=fuzz.token_set_ratio,
                                                      limit=limit):
            scores.setdefault(self.keys[index], []).append(score / 100.0)
        return {key: sum(sorted(found, reverse=True)[:CLOSEST_EXAMPLES]) / CLOSEST_EXAMPLES
                for key, found in scores.items()}


@functools.lru_cache(maxsize=1)
def example_index() -> ExampleIndex:
    return ExampleIndex(knowledge_base())


def rank_answers(parse_data: Optional[Mapping], similarity: Mapping[str, float], keys: Sequence[str],
                 limit: int = SUGGESTIONS) -> List[Tuple[str, float]]:
    """(key, confidence) of the best `limit` answers, best first. Without parse data (Rasa unreachable) the
    similarity alone ranks them, still scaled by FUZZY_WEIGHT so confidences stay comparable."""
    model = dict(rank_candidates(dict(parse_data), keys, limit=len(keys))) if parse_data else {}
    known = set(keys)
    combined = {
        key: MODEL_WEIGHT * model.get(key, 0.0) + FUZZY_WEIGHT * similarity.get(key, 0.0)
        for key in set(model) | set(similarity) if key in known
    }
    ranked = sorted(combined.items(), key=lambda item: (-item[1], item[0]))
    return [(key, round(min(1.0, score), 3)) for key, score in ranked[:limit] if score > 0]


AccountAnswer = Callable[[str], Optional[str]]     # key -> the verified customer's own answer, or None


def suggestions(parse_data: Optional[Mapping], text: str, language: str, kb: Optional[KnowledgeBase] = None,
                account_answer: Optional[AccountAnswer] = None, limit: int = SUGGESTIONS) -> List[Suggestion]:
    """The top answers for a customer's `text` in `language`, each with its source and confidence."""
    kb = kb or knowledge_base()
    index = example_index() if kb is knowledge_base() else ExampleIndex(kb)
    result = []
    for key, confidence in rank_answers(parse_data, index.similarity(text), kb.keys(), limit):
        answer = kb.get(key)
        if answer is None:
            continue
        own = account_answer(key) if account_answer and key in ACCOUNT_AWARE_KEYS else None
        result.append(Suggestion(key=key, title=answer.title(language), answer=own or answer.text(language),
                                 source=answer.source, confidence=confidence, account_aware=own is not None))
    return result
