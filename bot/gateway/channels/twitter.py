"""X direct messages to @helpmeunifi: X Activity API (XAA) webhooks in, X API v2 Direct Messages out.

Inbound, on /webhooks/x (the documented name) and /webhooks/twitter (the old path, kept): GET ?crc_token=...
answers the challenge-response check with {"response_token": "sha256=" + base64 HMAC-SHA256(secret, token)};
every POST must be signed over its raw body — X-Twitter-Webhooks-Signature-OAuth2 with the OAuth 2.0 client
secret (TWITTER_CLIENT_SECRET, which then also answers the CRC) or the legacy X-Twitter-Webhooks-Signature with
the OAuth 1.0a consumer secret. A body is one XAA delivery {"data": {"event_uuid", "filter", "event_type", "tag",
"payload", "includes"}}: only `dm.received` for TWITTER_BOT_USER_ID is read, its payload either a v2 DM event
(`id`, `event_type: MessageCreate`, `sender_id`, `dm_conversation_id`, `text`, `attachments`) or a wrapped
`direct_message_events` list; a redelivered event_uuid is acknowledged and skipped, and the inbox dedupes DM
ids. The Account Activity API's own bodies (top-level `direct_message_events`) are read until TWITTER_AAA_UNTIL
(its end of life, 1 January 2027). The bot's own messages come back as events and are ignored.

Outbound: POST /2/dm_conversations/with/{sender}/messages {"text"} in the bot account's user context
(bot/gateway/x_api.py). v2 DMs have no quick replies: buttons become a numbered list under a hint in the
conversation's language, and a reply of "2" or of an option's words is taken as that button (the worker does it
for every adapter with `numbered_options`). 429s wait for x-rate-limit-reset; a recipient who takes no DMs
from us (403) is logged once and that answer dropped. After an attempt that broke off (its gateway died while
sending), GET /2/dm_conversations/with/{sender}/dm_events shows whether the reply it was sending went out, so
that it is not sent twice.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from bot.clock import now_utc
from bot.gateway.adapter import (
    PLATFORM_CLOCK_SKEW,
    ChannelAdapter,
    ChannelDeps,
    DeliveryError,
    RecordDelivery,
    post_with_retry,
)
from bot.gateway.json_input import items, mapping
from bot.gateway.messages import Button, InboundMessage, Reply, conversation_id, numbered_options, shorten, split_text
from bot.gateway.notices import notice
from bot.gateway.x_api import UserAuth, XAuthError, oauth1_configured, token_store
from bot.secret_compare import same_secret

logger = logging.getLogger(__name__)

TEXT_LIMIT = 10000
OPTION_LIMIT = 20
OPTION_TITLE_LIMIT = 80
SUBSCRIBED_EVENT = "dm.received"
SIGNATURE_HEADER_OAUTH2 = "X-Twitter-Webhooks-Signature-OAuth2"
SIGNATURE_HEADER = "X-Twitter-Webhooks-Signature"
SEND_PATH = "/2/dm_conversations/with/{participant_id}/messages"
EVENTS_PATH = "/2/dm_conversations/with/{participant_id}/dm_events"
RECENT_EVENTS = 10
AUTH_RETRY_SECONDS = 300.0      # the answers wait this long while the X account's authorization is broken
# 403s that are about our app (scopes, enrolment), not about the customer: the answer waits for the operator.
APP_PROBLEMS = ("client-forbidden", "client-not-enrolled", "unsupported authentication", "scope")


def created_at(value: str) -> datetime:
    """An X API v2 created_at (2026-12-02T14:00:00.000Z) as naive UTC."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")


