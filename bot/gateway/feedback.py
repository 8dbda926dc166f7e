"""Customers' 👍 / 👎 on the assistant's answers ("Was this helpful?"), stored per answer with the conversation's
language and channel; the report counts them (CSAT) and the review queue shows the 👎.

The widget asks under its newest answer from the documents and says which answer was rated; Messenger and X get
the question as quick replies once per conversation at most (`GatewayStore.save_replies` asks it with the
answer it follows, in one transaction), and a rating from them is for the
conversation's latest answer from the documents. All methods are synchronous; the gateway calls them in a thread.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Dict, NamedTuple, Optional, Tuple

from sqlalchemy import select

from bot.clock import now_utc
from bot.gateway.messages import ROLE_BOT, Button, Reply
from bot.gateway.models import AnswerFeedback, Conversation, TranscriptEntry
from bot.gateway.notices import notice
from bot.gateway.review import add_rated_down
from bot.gateway.store import GatewayStore

UP, DOWN = "up", "down"
RATINGS = (UP, DOWN)
FEEDBACK_PAYLOAD = re.compile(r'^/feedback\{"rating":\s*"(up|down)"\}$')
TALK_TO_PERSON_PAYLOAD = "/request_human"   # the assistant's own intent: a person takes over (bot/dialogue/handoff.py)


def feedback_payload(rating: str) -> str:
    """The payload of a 👍 / 👎 quick reply (taken by the gateway, never sent to Rasa)."""
    if rating not in RATINGS:
        raise ValueError(f"rating: one of {RATINGS}")
    return "/feedback" + json.dumps({"rating": rating}, separators=(",", ":"))


def feedback_buttons() -> Tuple[Button, Button]:
    return Button("👍", feedback_payload(UP)), Button("👎", feedback_payload(DOWN))


def feedback_prompt(language: Optional[str]) -> Reply:
    """ "Was this answer helpful?" with 👍 / 👎 quick replies (Messenger, X)."""
    return Reply(notice("feedback_prompt", language), buttons=feedback_buttons())


def feedback_reply(rating: str, language: Optional[str]) -> Reply:
    """The assistant's answer to a rating: thanks for a 👍; for a 👎, a person (a button) and the channels."""
    if rating == UP:
        return Reply(notice("feedback_thanks", language))
    return Reply(notice("feedback_sorry", language),
                 buttons=(Button(notice("feedback_talk_to_person", language), TALK_TO_PERSON_PAYLOAD),))


def rating_of(payload: Optional[str]) -> Optional[str]:
    """The rating a 👍 / 👎 quick reply's payload gives, else None."""
    match = FEEDBACK_PAYLOAD.match(payload or "")
    return match.group(1) if match else None


class Rated(NamedTuple):
    entry: int          # the transcript entry (seq) of the answer rated
    rating: str         # the rating it keeps: its first
    new: bool           # this call gave it


class FeedbackStore:
    def __init__(self, store: GatewayStore):
        self.store = store

    def record(self, conversation_id: str, rating: str, entry_seq: Optional[int] = None,
               now: Optional[datetime] = None) -> Optional[Rated]:
        """Keep a customer's `rating` (up | down) of one answer: the entry `entry_seq` (the widget says which: it
        must be an answer of the assistant in this conversation), or else the conversation's latest answer from the
        documents. An answer keeps its first rating. None when there is no such answer."""
        if rating not in RATINGS:
            raise ValueError(f"rating: one of {RATINGS}")
        now = now or now_utc()
        with self.store.session() as session:
            query = select(TranscriptEntry).where(TranscriptEntry.conversation_id == conversation_id,
                                                  TranscriptEntry.role == ROLE_BOT)
            if entry_seq is not None:
                query = query.where(TranscriptEntry.id == entry_seq)
            else:
                query = query.where(TranscriptEntry.source.is_not(None)).order_by(TranscriptEntry.id.desc())
            entry = session.scalars(query.limit(1)).first()
            conversation = session.get(Conversation, conversation_id)
            if entry is None or conversation is None:
                return None
            # Rated twice at once (two tabs, two replicas): the first row stays.
            added = session.execute(self.store.insert_ignoring_conflicts(
                AnswerFeedback, ["conversation_id", "entry_id"], conversation_id=conversation_id,
                entry_id=entry.id, channel=conversation.channel, language=conversation.language, rating=rating,
                created_at=now)).rowcount
            kept = session.scalar(select(AnswerFeedback.rating).where(
                AnswerFeedback.conversation_id == conversation_id, AnswerFeedback.entry_id == entry.id))
            if added and kept == DOWN:
                add_rated_down(session, entry.inbox_id, conversation.language)     # to the agents' review queue
            return Rated(entry.id, kept, bool(added))

    def ratings(self, conversation_id: str) -> Dict[int, str]:
        """entry seq -> rating, for a conversation (the widget shows what was rated after a reload)."""
        with self.store.session() as session:
            return dict(session.execute(select(AnswerFeedback.entry_id, AnswerFeedback.rating)
                                        .where(AnswerFeedback.conversation_id == conversation_id)).all())
