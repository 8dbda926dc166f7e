"""Where every channel hands in what a customer sent: stored durably before the webhook is answered, then the
worker is woken. Messages the assistant should not see (too long, empty, over the rate limit) are recorded too
and answered with one of the gateway's notices instead."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine, Dict, Mapping, Optional, Set

from sqlalchemy.exc import SQLAlchemyError

from bot.gateway.adapter import ChannelAdapter, DeliveryError
from bot.gateway.calls import DatabaseCalls
from bot.gateway.messages import MAX_TEXT_CHARS, ROLE_NOTICE, InboundMessage, Reply
from bot.gateway.notices import notice
from bot.gateway.ratelimit import SenderRateLimiter, counted
from bot.gateway.store import PENDING, RATE_LIMITED, REJECTED, GatewayStore, Recorded
from bot.nlu.language import SUPPORTED_LANGUAGES, detect_language

logger = logging.getLogger("bot.gateway")


class NoticeSender:
    """The gateway's own notices (resources/gateway/notices.yml) to a customer, through their channel."""

    def __init__(self, store: GatewayStore, db: DatabaseCalls, channels: Mapping[str, ChannelAdapter]):
        self.store, self.db, self.channels = store, db, channels

    async def send(self, channel: str, sender_id: str, conversation_id: str, key: str,
                   language: Optional[str] = None) -> None:
        """Best effort: one of the gateway's own notices, in the conversation's language, recorded in the
        transcript. (Answers from the assistant go through the inbox; notices are not retried.)"""
        try:
            if language is None:
                language = await self.db(self.store.conversation_language, conversation_id)
            reply = Reply(notice(key, language), role=ROLE_NOTICE)
            entry: Dict[str, Any] = {}

            async def record() -> Dict[str, Any]:
                if not entry:
                    entry.update(await self.db(self.store.record_notice, conversation_id, reply))
                return entry

            await self.channels[channel].deliver(sender_id, reply, record)
            await record()
        except (DeliveryError, SQLAlchemyError) as error:
            logger.warning("%s: %s notice not delivered: %s", conversation_id, key, error)


class Inbox:
    def __init__(self, store: GatewayStore, db: DatabaseCalls, rate_limiter: SenderRateLimiter,
                 notices: NoticeSender, wake_worker: Callable[[], None]):
        self.store, self.db, self.rate_limiter = store, db, rate_limiter
        self.notices, self.wake_worker = notices, wake_worker
        self._background: Set[asyncio.Task] = set()

    @property
    def notices_in_flight(self) -> int:
        """Notices (rejections, rate limits) being sent now; /healthz reports them."""
        return len(self._background)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def receive(self, message: InboundMessage, has_attachments: bool = False) -> Recorded:
        """Store one inbound message durably, then let the worker answer it."""
        # The conversation's language follows what the customer writes, as the assistant's does (bot/nlu/language.py);
        # the channel's hint (the widget's UI language) only starts a new conversation off.
        hint = message.metadata.get("language")
        language = detect_language(message.text, statistical=False)
        rejection = None
        if not message.payload and len(message.text) > MAX_TEXT_CHARS:
            rejection = "too_long"
        elif not message.payload and not message.text.strip():
            rejection = "unsupported_attachment" if has_attachments else "empty"
        allowed, notify = await counted(self.db, self.rate_limiter.shared, self.rate_limiter.check,
                                        message.conversation_id)
        status = REJECTED if rejection else PENDING if allowed else RATE_LIMITED
        try:
            recorded = await self.db(self.store.record_inbound, message, status, language,
                                     language_hint=hint if hint in SUPPORTED_LANGUAGES else None)
        except ValueError as refused:              # an id shaped like the gateway's own outbound keys
            logger.warning("%s: message refused: %s", message.conversation_id, refused)
            return Recorded(None, True, None)
        if recorded.duplicate:
            logger.info("%s: message %s already received; ignored", message.conversation_id, message.message_id)
            return recorded
        logger.info("%s: inbox %s %s", message.conversation_id, recorded.inbox_id, status)
        if rejection:
            self.spawn(self.notices.send(message.channel, message.sender_id, message.conversation_id, rejection,
                                        language))
        elif not allowed:
            if notify:
                self.spawn(self.notices.send(message.channel, message.sender_id, message.conversation_id,
                                            "rate_limited", language))
        else:
            self.wake_worker()
        return recorded

    def close(self) -> None:
        for task in list(self._background):
            task.cancel()
