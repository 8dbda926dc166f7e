"""Rasa as the gateway uses it: our private gateway channel (bot/rasa_runtime/channel.py) for the customers' messages,
and the HTTP API (both behind RASA_API_TOKEN) for the one question a retry needs answered: did an earlier attempt
reach Rasa after all (the connection broke after sending)? Then the replies are read back from the
conversation's tracker instead of sending the message a second time. Either way the answer comes with what the
message was taken for (bot/nlu/understanding.py), for the agents' review queue.

Several Rasa servers (RASA_URLS, sharing one tracker store and lock store) are used round-robin. A server that
refuses connections is left out for a few seconds and the message goes to the next one at once (it certainly
never arrived); `watch()` checks the ones left out and takes them back when their /status answers."""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence
from urllib.parse import quote

import aiohttp

from bot.nlu.understanding import HEADER as UNDERSTANDING_HEADER
from bot.nlu.understanding import Understanding, understanding_from_parse
from bot.rasa_runtime.api import CHANNEL_PATH, channel_headers
from bot.vocabulary import response_source

GATEWAY_MESSAGE_KEY = "gateway_message_id"
LEFT_OUT_SECONDS = 5.0          # a server that refused a connection is not asked for this long (unless all are down)
WATCH_SECONDS = 2.0

logger = logging.getLogger(__name__)


class RasaUnavailable(Exception):
    """Rasa could not be asked. `reached` is False when the request certainly never arrived (connection
    refused), True when it may have been processed (timeout, broken connection, server error)."""

    def __init__(self, message: str, reached: bool):
        super().__init__(message)
        self.reached = reached


@dataclass(frozen=True)
class RasaAnswer:
    """Rasa's messages for one customer message (REST-shaped), and what it took the message for (None when it
    did not say: an older Rasa, a message it never parsed)."""
    replies: List[Dict[str, Any]]
    understanding: Optional[Understanding] = None


@dataclass
class RasaServer:
    url: str
    down_until: float = 0.0            # time.monotonic() until which it is left out (0: in use)

    @property
    def up(self) -> bool:
        return self.down_until <= time.monotonic()


