"""The two-stage fallback: first miss -> "did you mean…?" with the best candidates; second miss -> contacts.

Plain functions over Rasa's parse data and the conversation's intents, so they are unit-tested without Rasa.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from bot.vocabulary import RETRIEVAL_INTENTS

FALLBACK_INTENT = "nlu_fallback"
# Stands for a message we could not read at all (empty, emoji only, other script): it gets its own polite
# answer and neither counts as a miss nor breaks a run of misses.
UNREADABLE = "unreadable"

MAX_CANDIDATES = 3
MIN_CANDIDATE_SCORE = 0.02

SUGGEST = "suggest"
CONTACT = "contact"


def consecutive_misses(user_intents: Sequence[Optional[str]]) -> int:
    """How many of the latest user messages in a row the assistant did not understand.

    `user_intents` are the intents of the conversation's user messages, oldest first, with UNREADABLE for
    messages that could not be read at all. ("None of these" after a
    "did you mean…?" is handled by a rule in data/rules.yml that goes straight to the contact channels.)
    """
    misses = 0
    for intent in reversed(user_intents):
        if intent == UNREADABLE:
            continue
        if intent != FALLBACK_INTENT:
            break
        misses += 1
    return misses


def fallback_step(misses: int) -> str:
    """SUGGEST on the first miss, CONTACT (the FAQ 11 channels) from the second consecutive miss on."""
    return CONTACT if misses >= 2 else SUGGEST


def payload_for(key: str) -> str:
    """The button payload that selects an answer directly: '/faq/plans', '/ask_my_subscription'."""
    return f"/{key}"


def rank_candidates(
    parse_data: Dict, answer_keys: Iterable[str], limit: int = MAX_CANDIDATES
) -> List[Tuple[str, float]]:
    """The answers the customer most probably meant, best first, as (key, score).

    A retrieval answer scores intent confidence x response-selector confidence ('faq' 0.6 x 'faq/plans' 0.9);
    other intents score their intent confidence. Only keys of the knowledge base are offered.
    """
    known = set(answer_keys)
    selector = parse_data.get("response_selector") or {}
    scores: Dict[str, float] = {}
    for ranked in parse_data.get("intent_ranking") or []:
        intent, confidence = ranked.get("name"), float(ranked.get("confidence") or 0.0)
        if intent in RETRIEVAL_INTENTS:
            for response in (selector.get(intent) or {}).get("ranking") or []:
                key = response.get("intent_response_key")
                score = confidence * float(response.get("confidence") or 0.0)
                if key in known:
                    scores[key] = max(scores.get(key, 0.0), score)
        elif intent in known:
            scores[intent] = max(scores.get(intent, 0.0), confidence)
    ranked_keys = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    return [(key, round(score, 4)) for key, score in ranked_keys if score >= MIN_CANDIDATE_SCORE][:limit]
