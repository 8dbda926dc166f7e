"""What the assistant understood of one customer message, carried from Rasa to the gateway for the review queue.

`Understanding` is the outcome of the parse in three fields: `label`, what the message was taken for ("faq/plans",
"greet", or "nlu_fallback" when it was not understood); `guess`, the best label other than the fallback (the same
as `label` unless it fell back); and `confidence`, how sure the pipeline was of `guess` (for a retrieval intent,
the intent's confidence times the response selector's: the chance of that exact answer).

Rasa's gateway channel (bot/rasa_runtime/channel.py) sends it back in a response header; a retried turn reads it
from the parse that Rasa's tracker kept. Inside Rasa, the last NLU component (`UnderstandingRecorder`) leaves it
in `RecentUnderstandings` under the message's id, where the channel takes it once the turn is over.

No Rasa import here: the gateway, which runs without Rasa, reads the header with the same code.
"""
from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from bot.vocabulary import full_label, selected_response

FALLBACK_LABEL = "nlu_fallback"
HEADER = "X-Understanding"
MAX_LABEL_CHARS = 100


@dataclass(frozen=True)
class Understanding:
    label: str
    guess: str
    confidence: float

    @property
    def fell_back(self) -> bool:
        return self.label == FALLBACK_LABEL

    def to_json(self) -> dict:
        return {"label": self.label, "guess": self.guess, "confidence": round(self.confidence, 4)}

    @classmethod
    def from_json(cls, data: Any) -> Optional["Understanding"]:
        """None for anything that is not a well-formed understanding (an old row, a damaged header)."""
        if not isinstance(data, Mapping):
            return None
        label, guess, confidence = data.get("label"), data.get("guess"), data.get("confidence")
        if not (isinstance(label, str) and isinstance(guess, str) and 0 < len(label) <= MAX_LABEL_CHARS
                and len(guess) <= MAX_LABEL_CHARS):
            return None
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not math.isfinite(confidence):
            return None
        return cls(label, guess, min(max(float(confidence), 0.0), 1.0))

    def header_value(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_header(cls, value: Optional[str]) -> Optional["Understanding"]:
        if not value:
            return None
        try:
            return cls.from_json(json.loads(value))
        except ValueError:
            return None


def _confidence(entry: Any) -> float:
    value = entry.get("confidence") if isinstance(entry, Mapping) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def understanding_from_parse(parse_data: Mapping[str, Any]) -> Optional[Understanding]:
    """The understanding of a Rasa parse ({"intent", "intent_ranking", "response_selector"}); None without an
    intent."""
    intent = parse_data.get("intent") or {}
    name = intent.get("name") if isinstance(intent, Mapping) else None
    if not isinstance(name, str) or not name:
        return None
    best = intent
    if name == FALLBACK_LABEL:
        ranking = parse_data.get("intent_ranking") or []
        best = next((entry for entry in ranking if isinstance(entry, Mapping)
                     and entry.get("name") not in (None, FALLBACK_LABEL)), {})
    best_name = best.get("name") if isinstance(best, Mapping) else None
    if not isinstance(best_name, str) or not best_name:
        return Understanding(FALLBACK_LABEL, "", 0.0)
    confidence = _confidence(best)
    answer = selected_response(parse_data, best_name)
    if answer.get("intent_response_key"):
        confidence *= _confidence(answer)
    guess = full_label(parse_data, best_name)[:MAX_LABEL_CHARS]
    label = FALLBACK_LABEL if name == FALLBACK_LABEL else guess
    return Understanding(label, guess, min(max(confidence, 0.0), 1.0))


class RecentUnderstandings:
    """The understanding of the messages being handled, by message id, until their channel takes it. Bounded: a
    message whose turn broke off (and so is never taken) is pushed out by later ones."""

    def __init__(self, capacity: int = 1000):
        self.capacity = capacity
        self._items: "OrderedDict[str, Understanding]" = OrderedDict()
        self._lock = threading.Lock()

    def put(self, message_id: str, understanding: Understanding) -> None:
        with self._lock:
            self._items[message_id] = understanding
            self._items.move_to_end(message_id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def take(self, message_id: Optional[str]) -> Optional[Understanding]:
        if not message_id:
            return None
        with self._lock:
            return self._items.pop(message_id, None)

    def __len__(self) -> int:
        return len(self._items)


# The one instance of the Rasa process: written by the NLU pipeline, read by the gateway channel.
RECENT = RecentUnderstandings()
