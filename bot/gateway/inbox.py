"""Where every channel hands in what a customer sent: stored durably before the webhook is answered, then the
worker is woken. Messages the assistant should not see (too long, empty, over the rate limit) are recorded too
and answered with one of the gateway's notices instead."""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Awaitable, Callable, Coroutine, Dict, Mapping, Optional, Protocol, Set

from sqlalchemy.exc import SQLAlchemyError

from bot.gateway.adapter import ChannelAdapter, DeliveryError
from bot.gateway.calls import DatabaseCalls
from bot.gateway.messages import MAX_TEXT_CHARS, ROLE_NOTICE, InboundMessage, Reply
from bot.gateway.notices import notice
from bot.gateway.ratelimit import SenderRateLimiter, counted
from bot.gateway.store import PENDING, RATE_LIMITED, REJECTED, GatewayStore, InboxRow, Recorded
from bot.nlu.language import SUPPORTED_LANGUAGES, detect_language

logger = logging.getLogger("bot.gateway")


SWITCH_LANGUAGE = re.compile(r'^/switch_language\{"language":\s*"([a-z]{2})"\}$')


def asked_language(payload: Optional[str]) -> Optional[str]:
    """The language a "switch language" button asks for (the widget's EN/BM switch), else None."""
    found = SWITCH_LANGUAGE.match(payload or "")
    return found.group(1) if found and found.group(1) in SUPPORTED_LANGUAGES else None


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


class Worker(Protocol):
    """What the inbox needs of the worker (bot/gateway/worker.py): to be woken, and to start on a message the
    moment it is recorded when it has room (no look for due messages, no claim of its own)."""

    def wake(self) -> None: ...

    def reserve(self, conversation_id: str) -> bool: ...

    def start(self, conversation_id: str, claimed: Optional[InboxRow]) -> None: ...


class Inbox:
    def __init__(self, store: GatewayStore, db: DatabaseCalls, rate_limiter: SenderRateLimiter,
                 notices: NoticeSender, worker: Worker):
        self.store, self.db, self.rate_limiter = store, db, rate_limiter
        self.notices, self.worker = notices, worker
        self._background: Set[asyncio.Task] = set()

    @property
    def notices_in_flight(self) -> int:
        """Notices (rejections, rate limits) being sent now; /healthz reports them."""
        return len(self._background)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def receive(self, message: InboundMessage, has_attachments: bool = False,
                      acknowledge: Optional[Callable[[Recorded], Awaitable[None]]] = None) -> Recorded:
        """Store one inbound message durably, then let the worker answer it. `acknowledge(recorded)` (the
        widget's ack and echo) is awaited once the message is stored and before the worker starts on it, so the
        customer sees their message before any frame of its answer."""
        # The conversation's language follows what the customer writes, as the assistant's does (bot/nlu/language.py);
        # the channel's hint (the widget's UI language) only starts a new conversation off.
        hint = message.metadata.get("language")
        language = asked_language(message.payload) or detect_language(message.text, statistical=False)
        rejection = None
        if not message.payload and len(message.text) > MAX_TEXT_CHARS:
            rejection = "too_long"
        elif not message.payload and not message.text.strip():
            rejection = "unsupported_attachment" if has_attachments else "empty"
        allowed, notify = await counted(self.db, self.rate_limiter.shared, self.rate_limiter.check,
                                        message.conversation_id)
        status = REJECTED if rejection else PENDING if allowed else RATE_LIMITED
        reserved = status == PENDING and self.worker.reserve(message.conversation_id)
        refused = Recorded(None, True, None)
        recorded = refused
        try:
            try:
                recorded = await self.db(self.store.record_inbound, message, status, language,
                                         language_hint=hint if hint in SUPPORTED_LANGUAGES else None,
                                         claim=reserved)
            except ValueError as refusal:              # an id shaped like the gateway's own outbound keys
                logger.warning("%s: message refused: %s", message.conversation_id, refusal)
            if acknowledge is not None:
                await acknowledge(recorded)
        finally:
            if reserved:
                self.worker.start(message.conversation_id, recorded.claimed)
        if recorded is refused:
            return recorded
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
        elif recorded.claimed is None:
            self.worker.wake()
        return recorded

    def close(self) -> None:
        for task in list(self._background):
            task.cancel()
