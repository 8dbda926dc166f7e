"""Rasa's input channel for the gateway (and the other trusted clients: `make shell`, the bench, the tests).

It replaces Rasa's open `rest` channel, through which anyone reaching Rasa could talk as any customer:
POST /webhooks/gateway/webhook needs `Authorization: Bearer <RASA_API_TOKEN>` (constant-time check; 401
otherwise) and a JSON object {"sender", "message", "input_channel"?, "metadata"?} (400 otherwise). It answers
with a JSON list of the assistant's messages, each response whole — text, buttons, image and custom JSON of one
response in one message, with the documents it comes from (its metadata's `source`, for the agents) — where
Rasa's own collector splits a text at every blank line into separate bubbles. The header X-Understanding says
what the message was taken for and how surely (bot/nlu/understanding.py), for the agents' review queue.
Registered in credentials.yml.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.nlu.understanding import HEADER as UNDERSTANDING_HEADER
from bot.nlu.understanding import RECENT as RECENT_UNDERSTANDINGS
from bot.secret_compare import bearer, same_secret
from bot.vocabulary import response_source

logger = logging.getLogger(__name__)

CHANNEL_NAME = "gateway"
# The customer channels the gateway speaks for; other clients are recorded as CHANNEL_NAME (no agents there).
CUSTOMER_CHANNELS = ("widget", "facebook", "twitter")
MAX_SENDER_CHARS = 200
MAX_MESSAGE_CHARS = 10_000
RESPONSE_PARTS = ("text", "buttons", "quick_replies", "image", "custom", "attachment", "elements")


class WholeMessageCollector(CollectingOutputChannel):
    """Collects each response as one message (Rasa's CollectingOutputChannel sends a text's paragraphs, then
    its buttons, image and custom JSON, as separate messages)."""

    @classmethod
    def name(cls) -> Text:
        return "whole_message_collector"

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        whole = {"recipient_id": recipient_id}
        for part in RESPONSE_PARTS:
            if message.get(part):
                whole["buttons" if part == "quick_replies" else part] = message[part]
        if len(whole) > 1:
            source = response_source(message)
            if source:
                whole["source"] = source
            await self._persist_message(whole)


def bad_request(reason: str) -> HTTPResponse:
    return response.json({"error": reason}, status=400)


class GatewayInput(InputChannel):
    def __init__(self, token: Optional[str]):
        if not token:
            raise ValueError("the gateway channel needs a token (RASA_API_TOKEN)")
        self.token = token

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "GatewayInput":
        token = (credentials or {}).get("token")
        if not token:
            cls.raise_missing_credentials_exception()
        return cls(str(token))

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("ksos_gateway_webhook", __name__)

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not same_secret(bearer(request.headers.get("Authorization")), self.token):
                logger.warning("gateway channel: request without a valid token refused")
                return response.json({"error": "unauthorized"}, status=401)
            try:
                body = request.json
            except Exception:  # noqa: BLE001 - Sanic raises its own InvalidUsage for malformed JSON
                body = None
            if not isinstance(body, dict):
                return bad_request("a JSON object is required")
            sender, text = body.get("sender"), body.get("message")
            metadata = {} if body.get("metadata") is None else body["metadata"]
            channel = body.get("input_channel") or CHANNEL_NAME
            if not isinstance(sender, str) or not 0 < len(sender) <= MAX_SENDER_CHARS:
                return bad_request("sender: a string of 1-200 characters")
            if not isinstance(text, str) or len(text) > MAX_MESSAGE_CHARS:
                return bad_request("message: a string of at most 10,000 characters")
            if not isinstance(metadata, dict):
                return bad_request("metadata: an object")
            if channel not in CUSTOMER_CHANNELS + (CHANNEL_NAME,):
                return bad_request("input_channel: widget, facebook, twitter or gateway")
            collector = WholeMessageCollector()
            message = UserMessage(text, collector, sender, input_channel=channel, metadata=metadata)
            try:
                await on_new_message(message)
            finally:
                understanding = RECENT_UNDERSTANDINGS.take(message.message_id)
            headers = {UNDERSTANDING_HEADER: understanding.header_value()} if understanding else None
            return response.json(collector.messages, headers=headers)

        return webhook
