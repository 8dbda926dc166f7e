"""The interface every channel implements. An adapter owns its webhook routes (turning channel events into
InboundMessage for Gateway.receive) and the way replies reach its customers; everything else — the inbox,
Rasa, retries, notices — is shared."""
from __future__ import annotations

import abc
import asyncio
import logging
import random
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, FrozenSet, Optional, Union

import aiohttp
from aiohttp import web

from bot.gateway.json_input import BadJson, parse_json_object
from bot.gateway.messages import Reply

if TYPE_CHECKING:
    from bot.gateway.app import Gateway

logger = logging.getLogger(__name__)

RecordDelivery = Callable[[], Awaitable[Dict[str, Any]]]


class DeliveryError(Exception):
    """A reply could not be delivered. `retryable` errors (network, 429, 5xx) are tried again later; others
    (the customer blocked the page, a malformed request) are logged and the reply is skipped."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class ChannelAdapter(abc.ABC):
    name: str = ""
    # Payloads of the channel's own controls, accepted though no reply of the assistant offered them as buttons.
    ui_payloads: FrozenSet[str] = frozenset()

    def __init__(self, gateway: "Gateway"):
        self.gateway = gateway

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

    async def signed_json(self, request: web.Request, signature_header: str,
                          valid_signature: Callable[[bytes, Optional[str]], bool]) -> Union[Dict[str, Any], web.Response]:
        """The JSON object of a webhook POST whose signature header checks out; otherwise the error response to
        return (404 channel off, 403 missing, malformed or wrong signature, 400 malformed or too deeply nested
        JSON; 413 comes from the 1 MB body limit)."""
        if not self.enabled:
            return self.not_configured()
        body = await request.read()
        if not valid_signature(body, request.headers.get(signature_header)):
            logger.warning("%s: POST with a missing or wrong %s refused", self.name, signature_header)
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

    async def close(self) -> None:
        """Release the adapter's resources on shutdown."""


async def post_with_retry(session: aiohttp.ClientSession, url: str, *, attempts: int = 4, base_delay: float = 0.5,
                          headers_for: Optional[Callable[[], Dict[str, str]]] = None,
                          **kwargs: Any) -> Dict[str, Any]:
    """POST to a platform API, retrying network errors, 429 and 5xx with exponential backoff (and Retry-After
    when given, up to 30 s). Returns the JSON answer; raises DeliveryError."""
    last_error = ""
    for attempt in range(attempts):
        retry_after: Optional[float] = None
        try:
            headers = headers_for() if headers_for else None
            async with session.post(url, headers=headers, **kwargs) as response:
                body = await response.read()
                if response.status < 300:
                    try:
                        return await response.json(content_type=None) if body else {}
                    except ValueError:
                        return {}
                last_error = f"HTTP {response.status}: {body[:200].decode('utf-8', 'replace')}"
                if response.status != 429 and response.status < 500:
                    raise DeliveryError(last_error, retryable=False)
                header = response.headers.get("Retry-After", "")
                if header.isdigit():
                    retry_after = min(30.0, float(header))
        except aiohttp.ClientError as error:
            last_error = f"{type(error).__name__}: {error}"
        except asyncio.TimeoutError:
            last_error = "timeout"
        if attempt + 1 < attempts:
            delay = retry_after if retry_after is not None else base_delay * (2 ** attempt)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
    raise DeliveryError(last_error or "delivery failed", retryable=True)
