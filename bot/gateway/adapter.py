"""The interface every channel implements. An adapter owns its webhook routes (turning channel events into
InboundMessage for the inbox's `receive`) and the way replies reach its customers; everything else — the inbox,
Rasa, retries, notices — is shared. An adapter gets what it uses (ChannelDeps) from the app factory
(bot/gateway/app.py) and imports nothing above it."""
from __future__ import annotations

import abc
import asyncio
import inspect
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable, Dict, FrozenSet, Mapping, Optional, Union

import aiohttp
from aiohttp import web

from bot.backoff import exponential_delay
from bot.gateway.calls import DatabaseCalls
from bot.gateway.config import GatewaySettings
from bot.gateway.json_input import BadJson, parse_json_object
from bot.gateway.messages import Reply
from bot.gateway.store import GatewayStore, Recorded

logger = logging.getLogger(__name__)

RecordDelivery = Callable[[], Awaitable[Dict[str, Any]]]
# The inbox's receive(message, has_attachments=False, acknowledge=None): store the message, then have it answered
# (`acknowledge(recorded)` is awaited in between: what the channel shows the customer before any answer).
Receive = Callable[..., Awaitable[Recorded]]


@dataclass(frozen=True)
class ChannelDeps:
    """What a channel adapter is given: the settings, the outbound HTTP session, the store and its thread pool,
    and where inbound messages go."""
    settings: GatewaySettings
    http: aiohttp.ClientSession
    db: DatabaseCalls
    store: GatewayStore
    receive: Receive


class DeliveryError(Exception):
    """A reply could not be delivered. `retryable` errors (network, 429, 5xx) are tried again later, not before
    `retry_after` seconds when the platform said so; others (the customer blocked the page, a malformed request)
    are logged and the reply is skipped — and with `recipient_unreachable` (the platform will take no message for
    this customer now, e.g. X's 403 for a customer who takes no DMs from us) the rest of that answer too, with one
    log line. `status`: the platform's HTTP status, when it answered."""

    def __init__(self, message: str, retryable: bool = True, retry_after: Optional[float] = None,
                 status: Optional[int] = None, recipient_unreachable: bool = False):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.recipient_unreachable = recipient_unreachable


# How far a platform's clock may be from ours when its timestamps are compared with our own (already_delivered).
PLATFORM_CLOCK_SKEW = timedelta(seconds=60)


class ChannelAdapter(abc.ABC):
    name: str = ""
    # Payloads of the channel's own controls, accepted though no reply of the assistant offered them as buttons.
    ui_payloads: FrozenSet[str] = frozenset()
    # A channel without buttons shows them as a numbered list (messages.numbered_options); a reply of "2" or of
    # an option's words is then taken as that button (messages.chosen_option).
    numbered_options: bool = False
    # Recording a reply in the transcript is its delivery (the widget's mailbox): the replies of one answer are
    # then stored and recorded in one transaction, and pushed after it.
    transcript_delivers: bool = False
    # The platform clears the typing indicator itself when a message is sent (Messenger: "Typing indicators are
    # automatically turned off after 20 seconds, or when the bot sends a message"): hide_typing is then called only
    # when an attempt sent nothing.
    typing_ends_with_a_reply: bool = False
    # "Was this helpful? 👍 👎" comes as a message with quick replies after an answer from the documents, once per
    # conversation at most (Messenger, X); the widget asks under its answers itself (bot/gateway/feedback.py).
    asks_feedback_by_message: bool = False

    def __init__(self, deps: ChannelDeps):
        self.settings, self.http, self.db, self.store = deps.settings, deps.http, deps.db, deps.store
        self.receive = deps.receive

    async def start(self) -> None:
        """Once the gateway runs (before the first request): connect what the channel keeps open."""

    def missing_settings(self) -> Dict[str, bool]:
        """Settings this channel needs, mapped to whether each is missing. Any missing → the channel is off."""
        return {}

    @property
    def enabled(self) -> bool:
        return not any(self.missing_settings().values())

    def disabled_reason(self) -> str:
        missing = sorted(name for name, is_missing in self.missing_settings().items() if is_missing)
        return f"{self.name} channel disabled: set {', '.join(missing)} to enable it"

    def not_configured(self) -> web.Response:
        return web.json_response({"error": f"{self.name} channel not configured"}, status=404)

    async def signed_json(self, request: web.Request, signature: str,
                          valid_signature: Callable[[bytes, Mapping[str, str]], bool]
                          ) -> Union[Dict[str, Any], web.Response]:
        """The JSON object of a webhook POST whose signature (`valid_signature(raw body, request headers)`; the
        header's name for the log in `signature`) checks out; otherwise the error response to return (404 channel
        off, 403 missing, malformed or wrong signature, 400 malformed or too deeply nested JSON; 413 comes from
        the 1 MB body limit)."""
        if not self.enabled:
            return self.not_configured()
        body = await request.read()
        if not valid_signature(body, request.headers):
            logger.warning("%s: POST with a missing or wrong %s refused", self.name, signature)
            return web.json_response({"error": "invalid signature"}, status=403)
        try:
            return parse_json_object(body)
        except BadJson as problem:
            return web.json_response({"error": str(problem)}, status=400)

    @abc.abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Register the channel's routes (a disabled channel registers routes that answer 404)."""

    async def show_typing(self, sender_id: str) -> None:
        """Best effort: a typing indicator while the assistant works on a message."""

    async def hide_typing(self, sender_id: str) -> None:
        """Best effort: clear the typing indicator."""

    @abc.abstractmethod
    async def deliver(self, sender_id: str, reply: Reply, record: RecordDelivery) -> None:
        """Get `reply` to the customer and call `record()` once it is delivered (for the widget, recording in the
        transcript IS the delivery). Raise DeliveryError if it could not be delivered."""

    async def already_delivered(self, sender_id: str, reply: Reply, since: datetime) -> Optional[bool]:
        """After an interrupted attempt: did `reply` reach the customer after `since` (naive UTC)? True or False
        when the platform can tell, None when it cannot (the reply is then sent, and may arrive twice)."""
        return None

    async def close(self) -> None:
        """Release the adapter's resources on shutdown."""


