"""X (Twitter) direct messages to @helpmeunifi through the Account Activity webhook.

Inbound: GET /webhooks/twitter?crc_token=... answers the challenge-response check with
{"response_token": "sha256=" + base64 HMAC-SHA256(consumer secret, crc_token)}; POST bodies must carry
x-twitter-webhooks-signature = "sha256=" + base64 HMAC-SHA256(consumer secret, raw body). Each
direct_message_events item of type message_create is a message; the bot's own (sender = TWITTER_BOT_USER_ID)
are ignored; a quick-reply response's metadata is preferred over the text. Outbound: POST
/1.1/direct_messages/events/new.json (OAuth 1.0a user context) with up to 20 quick-reply options (labels ≤ 36).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import re
import secrets
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional
from urllib.parse import quote

from aiohttp import web

from bot.gateway.adapter import ChannelAdapter, DeliveryError, RecordDelivery, post_with_retry
from bot.gateway.json_input import items, mapping
from bot.gateway.messages import InboundMessage, Reply, shorten, split_text
from bot.secret_compare import same_secret

logger = logging.getLogger(__name__)

TEXT_LIMIT = 10000
OPTION_LIMIT = 20
LABEL_LIMIT = 36
METADATA_LIMIT = 1000
SEND_PATH = "/1.1/direct_messages/events/new.json"
TYPING_PATH = "/1.1/direct_messages/indicate_typing.json"


def _hmac_base64(secret: str, data: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


# X's crc_tokens are short base64 / base64url strings. The CRC answer is the same HMAC as a webhook signature, so
# signing anything else would let a caller have the gateway sign a forged JSON body: a token in this alphabet can
# never be a JSON object (which starts with "{").
CRC_TOKEN = re.compile(r"^[A-Za-z0-9_\-+/=]{1,128}$")


def valid_crc_token(token: Optional[str]) -> bool:
    return bool(token) and CRC_TOKEN.fullmatch(token) is not None


def crc_response(consumer_secret: str, crc_token: str) -> Dict[str, str]:
    if not valid_crc_token(crc_token):
        raise ValueError("not a CRC token")
    return {"response_token": "sha256=" + _hmac_base64(consumer_secret, crc_token.encode())}


def valid_signature(consumer_secret: str, body: bytes, header: Optional[str]) -> bool:
    """x-twitter-webhooks-signature check, in constant time on bytes."""
    if not consumer_secret or not header or not header.startswith("sha256="):
        return False
    return same_secret(header.strip(), "sha256=" + _hmac_base64(consumer_secret, body))


def inbound_messages(body: Mapping[str, Any], bot_user_id: str) -> Iterator[InboundMessage]:
    for event in map(mapping, items(body.get("direct_message_events"))):
        if event.get("type") != "message_create":
            continue
        create = mapping(event.get("message_create"))
        sender = str(create.get("sender_id") or "")
        event_id = str(event.get("id") or "")
        if not sender or not event_id or sender == bot_user_id:
            continue                       # our own messages come back as events too
        data = mapping(create.get("message_data"))
        payload = mapping(data.get("quick_reply_response")).get("metadata")
        payload = payload if isinstance(payload, str) and payload.startswith("/") else None
        yield InboundMessage("twitter", sender, event_id, text=str(data.get("text") or ""), payload=payload)


def render(recipient: str, reply: Reply) -> List[Dict[str, Any]]:
    """DM events for one reply; quick-reply options ride on the last chunk."""
    text = reply.text
    if reply.image:
        text = f"{text}\n{reply.image}".strip()
    chunks = split_text(text, TEXT_LIMIT) or ["…"]
    events = []
    for index, chunk in enumerate(chunks):
        message_data: Dict[str, Any] = {"text": chunk}
        if index == len(chunks) - 1 and reply.buttons:
            message_data["quick_reply"] = {"type": "options", "options": [
                {"label": shorten(button.title, LABEL_LIMIT), "metadata": button.payload[:METADATA_LIMIT]}
                for button in reply.buttons[:OPTION_LIMIT]
            ]}
        events.append({"event": {"type": "message_create", "message_create": {
            "target": {"recipient_id": recipient}, "message_data": message_data}}})
    return events


def _encode(value: str) -> str:
    return quote(str(value), safe="~-._")


def oauth1_header(method: str, url: str, params: Mapping[str, str], consumer_key: str, consumer_secret: str,
                  token: str, token_secret: str, nonce: Optional[str] = None,
                  timestamp: Optional[int] = None) -> str:
    """OAuth 1.0a HMAC-SHA1 Authorization header (RFC 5849). `params`: query/form parameters (a JSON body is
    not signed)."""
    oauth = {
        "oauth_consumer_key": consumer_key,
        "oauth_nonce": nonce or secrets.token_hex(16),
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "oauth_token": token,
        "oauth_version": "1.0",
    }
    pairs = sorted((_encode(k), _encode(v)) for k, v in {**params, **oauth}.items())
    parameter_string = "&".join(f"{k}={v}" for k, v in pairs)
    base = "&".join([method.upper(), _encode(url), _encode(parameter_string)])
    key = f"{_encode(consumer_secret)}&{_encode(token_secret)}"
    signature = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode()
    oauth["oauth_signature"] = signature
    return "OAuth " + ", ".join(f'{_encode(k)}="{_encode(v)}"' for k, v in sorted(oauth.items()))


class TwitterAdapter(ChannelAdapter):
    name = "twitter"

    def missing_settings(self) -> Dict[str, bool]:
        s = self.gateway.settings
        return {
            "TWITTER_CONSUMER_KEY": not s.twitter_consumer_key,
            "TWITTER_CONSUMER_SECRET": not s.twitter_consumer_secret,
            "TWITTER_ACCESS_TOKEN": not s.twitter_access_token,
            "TWITTER_ACCESS_TOKEN_SECRET": not s.twitter_access_token_secret,
            "TWITTER_BOT_USER_ID": not s.twitter_bot_user_id,
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/webhooks/twitter", self.crc)
        app.router.add_post("/webhooks/twitter", self.webhook)

    async def crc(self, request: web.Request) -> web.Response:
        if not self.enabled:
            return self.not_configured()
        token = request.query.get("crc_token")
        if not valid_crc_token(token):
            logger.warning("twitter: CRC request with a missing or malformed crc_token refused")
            return web.json_response({"error": "crc_token missing or malformed"}, status=400)
        return web.json_response(crc_response(self.gateway.settings.twitter_consumer_secret, token))

    async def webhook(self, request: web.Request) -> web.Response:
        data = await self.signed_json(request, "x-twitter-webhooks-signature", functools.partial(
            valid_signature, self.gateway.settings.twitter_consumer_secret))
        if isinstance(data, web.Response):
            return data
        for message in inbound_messages(data, self.gateway.settings.twitter_bot_user_id):
            await self.gateway.receive(message)
        return web.Response(status=200)

    def _auth(self, method: str, url: str, params: Mapping[str, str]) -> Dict[str, str]:
        s = self.gateway.settings
        return {"Authorization": oauth1_header(method, url, params, s.twitter_consumer_key, s.twitter_consumer_secret,
                                               s.twitter_access_token, s.twitter_access_token_secret)}

    async def show_typing(self, sender_id: str) -> None:
        url = self.gateway.settings.twitter_api_url + TYPING_PATH
        params = {"recipient_id": sender_id}
        try:
            await post_with_retry(self.gateway.http, url, attempts=1, params=params,
                                  headers_for=lambda: self._auth("POST", url, params))
        except DeliveryError as error:
            logger.info("twitter: typing indicator for %s not sent: %s", sender_id, error)

    async def deliver(self, sender_id: str, reply: Reply, record: RecordDelivery) -> None:
        url = self.gateway.settings.twitter_api_url + SEND_PATH
        for event in render(sender_id, reply):
            await post_with_retry(self.gateway.http, url, json=event, headers_for=lambda: self._auth("POST", url, {}))
