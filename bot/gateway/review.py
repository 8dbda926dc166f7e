"""The agents' review queue: customer messages the assistant may have got wrong, for a person to label.

A message goes to the queue (gateway_review, one item per message) when it fell back (not understood), was
handed over to the agents (typed, not a button), was answered with low confidence (below `low_confidence` in
resources/gateway/review.yml), or its answer got a 👎. The text kept is redacted like the inbox's.

In the console an agent sees the items not yet labelled, grouped by similarity (bot/analytics/grouping.py),
newest first, and labels a group (or some of its messages) with the answer they should have had, or "not
covered by our documents". `python -m bot review export` (bot/gateway/review_export.py) writes the labelled
messages to a training file under data/nlu/ for a person to read and commit: nothing is retrained from live
traffic automatically.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import yaml
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.analytics.grouping import group_similar
from bot.clock import now_utc
from bot.dialogue.knowledge import knowledge_base, training_examples
from bot.gateway.models import InboxMessage, ReviewItem
from bot.nlu.understanding import Understanding
from bot.paths import RESOURCES_DIR

FELL_BACK, HANDED_OVER, LOW_CONFIDENCE, RATED_DOWN = "fallback", "handoff", "low_confidence", "rated_down"
REASONS = (FELL_BACK, HANDED_OVER, LOW_CONFIDENCE, RATED_DOWN)
NOT_COVERED = "not_covered"
QUEUE_LIMIT = 300               # the newest items shown at once
MAX_LABELLED_AT_ONCE = 200


@functools.lru_cache(maxsize=1)
def review_settings() -> dict:
    with open(RESOURCES_DIR / "gateway" / "review.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def low_confidence_below() -> float:
    return float(review_settings()["low_confidence"])


@functools.lru_cache(maxsize=1)
def review_labels() -> Dict[str, str]:
    """Every label an agent may give: the training data's intents and answer keys, with a title for the console
    (an answer's English title; an intent's from review.yml), and "not covered". Raises KeyError for an intent
    without a title (tests/test_review.py keeps review.yml complete)."""
    answers = knowledge_base()
    titles = review_settings()["intents"]
    labels = {}
    for key in sorted(training_examples()):
        answer = answers.get(key)
        labels[key] = answer.title("en") if answer is not None and answer.title("en") else titles[key]
    labels[NOT_COVERED] = review_settings()["not_covered"]
    return labels


def review_reasons(understanding: Optional[Understanding], handoff_reason: Optional[str], typed: bool,
                   below: float) -> List[str]:
    """Why a message Rasa answered goes to the queue ([] if it does not). Only typed messages: a button's
    payload says exactly what the customer wanted."""
    if not typed:
        return []
    reasons = []
    if understanding is not None and understanding.fell_back:
        reasons.append(FELL_BACK)
    if handoff_reason:
        reasons.append(HANDED_OVER)
    if understanding is not None and not understanding.fell_back and understanding.confidence < below:
        reasons.append(LOW_CONFIDENCE)
    return reasons


def _merged(existing: str, added: Iterable[str]) -> str:
    reasons = [reason for reason in existing.split(",") if reason]
    reasons += [reason for reason in added if reason not in reasons]
    return ",".join(reason for reason in REASONS if reason in reasons)


def add_to_queue(session: Session, row: InboxMessage, reasons: Sequence[str], language: Optional[str]) -> None:
    """Put inbox message `row` (its text already redacted) in the queue for `reasons` (or add them to its
    item), in the caller's transaction."""
    if not reasons:
        return
    item = session.scalars(select(ReviewItem).where(ReviewItem.inbox_id == row.id)).first()
    if item is not None:
        item.reasons = _merged(item.reasons, reasons)
        return
    understanding = Understanding.from_json(row.understanding)
    session.add(ReviewItem(
        inbox_id=row.id, conversation_id=row.conversation_id, channel=row.channel, language=language,
        text=row.text, reasons=_merged("", reasons), taken_for=understanding.label if understanding else None,
        guess=understanding.guess if understanding else None,
        confidence=understanding.confidence if understanding else None, received_at=row.received_at))