Headers = Callable[[], Union[Dict[str, str], Awaitable[Dict[str, str]]]]
MAX_WAIT_SECONDS = 30.0          # longer waits a platform asks for go back to the inbox (DeliveryError.retry_after)


def rate_limit_wait(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
    """Seconds a 429 answer asks us to wait: Retry-After (seconds), or X's x-rate-limit-reset (the epoch second
    the window reopens). None when neither is given or readable."""
    retry_after = headers.get("Retry-After", "").strip()
    if retry_after.isdigit():
        return float(retry_after)
    reset = headers.get("x-rate-limit-reset", "").strip()
    if reset.isdigit() and len(reset) <= 12:
        return max(0.0, float(reset) - (time.time() if now is None else now))
    return None


async def post_with_retry(session: aiohttp.ClientSession, url: str, *, attempts: int = 4, base_delay: float = 0.5,
                          headers_for: Optional[Headers] = None, **kwargs: Any) -> Dict[str, Any]:
    """POST to a platform API, retrying network errors, 429 and 5xx with exponential backoff (waiting as long as
    a 429's Retry-After or x-rate-limit-reset says, when that is at most 30 s; a longer wait is handed back as
    DeliveryError.retry_after, for the inbox to retry then). `headers_for` is called (and awaited, if it is a
    coroutine function) before every attempt. Returns the JSON answer; raises DeliveryError."""
    last_error, last_status = "", None
    for attempt in range(attempts):
        retry_after: Optional[float] = None
        try:
            headers = headers_for() if headers_for else None
            if inspect.isawaitable(headers):
                headers = await headers
            async with session.post(url, headers=headers, **kwargs) as response:
                body = await response.read()
                if response.status < 300:
                    try:
                        return await response.json(content_type=None) if body else {}
                    except ValueError:
                        return {}
                last_status = response.status
                last_error = f"HTTP {response.status}: {body[:200].decode('utf-8', 'replace')}"
                if response.status != 429 and response.status < 500:
                    raise DeliveryError(last_error, retryable=False, status=response.status)
                if response.status == 429:
                    retry_after = rate_limit_wait(response.headers)
                    if retry_after is not None and retry_after > MAX_WAIT_SECONDS:
                        raise DeliveryError(last_error, retry_after=retry_after, status=429)
        except aiohttp.ClientError as error:
            last_error = f"{type(error).__name__}: {error}"
        except asyncio.TimeoutError:
            last_error = "timeout"
        if attempt + 1 < attempts:
            delay = exponential_delay(attempt, base_delay, jitter=0.2) if retry_after is None else retry_after + 0.5
            await asyncio.sleep(delay)
    raise DeliveryError(last_error or "delivery failed", retryable=True, status=last_status)