def _hmac_base64(secret: str, data: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


# X's crc_tokens are short base64 / base64url strings. The CRC answer is the same HMAC as a webhook signature, so
# signing anything else would let a caller have the gateway sign a forged JSON body: a token in this alphabet can
# never be a JSON object (which starts with "{").
CRC_TOKEN = re.compile(r"^[A-Za-z0-9_\-+/=]{1,128}$")


def valid_crc_token(token: Optional[str]) -> bool:
    return token is not None and CRC_TOKEN.fullmatch(token) is not None


def crc_response(secret: str, crc_token: str) -> Dict[str, str]:
    if not valid_crc_token(crc_token):
        raise ValueError("not a CRC token")
    return {"response_token": "sha256=" + _hmac_base64(secret, crc_token.encode())}


def valid_signature(secret: str, body: bytes, header: Optional[str]) -> bool:
    """One signature header ("sha256=" + base64 HMAC-SHA256 of the raw body), in constant time on bytes."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    return same_secret(header.strip(), "sha256=" + _hmac_base64(secret, body))


def valid_signatures(client_secret: str, consumer_secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """X signs with the OAuth 2.0 client secret (…-Signature-OAuth2) and, for apps that still have one, the
    OAuth 1.0a consumer secret (the legacy header); either one checking out with a secret we hold is enough."""
    return (valid_signature(client_secret, body, headers.get(SIGNATURE_HEADER_OAUTH2))
            or valid_signature(consumer_secret, body, headers.get(SIGNATURE_HEADER)))


# --- what X delivers --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    """One delivery of a webhook body: its messages (with has_attachments), or why it is ignored."""
    event_uuid: Optional[str] = None
    messages: List[Tuple[InboundMessage, bool]] = field(default_factory=list)
    ignored: str = ""


_MEDIA_LINK = re.compile(r"\s*https://t\.co/\w+\s*$")


def _without_media_link(text: str, has_attachments: bool, media_url: Optional[str] = None) -> str:
    """X puts a t.co link to an attached photo at the end of the text: a photo alone is no question."""
    if not has_attachments:
        return text
    if media_url and text.rstrip().endswith(media_url):
        return text.rstrip()[: -len(media_url)].rstrip()
    return _MEDIA_LINK.sub("", text)


def _id(value: Any) -> str:
    """An id as X gives them (a string of digits, at times a number); anything else is no id."""
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""


def _legacy_event(event: Any, bot_user_id: str) -> Optional[Tuple[InboundMessage, bool]]:
    """A v1.1 `direct_message_events` item (the Account Activity API's, and XAA's wrapped dm.received)."""
    event = mapping(event)
    if event.get("type") != "message_create":
        return None
    create = mapping(event.get("message_create"))
    sender, event_id = _id(create.get("sender_id")), _id(event.get("id"))
    if not sender or not event_id or sender == bot_user_id:
        return None                        # our own messages come back as events too
    data = mapping(create.get("message_data"))
    attachment = mapping(data.get("attachment"))
    has_attachments = bool(attachment)
    media_url = mapping(attachment.get("media")).get("url")
    raw_text = data.get("text")
    text = _without_media_link(raw_text if isinstance(raw_text, str) else "", has_attachments,
                               media_url if isinstance(media_url, str) else None)
    payload = mapping(data.get("quick_reply_response")).get("metadata")
    payload = payload if isinstance(payload, str) and payload.startswith("/") else None
    return InboundMessage("twitter", sender, event_id, text=text, payload=payload), has_attachments


def _v2_event(event: Any, bot_user_id: str) -> Optional[Tuple[InboundMessage, bool]]:
    """A v2 DM event object: {id, event_type: MessageCreate, sender_id, dm_conversation_id, text, attachments}."""
    event = mapping(event)
    if event.get("event_type") != "MessageCreate":
        return None                        # ParticipantsJoin / ParticipantsLeave
    sender, event_id = _id(event.get("sender_id")), _id(event.get("id"))
    if not sender or not event_id or sender == bot_user_id:
        return None
    conversation = str(event.get("dm_conversation_id") or "")
    if conversation and "-" not in conversation:
        return None                        # a group conversation: the assistant answers one-to-one DMs only
    attachments = mapping(event.get("attachments"))
    has_attachments = bool(items(attachments.get("media_keys")) or items(attachments.get("card_ids")))
    raw_text = event.get("text")
    text = _without_media_link(raw_text if isinstance(raw_text, str) else "", has_attachments)
    return InboundMessage("twitter", sender, event_id, text=text), has_attachments


def _dm_payload(payload: Mapping[str, Any], bot_user_id: str) -> List[Tuple[InboundMessage, bool]]:
    """dm.received's payload, in either shape integrations report: the wrapped legacy list (as X's event-payload
    examples show it) or a v2 DM event (bare, or under "data", one or a list)."""
    if "direct_message_events" in payload:
        parsed = [_legacy_event(event, bot_user_id) for event in items(payload.get("direct_message_events"))]
    else:
        inner = payload.get("data", payload)
        events = inner if isinstance(inner, list) else [inner]
        parsed = [_v2_event(event, bot_user_id) for event in events]
    return [message for message in parsed if message is not None]


def deliveries(body: Mapping[str, Any], bot_user_id: str, legacy_accepted: bool) -> Iterator[Delivery]:
    """What one webhook body holds: XAA envelopes under "data" (one, or a list), or an Account Activity API body
    (read only while `legacy_accepted`)."""
    if "data" in body:
        envelopes = body["data"] if isinstance(body["data"], list) else [body["data"]]
        for envelope in map(mapping, envelopes):
            event_uuid = _id(envelope.get("event_uuid")) or None
            event_type = envelope.get("event_type")
            if event_type != SUBSCRIBED_EVENT:
                yield Delivery(event_uuid, ignored=f"event type {str(event_type)[:40]!r} is not subscribed")
                continue
            for_user = mapping(envelope.get("filter")).get("user_id")
            if for_user is not None and str(for_user) != bot_user_id:
                yield Delivery(event_uuid, ignored="filter is another user's")
                continue
            yield Delivery(event_uuid, _dm_payload(mapping(envelope.get("payload")), bot_user_id))
        return
    if "direct_message_events" in body or "for_user_id" in body:
        if not legacy_accepted:
            yield Delivery(ignored="Account Activity API body after TWITTER_AAA_UNTIL")
            return
        for_user = body.get("for_user_id")
        if for_user is not None and str(for_user) != bot_user_id:
            yield Delivery(ignored="for_user_id is another user's")
            return
        messages = [_legacy_event(event, bot_user_id) for event in items(body.get("direct_message_events"))]
        yield Delivery(messages=[message for message in messages if message is not None])
        return
    yield Delivery(ignored="no direct message in the body")


# --- what the bot sends -----------------------------------------------------------------------------------------

def render(reply: Reply, options_hint: str) -> List[str]:
    """The DM texts for one reply: the text (with the image's address), its buttons as a numbered list under
    `options_hint` at the end; split at X's 10,000 characters only if it must be."""
    text = reply.text
    if reply.image:
        text = f"{text}\n{reply.image}".strip()
    if reply.buttons:
        shown = tuple(Button(shorten(button.title, OPTION_TITLE_LIMIT), button.payload)
                      for button in reply.buttons[:OPTION_LIMIT])
        options = numbered_options(shown, options_hint)
        text = f"{text}\n\n{options}" if text.strip() else options
    return split_text(text, TEXT_LIMIT) or ["…"]


def classify_refusal(error: DeliveryError) -> DeliveryError:
    """What a refused send means. 403: the customer takes no DMs from us (closed DMs, blocked, no longer
    following) — drop this answer, once — unless X says it is about our app (scopes, enrolment), when the
    answer waits for the operator to fix it. 401 (after a refresh): our authorization is gone."""
    message = str(error)
    if error.status == 403:
        if any(problem in message.lower() for problem in APP_PROBLEMS):
            return DeliveryError(f"X refused the app (fix its access, then answers resume): {message}",
                                 retry_after=AUTH_RETRY_SECONDS, status=403)
        return DeliveryError(message, retryable=False, status=403, recipient_unreachable=True)
    if error.status == 401:
        return DeliveryError(f"X refused the bot account's authorization: run `python -m bot x authorize` "
                             f"({message})", retry_after=AUTH_RETRY_SECONDS, status=401)
    return error


class TwitterAdapter(ChannelAdapter):
    name = "twitter"
    numbered_options = True
    asks_feedback_by_message = True

    def __init__(self, deps: ChannelDeps):
        super().__init__(deps)
        self.auth = UserAuth(deps.settings, token_store(deps.settings, deps.store), deps.http, deps.db)

    def missing_settings(self) -> Dict[str, bool]:
        s = self.settings
        return {
            "TWITTER_BOT_USER_ID": not s.twitter_bot_user_id,
            "TWITTER_CLIENT_SECRET (or TWITTER_CONSUMER_SECRET)": not (s.twitter_client_secret
                                                                     or s.twitter_consumer_secret),
            "TWITTER_CLIENT_ID (or the four OAuth 1.0a TWITTER_* values)": not (s.twitter_client_id
                                                                               or oauth1_configured(s)),
        }

    def add_routes(self, app: web.Application) -> None:
        for path in ("/webhooks/x", "/webhooks/twitter"):
            app.router.add_get(path, self.crc)
            app.router.add_post(path, self.webhook)

    def _webhook_secret(self) -> str:
        s = self.settings
        return s.twitter_client_secret or s.twitter_consumer_secret

    async def crc(self, request: web.Request) -> web.Response:
        if not self.enabled:
            return self.not_configured()
        token = request.query.get("crc_token")
        if token is None or not valid_crc_token(token):
            logger.warning("twitter: CRC request with a missing or malformed crc_token refused")
            return web.json_response({"error": "crc_token missing or malformed"}, status=400)
        return web.json_response(crc_response(self._webhook_secret(), token))

    async def webhook(self, request: web.Request) -> web.Response:
        s = self.settings
        data = await self.signed_json(request, SIGNATURE_HEADER_OAUTH2, lambda body, headers: valid_signatures(
            s.twitter_client_secret, s.twitter_consumer_secret, body, headers))
        if isinstance(data, web.Response):
            return data
        store = self.store
        for delivery in deliveries(data, s.twitter_bot_user_id, legacy_accepted=now_utc() < s.twitter_aaa_until):
            if delivery.ignored:
                logger.info("twitter: delivery %s ignored: %s", delivery.event_uuid or "-", delivery.ignored)
                continue
            seen = delivery.event_uuid is not None and await self.db(store.delivery_seen, self.name,
                                                                     delivery.event_uuid)
            if seen:
                logger.info("twitter: delivery %s already handled; ignored", delivery.event_uuid)
                continue
            for message, has_attachments in delivery.messages:
                await self.receive(message, has_attachments=has_attachments)
            if delivery.event_uuid:
                await self.db(store.remember_delivery, self.name, delivery.event_uuid)
        return web.Response(status=200)

    async def already_delivered(self, sender_id: str, reply: Reply, since: datetime) -> Optional[bool]:
        """Whether the DM conversation with the customer (GET /2/dm_conversations/with/{id}/dm_events, in the
        bot account's user context) holds this reply's first message, sent by the bot account after `since`.
        None when X does not answer it."""
        language = await self.db(self.store.conversation_language, conversation_id(self.name, sender_id))
        first = render(reply, notice("numbered_options", language))[0]
        url = (self.settings.twitter_api_url + EVENTS_PATH.format(participant_id=quote(sender_id, safe=""))
               + "?" + urlencode({"dm_event.fields": "text,sender_id,created_at", "event_types": "MessageCreate",
                                  "max_results": str(RECENT_EVENTS)}))
        try:
            headers = await self.auth.headers("GET", url)
            async with self.http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as response:
                if response.status != 200:
                    logger.info("twitter: DM events with %s: HTTP %s", sender_id, response.status)
                    return None
                data = await response.json(content_type=None)
        except (XAuthError, aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            logger.info("twitter: DM events with %s: %s", sender_id, type(error).__name__)
            return None
        try:
            return any(event.get("text") == first and event.get("sender_id") != sender_id
                       and created_at(event.get("created_at", "")) >= since - PLATFORM_CLOCK_SKEW
                       for event in data.get("data") or [])
        except (AttributeError, TypeError, ValueError):
            return None

    async def deliver(self, sender_id: str, reply: Reply, record: RecordDelivery) -> None:
        language = await self.db(self.store.conversation_language,
                                         conversation_id(self.name, sender_id))
        url = self.settings.twitter_api_url + SEND_PATH.format(participant_id=quote(sender_id, safe=""))
        for text in render(reply, notice("numbered_options", language)):
            await self._send(url, {"text": text})

    async def _send(self, url: str, body: Dict[str, Any]) -> Dict[str, Any]:
        auth = self.auth
        for attempt in range(2):
            used: Dict[str, str] = {}

            async def headers(used: Dict[str, str] = used) -> Dict[str, str]:
                used.clear()
                used.update(await auth.headers("POST", url))
                return dict(used)

            try:
                return await post_with_retry(self.http, url, json=body, headers_for=headers)
            except XAuthError as problem:
                raise DeliveryError(str(problem), retry_after=AUTH_RETRY_SECONDS) from None
            except DeliveryError as error:
                if error.status == 401 and attempt == 0 and await auth.refused(used):
                    logger.info("twitter: X refused the access token; refreshing it and sending again")
                    continue
                raise classify_refusal(error) from None
        raise AssertionError("unreachable")