class RasaClient:
    def __init__(self, base_urls: Sequence[str], token: str, session: aiohttp.ClientSession,
                 timeout_seconds: float = 60.0):
        self.servers = [RasaServer(url.rstrip("/")) for url in base_urls]
        self._turn = itertools.cycle(range(len(self.servers)))
        self.token = token
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=5)

    @property
    def base_url(self) -> str:
        """The next server's address (round-robin over those in use)."""
        return self._next().url

    def _next(self, exclude: Sequence[RasaServer] = ()) -> RasaServer:
        candidates = [server for server in self.servers if server not in exclude] or self.servers
        for _ in range(len(self.servers)):
            server = self.servers[next(self._turn)]
            if server in candidates and server.up:
                return server
        return min(candidates, key=lambda server: server.down_until)      # all left out: the soonest back

    def _left_out(self, server: RasaServer, why: str) -> None:
        if len(self.servers) > 1 and server.up:
            logger.warning("Rasa %s left out for %g s: %s", server.url, LEFT_OUT_SECONDS, why)
        server.down_until = time.monotonic() + LEFT_OUT_SECONDS

    def _back(self, server: RasaServer) -> None:
        if not server.up and len(self.servers) > 1:
            logger.info("Rasa %s is back", server.url)
        server.down_until = 0.0

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

    async def _status_of(self, server: RasaServer, timeout: aiohttp.ClientTimeout) -> int:
        async with self.session.get(f"{server.url}/status", params=self.api_params, timeout=timeout) as response:
            return response.status

    async def status(self, timeout: aiohttp.ClientTimeout) -> int:
        """The HTTP status of a Rasa server's /status (200: up, with a model): the first that answers 200."""
        found: Optional[int] = None
        for server in sorted(self.servers, key=lambda s: not s.up):
            try:
                found = await self._status_of(server, timeout)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                continue
            if found == 200:
                return 200
        if found is None:
            raise aiohttp.ClientConnectionError("no Rasa server answers")
        return found

    def servers_state(self) -> Dict[str, str]:
        return {server.url: "in use" if server.up else "left out" for server in self.servers}

    async def watch(self) -> None:
        """For as long as the gateway runs: check the servers left out, and take back each that answers."""
        timeout = aiohttp.ClientTimeout(total=2)
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            for server in self.servers:
                if server.up:
                    continue
                try:
                    if await self._status_of(server, timeout) == 200:
                        self._back(server)
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass

    async def send(self, conversation_id: str, text: str, channel: str,
                   metadata: Mapping[str, Any]) -> RasaAnswer:
        """One turn. A server that refuses the connection is left out and the next one asked at once; once the
        request may have arrived, only the worker's retry (which reads the tracker first) tries again."""
        body = {"sender": conversation_id, "message": text, "input_channel": channel, "metadata": dict(metadata)}
        tried: List[RasaServer] = []
        while True:
            server = self._next(exclude=tried)
            tried.append(server)
            try:
                return await self._send_to(server, body)
            except RasaUnavailable as error:
                if error.reached or len(tried) >= len(self.servers):
                    raise

    async def _send_to(self, server: RasaServer, body: Dict[str, Any]) -> RasaAnswer:
        try:
            async with self.session.post(f"{server.url}{CHANNEL_PATH}", json=body,
                                         headers=channel_headers(self.token), timeout=self.timeout) as response:
                if response.status >= 500:
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}", reached=True)
                if response.status != 200:
                    # 4xx: Rasa refused the request itself (never processed); retrying will not help much but
                    # the message must not be lost, so it is retried like an outage.
                    raise RasaUnavailable(f"Rasa answered HTTP {response.status}", reached=False)
                replies = await response.json(content_type=None)
                understanding = Understanding.from_header(response.headers.get(UNDERSTANDING_HEADER))
        except aiohttp.ClientConnectorError as error:
            self._left_out(server, "cannot connect")
            raise RasaUnavailable(f"cannot connect to Rasa: {error.os_error or error}", reached=False) from error
        except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError, ValueError) as error:
            raise RasaUnavailable(f"Rasa request failed: {type(error).__name__}", reached=True) from error
        self._back(server)
        return RasaAnswer([r for r in replies if isinstance(r, dict)] if isinstance(replies, list) else [],
                          understanding)

    async def replies_already_given(self, conversation_id: str, gateway_message_id: str) -> Optional[RasaAnswer]:
        """If the tracker holds the user message tagged `gateway_message_id`, the bot messages that followed it
        (REST-shaped) and the message's parse; None if Rasa never got it. Raises RasaUnavailable when the tracker
        can't be read."""
        url = f"{self.base_url}/conversations/{quote(conversation_id, safe='')}/tracker"
        try:
            async with self.session.get(url, params={"include_events": "ALL", **self.api_params},
                                        timeout=self.timeout) as response:
                if response.status != 200:
                    raise RasaUnavailable(f"tracker: HTTP {response.status}", reached=True)
                tracker = await response.json(content_type=None)
        except aiohttp.ClientConnectorError as error:
            raise RasaUnavailable(f"cannot connect to Rasa: {error}", reached=True) from error
        except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError, ValueError) as error:
            raise RasaUnavailable(f"tracker request failed: {type(error).__name__}", reached=True) from error
        return replies_after_message(tracker.get("events") or [], gateway_message_id)


def replies_after_message(events: List[Dict[str, Any]], gateway_message_id: str) -> Optional[RasaAnswer]:
    found, replies = False, []
    understanding: Optional[Understanding] = None
    for event in events:
        kind = event.get("event")
        if not found:
            if kind == "user" and (event.get("metadata") or {}).get(GATEWAY_MESSAGE_KEY) == gateway_message_id:
                found = True
                parse_data = event.get("parse_data")
                understanding = understanding_from_parse(parse_data) if isinstance(parse_data, dict) else None
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
            source = response_source(event.get("metadata") or {})
            if source:
                reply["source"] = source
            replies.append(reply)
    return RasaAnswer(replies, understanding) if found else None