def add_rated_down(session: Session, inbox_id: Optional[int], language: Optional[str]) -> None:
    """The answer to inbox message `inbox_id` got a 👎: the message goes to the queue (if it was typed)."""
    row = session.get(InboxMessage, inbox_id) if inbox_id is not None else None
    if row is not None and row.text and not row.payload:
        add_to_queue(session, row, [RATED_DOWN], language)


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    text: str
    reasons: Tuple[str, ...]
    taken_for: Optional[str]
    guess: Optional[str]
    confidence: Optional[float]
    channel: str
    language: Optional[str]
    received_at: datetime

    def to_json(self) -> dict:
        return {"id": self.id, "text": self.text, "reasons": list(self.reasons), "taken_for": self.taken_for,
                "guess": self.guess, "confidence": self.confidence, "channel": self.channel,
                "language": self.language, "received_at": self.received_at.isoformat() + "Z"}


@dataclass(frozen=True)
class QueueGroup:
    """Similar messages, newest first; the group's example is its newest."""
    messages: Tuple[QueuedMessage, ...]

    @property
    def example(self) -> str:
        return self.messages[0].text

    def to_json(self) -> dict:
        return {"example": self.example, "count": len(self.messages),
                "messages": [message.to_json() for message in self.messages]}


class ReviewQueue:
    def __init__(self, store):
        self.store = store

    def pending(self, limit: int = QUEUE_LIMIT) -> Tuple[List[QueueGroup], int]:
        """The newest `limit` items not yet labelled, grouped by similarity (groups by their newest message);
        and how many are waiting in all."""
        with self.store.session() as session:
            waiting = ReviewItem.label.is_(None)
            rows = session.scalars(select(ReviewItem).where(waiting)
                                   .order_by(ReviewItem.received_at.desc(), ReviewItem.id.desc())
                                   .limit(limit)).all()
            total = session.scalar(select(func.count()).select_from(ReviewItem).where(waiting))
            messages = {row.id: QueuedMessage(row.id, row.text, tuple(row.reasons.split(",")), row.taken_for,
                                              row.guess, row.confidence, row.channel, row.language, row.received_at)
                        for row in rows}
        groups = group_similar((str(message.id), message.text) for message in messages.values())
        ordered = [QueueGroup(tuple(messages[int(key)] for key, _ in group.members)) for group in groups]
        ordered.sort(key=lambda group: (group.messages[0].received_at, group.messages[0].id), reverse=True)
        return ordered, total

    def label(self, item_ids: Sequence[int], label: str, agent_id: int, now: Optional[datetime] = None) -> int:
        """Label the items `item_ids` not yet labelled (an item two agents label at once keeps the first
        label); returns how many this call labelled. Raises ValueError for a label that is not one of
        review_labels()."""
        if label not in review_labels():
            raise ValueError("label: not one of the answers or intents")
        now = now or now_utc()
        with self.store.session() as session:
            return session.execute(update(ReviewItem)
                                   .where(ReviewItem.id.in_(list(item_ids)), ReviewItem.label.is_(None))
                                   .values(label=label, labelled_by=agent_id, labelled_at=now)
                                   .execution_options(synchronize_session=False)).rowcount

    def labelled(self, include_exported: bool = False) -> List[Tuple[int, str, str, Optional[str]]]:
        """(id, text, label, language) of the labelled items, oldest first, "not covered" left out; only those
        never exported unless `include_exported`."""
        with self.store.session() as session:
            query = select(ReviewItem.id, ReviewItem.text, ReviewItem.label, ReviewItem.language).where(
                ReviewItem.label.is_not(None), ReviewItem.label != NOT_COVERED)
            if not include_exported:
                query = query.where(ReviewItem.exported_at.is_(None))
            return [tuple(row) for row in session.execute(query.order_by(ReviewItem.labelled_at, ReviewItem.id))]

    def mark_exported(self, item_ids: Sequence[int], now: Optional[datetime] = None) -> None:
        now = now or now_utc()
        with self.store.session() as session:
            session.execute(update(ReviewItem).where(ReviewItem.id.in_(list(item_ids)))
                            .values(exported_at=now).execution_options(synchronize_session=False))
