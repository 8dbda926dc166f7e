"""Rasa as the gateway uses it: our private gateway channel (bot/rasa_runtime/channel.py) for the customers' messages,
and the HTTP API (both behind RASA_API_TOKEN) for the one question a retry needs answered: did an earlier attempt
reach Rasa after all (the connection broke after sending)? Then the replies are read back from the
conversation's tracker instead of sending the message a second time."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import quote

import aiohttp

from bot.rasa_runtime.api import CHANNEL_PATH, channel_headers

GATEWAY_MESSAGE_KEY = "gateway_message_id"


class RasaUnavailable(Exception):
    """Rasa could not be asked. `reached` is False when the request certainly never arrived (connection
    refused), True when it may have been processed (timeout, broken connection, server error)."""

    def __init__(self, message: str, reached: bool):
        super().__init__(message)
        self.reached = reached


class RasaClient:
    def __init__(self, base_url: str, token: str, session: aiohttp.ClientSession, timeout_seconds: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=5)

    @property
    def api_params(self) -> Dict[str, str]:
        """The query parameter Rasa's --auth-token checks on its HTTP API."""
        return {"token": self.token}

    async def parse(self, text: str, timeout: aiohttp.ClientTimeout) -> Optional[Dict[str, Any]]:
        """/model/parse of `text` (agent assist); None if Rasa answered with an error."""
        async with self.session.post(f"{self.base_url}/model/parse", json={"text": text}, params=self.api_params,
                                     timeout=timeout) as response:
            if response.status != 200:
                return None
            data = await response.json(content_type=None)
            return data if isinstance(data, dict) else None

    async def status(self, timeout: aiohttp.ClientTimeout) -> int:
        """The HTTP status of Rasa's /status (200: up, with a model)."""
        async with self.session.get(f"{self.base_url}/status", params=self.api_params, timeout=timeout) as response:
            return response.status

    async def send(self, conversation_id: str, text: str, channel: str,
                   metadata: Mapping[str, Any]) -> List[Dict[str, Any]]:
        body = {"sender": conversation_id, "message": text, "input_channel": channel, "metadata": dict(metadata)}
        try:
            async with self.session.post(f"{self.base_url}{CHANNEL_PATH}", json=body,
                                         headers=channel_headers(self.token), timeout=self.timeout) as response:
                if response.status >= 500:
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}", reached=True)
                if response.status != 200:
                    # 4xx: Rasa refused the request itself (never processed); retrying will not help much but
                    # the message must not be lost, so it is retried like an outage.
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}", reached=False)
                replies = await response.json(content_type=None)
        except aiohttp.ClientConnectorError as error:
            raise RasaUnavailable(f"cannot connect to Rasa: {error.os_error or error}", reached=False) from error
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise RasaUnavailable(f"Rasa request failed: {type(error).__name__}", reached=True) from error
        return [r for r in replies if isinstance(r, dict)] if isinstance(replies, list) else []

    async def replies_already_given(self, conversation_id: str, gateway_message_id: str
                                    ) -> Optional[List[Dict[str, Any]]]:
        """If the tracker holds the user message tagged `gateway_message_id`, the bot messages that followed it
        (REST-shaped); None if Rasa never got it. Raises RasaUnavailable when the tracker can't be read."""
        url = f"{self.base_url}/conversations/{quote(conversation_id, safe='')}/tracker"
        try:
            async with self.session.get(url, params={"include_events": "ALL", **self.api_params},
                                        timeout=self.timeout) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"tracker: HTTP {response.status}", reached=True)
                tracker = await response.json(content_type=None)
        except aiohttp.ClientConnectorError as error:
            raise RasaUnavailable(f"cannot connect to Rasa: {error}", reached=True) from error
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise RasaUnavailable(f"tracker request failed: {type(error).__name__}", reached=True) from error
        return replies_after_message(tracker.get("events") or [], gateway_message_id)


def replies_after_message(events: List[Dict[str, Any]], gateway_message_id: str) -> Optional[List[Dict[str, Any]]]:
    found, replies = False, []
    for event in events:
        kind = event.get("event")
        if not found:
            if kind == "user" and (event.get("metadata") or {}).get(GATEWAY_MESSAGE_KEY) == gateway_message_id:
                found = True
            continue
        if kind == "user":
            break
        if kind == "bot":
            data = event.get("data") or {}
            reply = {"text": event.get("text") or ""}
            if data.get("buttons"):
                reply["buttons"] = data["buttons"]
            if data.get("image"):
                reply["image"] = data["image"]
            if data.get("custom"):
                reply["custom"] = data["custom"]
            replies.append(reply)
    return replies if found else None
