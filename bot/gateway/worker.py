"""The inbox worker: takes each stored message exactly once to Rasa and delivers the replies, in order per
conversation, retrying with backoff while Rasa or a platform API is down.

Several gateway replicas may share one PostgreSQL database: each claims a message as a lease in its own name
(GatewayStore.claim), renews the leases of what it is working on every third of the lease time, and stops working
on a message whose lease another replica took over (LeaseLost: its own lease ran out, e.g. the process stalled).
A replica that dies loses its leases when they run out, and another one finishes its messages."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Dict, List, Mapping, Optional, Set, Tuple

from sqlalchemy.exc import SQLAlchemyError

from bot.backoff import exponential_delay
from bot.dialogue.handoff import handoff_language, handoff_reason
from bot.gateway.adapter import ChannelAdapter, DeliveryError
from bot.gateway.calls import DatabaseCalls
from bot.gateway.config import GatewaySettings
from bot.gateway.feedback import FeedbackStore, feedback_prompt, feedback_reply, rating_of
from bot.gateway.handoffs import HandoffStore
from bot.gateway.inbox import NoticeSender
from bot.gateway.messages import Reply, as_words, chosen_option, replies_from_rasa
from bot.gateway.rasa_client import GATEWAY_MESSAGE_KEY, RasaAnswer, RasaClient, RasaUnavailable
from bot.gateway.review import low_confidence_below, review_reasons
from bot.gateway.store import PENDING, GatewayStore, InboxRow, LeaseLost
from bot.nlu.language import detect_language
from bot.nlu.text import is_payload

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
HANDOFF_CHECK_SECONDS = 30.0


def retry_delay(attempts: int, cap: float) -> float:
    """Seconds before attempt number `attempts + 1`: 1, 2, 4, 8 ... up to `cap`, with ±10 % jitter."""
    return exponential_delay(max(1, attempts), 0.5, cap, jitter=0.1)


class InboxWorker:
    """Given the store (and its thread pool), Rasa, the handoffs and the channels to deliver through."""

    def __init__(self, settings: GatewaySettings, store: GatewayStore, db: DatabaseCalls, rasa: RasaClient,
                 handoffs: HandoffStore, channels: Mapping[str, ChannelAdapter], notices: NoticeSender,
                 feedback: FeedbackStore, concurrency: int = 64):
        self.settings, self.store, self.db, self.rasa = settings, store, db, rasa
        self.handoffs, self.channels, self.notices, self.feedback = handoffs, channels, notices, feedback
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._active: Set[str] = set()
        self._leased: Set[int] = set()          # the inbox rows this replica is working on
        self._lost: Set[int] = set()            # ... of which another replica has taken over
        self._tasks: Set[asyncio.Task] = set()
        self._stopping = False
        self._started = False                   # the previous run's claims are released: messages may be taken

    def wake(self) -> None:
        self._wake.set()

    def reserve(self, conversation_id: str) -> bool:
        """Room to start on a message of this conversation (one recorded just now, Inbox.receive, or one the
        scan found due): the conversation is then this worker's until its message is done (or, from the inbox,
        `start` says it was not claimed)."""
        busy = conversation_id in self._active or len(self._active) >= self.concurrency
        if busy or not self._started or self._stopping:
            return False
        self._active.add(conversation_id)
        return True

    def start(self, conversation_id: str, claimed: Optional[InboxRow]) -> None:
        """After `reserve`: work on the message claimed as it was recorded; None (it was not claimed: an older
        message is open, an agent has the conversation, or recording failed) gives the reservation back."""
        if claimed is None:
            self._active.discard(conversation_id)
            self.wake()
            return
        self._spawn(claimed.id, conversation_id, claimed)

    def _spawn(self, row_id: int, conversation_id: str, claimed: Optional[InboxRow] = None) -> None:
        task = asyncio.create_task(self._process(row_id, conversation_id, claimed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        store = self.store
        released = await self.db(store.release_claims)
        if released:
            logger.info("inbox: %d message(s) left unfinished by the previous run are pending again", released)
        self._started = True
        loop = asyncio.get_running_loop()
        next_handoff_check = next_renewal = 0.0
        while not self._stopping:
            self._wake.clear()
            if loop.time() >= next_renewal:
                next_renewal = loop.time() + store.lease.total_seconds() / 3
                await self._renew_leases()
            if loop.time() >= next_handoff_check:
                next_handoff_check = loop.time() + HANDOFF_CHECK_SECONDS
                await self._expire_waiting_handoffs()
            channels = [name for name, adapter in self.channels.items() if adapter.enabled]
            try:
                due = await self.db(store.due_messages, channels) if channels else []
            except SQLAlchemyError as error:
                logger.error("inbox: database unavailable (%s); retrying", type(error).__name__)
                due = []
            for row_id, conversation_id in due:
                if self.reserve(conversation_id):
                    self._spawn(row_id, conversation_id)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=POLL_SECONDS)
            except asyncio.TimeoutError:
                pass

    async def _renew_leases(self) -> None:
        working = set(self._leased)
        if not working:
            return
        try:
            kept = await self.db(self.store.renew_leases, sorted(working))
        except SQLAlchemyError as error:
            logger.error("inbox: leases not renewed, database unavailable (%s)", type(error).__name__)
            return
        for row_id in working - kept - self._lost:
            if row_id in self._leased:          # not finished meanwhile
                logger.warning("inbox %s: another replica has taken it over; this one stops working on it", row_id)
                self._lost.add(row_id)

    async def _expire_waiting_handoffs(self) -> None:
        minutes = self.settings.handoff_wait_minutes
        if minutes <= 0:
            return
        try:
            expired = await self.db(self.handoffs.expire_waiting, timedelta(minutes=minutes))
        except SQLAlchemyError as error:
            logger.error("handoffs: database unavailable (%s)", type(error).__name__)
            return
        for conversation_id in expired:
            logger.warning("%s: no agent took the conversation within %g min; back to the assistant",
                           conversation_id, minutes)

    async def stop(self) -> None:
        self._stopping = True
        self.wake()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)

    async def _process(self, row_id: int, conversation_id: str, claimed: Optional[InboxRow] = None) -> None:
        try:
            row = claimed or await self.db(self.store.claim, row_id)
            if row is not None:
                self._leased.add(row_id)
                await self._handle(row)
        except LeaseLost as lost:
            logger.warning("inbox %s: stopped, %s", row_id, lost)
        except SQLAlchemyError as error:
            logger.error("inbox %s: database error %s; will retry", row_id, type(error).__name__)
        except Exception:  # noqa: BLE001 - one bad message must not stop the worker
            logger.exception("inbox %s: unexpected error; will retry", row_id)
            try:
                await self.db(self.store.schedule_retry, row_id, 30.0, "unexpected error")
            except (SQLAlchemyError, LeaseLost):
                pass
        finally:
            self._leased.discard(row_id)
            self._lost.discard(row_id)
            self._active.discard(conversation_id)
            self.wake()

    async def _handle(self, row: InboxRow) -> None:
        adapter = self.channels[row.channel]
        recorded: Optional[List[Dict[str, object]]] = None
        if row.status == PENDING:
            answer = await self._ask_rasa(row)
            if answer is None:
                return
            replies, recorded = answer
            delivered = 0
        else:
            replies = [Reply.from_json(reply) for reply in row.replies or []]
            delivered = row.delivered_count
            if row.interrupted and delivered < len(replies):
                delivered = await self._already_delivered(row, replies, delivered)
        sent = 0
        try:
            sent = await self._deliver(row, replies, delivered, recorded)
        finally:
            if not (sent and adapter.typing_ends_with_a_reply):
                await adapter.hide_typing(row.sender_id)

    async def _already_delivered(self, row: InboxRow, replies: List[Reply], delivered: int) -> int:
        """The attempt before this one broke off while sending reply `delivered`: if the platform shows it reached
        the customer, count it as delivered instead of sending it again. Returns the next reply to send."""
        adapter, reply = self.channels[row.channel], replies[delivered]
        since = row.answered_at or datetime(1970, 1, 1)
        reached = await adapter.already_delivered(row.sender_id, reply, since)
        if reached:
            await self.db(self.store.record_delivery, row.id, delivered, reply)
            logger.info("inbox %s (%s): reply %d of %d had reached the customer before the interruption; not sent "
                        "again", row.id, row.conversation_id, delivered + 1, len(replies))
            return delivered + 1
        if reached is None:
            logger.warning("inbox %s (%s): %s cannot tell whether reply %d of %d reached the customer before the "
                           "interruption; sending it (it may arrive twice)", row.id, row.conversation_id,
                           row.channel, delivered + 1, len(replies))
        return delivered

    async def _ask_rasa(self, row: InboxRow) -> Optional[Tuple[List[Reply], Optional[List[Dict[str, object]]]]]:
        """Rasa's replies to the message, saved; with their transcript entries when saving them delivered them
        (the widget). None when Rasa could not be asked (the message is retried later)."""
        store = self.store
        adapter = self.channels[row.channel]
        key = f"{row.channel}:{row.message_id}"
        # The typing indicator goes out while Rasa works, not before it (a platform round trip off every turn),
        # and has arrived before anything else is sent to the customer.
        typing = asyncio.ensure_future(adapter.show_typing(row.sender_id))
        rated: Optional[List[Reply]] = None
        typed = not row.payload                 # a button says exactly what was wanted: not for the review queue
        try:
            answer = None
            if row.rasa_sent:
                answer = await self.rasa.replies_already_given(row.conversation_id, key)
                if answer is not None:
                    logger.info("inbox %s: Rasa had already answered; replies taken from its tracker", row.id)
            if answer is None:
                text = await self._rasa_text(row)
                typed = not is_payload(text)
                rating = rating_of(text)
                if rating is not None:          # a 👍 / 👎 quick reply: the gateway's own, never sent to Rasa
                    rated = await self._rate(row, rating)
                    answer = RasaAnswer([])
                else:
                    metadata = {**row.metadata, GATEWAY_MESSAGE_KEY: key}
                    answer = await self.rasa.send(row.conversation_id, text, row.channel, metadata)
        except RasaUnavailable as error:
            await typing                        # before the typing_off below
            delay = retry_delay(row.attempts + 1, self.settings.retry_max_seconds)
            attempts = await self.db(store.schedule_retry, row.id, delay, str(error), error.reached)
            logger.warning("inbox %s (%s): %s; attempt %d, retry in %.1f s", row.id, row.conversation_id, error,
                           attempts, delay)
            await adapter.hide_typing(row.sender_id)
            if await self.db(store.take_hold_notice, row.conversation_id):
                await self.notices.send(row.channel, row.sender_id, row.conversation_id, "hold_on")
            return None
        finally:
            await asyncio.wait([typing])        # done by now, unless something else broke off the turn
        raw = answer.replies
        replies = rated if rated is not None else replies_from_rasa(raw)
        marker = next((message["custom"] for message in raw if handoff_reason(message.get("custom"))), None)
        handoff = handoff_reason(marker)
        review = review_reasons(answer.understanding, handoff, typed, low_confidence_below())
        ask = None
        if self._asks_feedback(row, replies, handoff):
            # In the language of the question it follows (as the conversation's is set when a message is
            # recorded, not when it is answered: later messages may already have changed it).
            asked_in = detect_language(row.text, statistical=False)

            def ask(conversation_language: Optional[str]) -> Reply:
                return feedback_prompt(asked_in or conversation_language)
        entries = await self.db(store.save_replies, row.id, replies, handoff, handoff_language(marker),
                                delivered=adapter.transcript_delivers, feedback_prompt=ask,
                                understanding=answer.understanding, review=review)
        if handoff:
            logger.info("inbox %s (%s): handed over to the agents (%s)", row.id, row.conversation_id, handoff)
        return replies, entries if adapter.transcript_delivers else None

    async def _rate(self, row: InboxRow, rating: str) -> List[Reply]:
        """A customer's 👍 / 👎 on the conversation's latest answer from the documents: kept, and answered."""
        rated = await self.db(self.feedback.record, row.conversation_id, rating)
        logger.info("inbox %s (%s): rated %s (answer %s)", row.id, row.conversation_id, rating,
                    rated.entry if rated else None)
        return [feedback_reply(rating, await self.db(self.store.conversation_language, row.conversation_id))]

    def _asks_feedback(self, row: InboxRow, replies: List[Reply], handoff: Optional[str]) -> bool:
        """Whether "Was this answer helpful?" may follow these replies: on a channel that asks by message, after
        an answer from the documents that offers no choice of its own (the store asks once per conversation)."""
        if not self.channels[row.channel].asks_feedback_by_message or handoff or not replies:
            return False
        return bool(replies[-1].source) and not any(reply.buttons for reply in replies)

    async def _rasa_text(self, row: InboxRow) -> str:
        """What Rasa gets for a message: the payload of a button the assistant offered in this conversation (or
        of the channel's own controls); otherwise what the customer typed, as words. Nobody can send Rasa a
        command ("/request_human" to flood the agents' queue, "/intent{...}" to set slots) it never offered."""
        payload = row.payload
        adapter = self.channels[row.channel]
        if not payload and adapter.numbered_options and row.text:
            offered = await self.db(self.store.last_offered_buttons, row.conversation_id)
            chosen = chosen_option(row.text, offered) if offered else None
            if chosen is not None:
                logger.info("inbox %s (%s): numbered option %s chosen", row.id, row.conversation_id, chosen.payload)
                return chosen.payload
        if payload and (payload in adapter.ui_payloads
                        or payload in await self.db(self.store.offered_payloads, row.conversation_id)):
            return payload
        if payload:
            logger.info("inbox %s: payload not offered in this conversation; sent as words", row.id)
        return as_words(row.text)

    async def _deliver(self, row: InboxRow, replies: List[Reply], start: int,
                       already_recorded: Optional[List[Dict[str, object]]] = None) -> int:
        """Send replies `start`... and record each once it is delivered; `already_recorded`: their transcript
        entries, written with the replies (the message is done already). Returns how many reached the customer."""
        store = self.store
        adapter = self.channels[row.channel]
        sent = 0
        for index in range(start, len(replies)):
            reply = replies[index]
            recorded: Dict[str, object] = {}
            if already_recorded is not None:
                recorded["entry"] = already_recorded[index]

            async def record(index: int = index, reply: Reply = reply,
                             recorded: Dict[str, object] = recorded) -> Dict[str, object]:
                if "entry" not in recorded:
                    recorded["entry"] = await self.db(store.record_delivery, row.id, index, reply)
                return recorded["entry"]  # type: ignore[return-value]

            if row.id in self._lost and already_recorded is None:
                raise LeaseLost(f"another replica took it over before reply {index + 1} of {len(replies)}")
            try:
                await adapter.deliver(row.sender_id, reply, record)
            except DeliveryError as error:
                if error.retryable:
                    delay = retry_delay(row.attempts + 1, self.settings.retry_max_seconds)
                    if error.retry_after is not None:        # the platform said when (X's rate-limit reset)
                        delay = max(delay, error.retry_after)
                    await self.db(store.schedule_retry, row.id, delay, str(error))
                    logger.warning("inbox %s: delivery failed (%s); retry in %.1f s", row.id, error, delay)
                    return sent
                if error.recipient_unreachable:
                    logger.error("inbox %s (%s): the customer cannot be sent messages now; replies %d-%d of %d "
                                 "skipped: %s", row.id, row.conversation_id, index + 1, len(replies), len(replies),
                                 error)
                    await self.db(store.finish, row.id)
                    return sent
                logger.error("inbox %s: reply %d not deliverable, skipped: %s", row.id, index, error)
            else:
                sent += 1
            await record()
        if not replies and already_recorded is None:
            await self.db(store.finish, row.id)
        logger.info("inbox %s (%s): answered with %d message(s)", row.id, row.conversation_id, len(replies))
        return sent
