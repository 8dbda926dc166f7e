"""Facebook Messenger (page @weareunifi): webhook verification, signed event batches, and the Send API.

Inbound: GET /webhooks/facebook answers Meta's verification (hub.mode=subscribe, hub.verify_token,
hub.challenge); POST bodies must carry X-Hub-Signature-256 = "sha256=" + hex HMAC-SHA256(app secret, raw body).
Every entry and every messaging event is handled; echoes, deliveries and reads are ignored; a quick-reply
payload or a postback payload is preferred over the text. Outbound: POST {graph}/me/messages with
messaging_type RESPONSE, text split at 2,000 characters, at most 13 quick replies with titles of at most 20.
After an attempt that broke off (its gateway died while sending), GET {graph}/me/conversations shows whether the
reply it was sending reached the customer, so that it is not sent twice.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import aiohttp
from aiohttp import web

from bot.gateway.adapter import PLATFORM_CLOCK_SKEW, ChannelAdapter, DeliveryError, RecordDelivery, post_with_retry
from bot.gateway.json_input import items, mapping
from bot.gateway.messages import ROLE_AGENT, InboundMessage, Reply, shorten, split_text
from bot.secret_compare import same_secret

logger = logging.getLogger(__name__)

TEXT_LIMIT = 2000
QUICK_REPLY_LIMIT = 13
QUICK_REPLY_TITLE_LIMIT = 20
QUICK_REPLY_PAYLOAD_LIMIT = 1000
SIGNATURE_HEADER = "X-Hub-Signature-256"


def valid_signature(app_secret: str, body: bytes, header: Optional[str]) -> bool:
    """X-Hub-Signature-256 check, in constant time on bytes (a header in any other shape is simply wrong)."""
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return same_secret(header.strip().lower(), expected)


def inbound_messages(body: Mapping[str, Any]) -> Iterator[Tuple[InboundMessage, bool]]:
    """(message, has_attachments) for every customer message or postback in a webhook body."""
    if body.get("object") != "page":
        return
    for entry in items(body.get("entry")):
        for event in items(mapping(entry).get("messaging")):
            parsed = _messaging_event(event)
            if parsed is not None:
                yield parsed


def _messaging_event(event: Any) -> Optional[Tuple[InboundMessage, bool]]:
    if not isinstance(event, Mapping):
        return None
    sender = str(mapping(event.get("sender")).get("id") or "")
    if not sender:
        return None
    message, postback = event.get("message"), event.get("postback")
    if isinstance(message, Mapping):
        if message.get("is_echo"):
            return None                                   # our own reply, echoed back to the page
        mid = str(message.get("mid") or "")
        if not mid:
            return None
        payload = mapping(message.get("quick_reply")).get("payload")
        text = str(message.get("text") or "")
        has_attachments = bool(message.get("attachments"))
        return InboundMessage("facebook", sender, mid, text=text, payload=_payload(payload)), has_attachments
    if isinstance(postback, Mapping):
        payload = _payload(postback.get("payload"))
        title = str(postback.get("title") or "")
        mid = str(postback.get("mid") or f"postback:{sender}:{event.get('timestamp', '')}")
        if not payload and not title:
            return None
        return InboundMessage("facebook", sender, mid, text=title, payload=payload), False
    return None                                           # delivery, read, reaction, optin ...: nothing to answer


def _payload(value: Any) -> Optional[str]:
    """Our buttons carry Rasa payloads ("/faq/plans"); anything else (e.g. a page's Get Started payload) is
    passed as text instead."""
    return value if isinstance(value, str) and value.startswith("/") else None


def render(recipient: str, reply: Reply, human_agent_tag: bool = False) -> List[Dict[str, Any]]:
    """Send API bodies for one reply: the text in chunks of ≤ 2,000 characters, quick replies on the last. With
    `human_agent_tag`, an agent's reply is tagged HUMAN_AGENT, which Meta allows up to 7 days after the customer's
    last message (instead of 24 hours) for pages with the Human Agent permission."""
    text = reply.text
    if reply.image:
        text = f"{text}\n{reply.image}".strip()
    chunks = split_text(text, TEXT_LIMIT) or ([""] if reply.buttons else [])
    bodies = []
    for index, chunk in enumerate(chunks):
        message: Dict[str, Any] = {"text": chunk or "…"}
        if index == len(chunks) - 1 and reply.buttons:
            message["quick_replies"] = [
                {"content_type": "text", "title": shorten(button.title, QUICK_REPLY_TITLE_LIMIT),
                 "payload": button.payload[:QUICK_REPLY_PAYLOAD_LIMIT]}
                for button in reply.buttons[:QUICK_REPLY_LIMIT]
            ]
        body: Dict[str, Any] = {"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": message}
        if human_agent_tag and reply.role == ROLE_AGENT:
            body.update(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
        bodies.append(body)
    return bodies


RECENT_MESSAGES = 10


def sent_at(created_time: str) -> datetime:
    """A Graph API created_time (2026-12-02T14:00:00+0000) as naive UTC."""
    moment = datetime.strptime(created_time, "%Y-%m-%dT%H:%M:%S%z")
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


class FacebookAdapter(ChannelAdapter):
    name = "facebook"
    typing_ends_with_a_reply = True
    asks_feedback_by_message = True

    def missing_settings(self) -> Dict[str, bool]:
        s = self.settings
        return {
            "FACEBOOK_VERIFY_TOKEN": not s.facebook_verify_token,
            "FACEBOOK_APP_SECRET": not s.facebook_app_secret,
            "FACEBOOK_PAGE_ACCESS_TOKEN": not s.facebook_page_access_token,
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/webhooks/facebook", self.verify)
        app.router.add_post("/webhooks/facebook", self.webhook)

    async def verify(self, request: web.Request) -> web.Response:
        if not self.enabled:
            return self.not_configured()
        query = request.query
        if query.get("hub.mode") == "subscribe" and same_secret(query.get("hub.verify_token"),
                                                                self.settings.facebook_verify_token):
            return web.Response(text=query.get("hub.challenge", ""))
        logger.warning("facebook: webhook verification refused (wrong mode or verify token)")
        return web.Response(status=403, text="verification failed")

    async def webhook(self, request: web.Request) -> web.Response:
        secret = self.settings.facebook_app_secret
        data = await self.signed_json(request, SIGNATURE_HEADER, lambda body, headers: valid_signature(
            secret, body, headers.get(SIGNATURE_HEADER)))
        if isinstance(data, web.Response):
            return data
        for message, has_attachments in inbound_messages(data):
            await self.receive(message, has_attachments=has_attachments)
        return web.Response(text="EVENT_RECEIVED")

    def _url(self) -> str:
        return f"{self.settings.facebook_graph_url}/me/messages"

    def _params(self) -> Dict[str, str]:
        return {"access_token": self.settings.facebook_page_access_token}

    async def show_typing(self, sender_id: str) -> None:
        await self._sender_action(sender_id, "typing_on")

    async def hide_typing(self, sender_id: str) -> None:
        await self._sender_action(sender_id, "typing_off")

    async def _sender_action(self, sender_id: str, action: str) -> None:
        try:
            await post_with_retry(self.http, self._url(), params=self._params(), attempts=1,
                                  json={"recipient": {"id": sender_id}, "sender_action": action})
        except DeliveryError as error:
            logger.info("facebook: %s for %s not sent: %s", action, sender_id, error)

    async def already_delivered(self, sender_id: str, reply: Reply, since: datetime) -> Optional[bool]:
        """Whether the page's conversation with the customer (Graph API, Conversations: GET /me/conversations
        with platform=messenger, user_id and its latest messages) holds this reply's first message, sent by the
        page after `since`. None when the Graph API does not answer it (e.g. the token lacks the permission)."""
        first = render(sender_id, reply)[0]["message"]["text"]
        params = {**self._params(), "platform": "messenger", "user_id": sender_id,
                  "fields": f"messages.limit({RECENT_MESSAGES}){{message,from,created_time}}"}
        try:
            async with self.http.get(f"{self.settings.facebook_graph_url}/me/conversations", params=params,
                                     timeout=aiohttp.ClientTimeout(total=10)) as response:
                if response.status != 200:
                    logger.info("facebook: conversations for %s: HTTP %s", sender_id, response.status)
                    return None
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            logger.info("facebook: conversations for %s: %s", sender_id, type(error).__name__)
            return None
        try:
            messages = [m for conversation in data.get("data") or []
                        for m in ((conversation.get("messages") or {}).get("data") or [])]
            return any(message.get("message") == first and (message.get("from") or {}).get("id") != sender_id
                       and sent_at(message.get("created_time", "")) >= since - PLATFORM_CLOCK_SKEW
                       for message in messages)
        except (AttributeError, TypeError, ValueError):
            return None

    async def deliver(self, sender_id: str, reply: Reply, record: RecordDelivery) -> None:
        for body in render(sender_id, reply, self.settings.facebook_human_agent_tag):
            await post_with_retry(self.http, self._url(), params=self._params(), json=body)
