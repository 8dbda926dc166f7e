"""The website live-chat widget: /widget.js, a demo page at /, and a WebSocket at /widget/ws.

Protocol (JSON frames) — client: {"type": "hello", "session", "after"}, {"type": "message", "id", "text",
"payload"?, "metadata"?: {"language", "identity_token"}}; server: session, history, message, ack, typing, error.
The session id is issued by the gateway; conversation id = "widget:<session>". Messages and replies live in the
transcript table, so history survives page reloads and replies sent while the socket was down are shown on
reconnect.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any, Dict, Mapping, Optional, Set
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from bot.gateway.adapter import ChannelAdapter, RecordDelivery
from bot.gateway.messages import MAX_PAYLOAD_CHARS, MAX_TEXT_CHARS, InboundMessage, Reply, conversation_id
from bot.gateway.notices import notice
from bot.language import SUPPORTED_LANGUAGES
from bot.paths import REPO_ROOT

logger = logging.getLogger(__name__)

STATIC_DIR = REPO_ROOT / "bot" / "gateway" / "static"
MAX_FRAME_BYTES = 64 * 1024
MAX_ID_CHARS = 100
MAX_TOKEN_CHARS = 1000


def as_sent(entry: Dict[str, Any], text: str) -> Dict[str, Any]:
    """A transcript entry as the open widgets get it live: with the words as written. The transcript keeps them
    with personal data redacted (bot/privacy.py), which is what a reload's history shows."""
    return {**entry, "text": text}


class WidgetAdapter(ChannelAdapter):
    name = "widget"

    def __init__(self, gateway):
        super().__init__(gateway)
        self.sockets: Dict[str, Set[web.WebSocketResponse]] = defaultdict(set)   # sender (session) -> sockets

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.demo_page)
        app.router.add_get("/widget.js", self.script)
        app.router.add_get("/widget/ws", self.websocket)

    # --- static -----------------------------------------------------------------------------------------------

    async def demo_page(self, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(STATIC_DIR / "index.html")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'")
        return response

    async def script(self, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(STATIC_DIR / "widget.js")
        response.content_type = "application/javascript"
        response.charset = "utf-8"
        response.headers["Cache-Control"] = "public, max-age=300"
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    # --- WebSocket --------------------------------------------------------------------------------------------

    def origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if not origin:
            return True          # not a browser (curl, server-side clients): nothing cross-site to protect
        allowed = self.gateway.settings.widget_allowed_origins
        if "*" in allowed or origin.rstrip("/") in allowed:
            return True
        return urlsplit(origin).netloc == request.host      # the gateway's own pages (the demo page)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.origin_allowed(request):
            logger.warning("widget: WebSocket from origin %s refused (WIDGET_ALLOWED_ORIGINS)",
                           request.headers.get("Origin"))
            return web.json_response({"error": "origin not allowed"}, status=403)
        socket = web.WebSocketResponse(heartbeat=25, max_msg_size=MAX_FRAME_BYTES)
        await socket.prepare(request)
        session: Optional[str] = None
        try:
            async for frame in socket:
                if frame.type != WSMsgType.TEXT:
                    if frame.type == WSMsgType.ERROR:
                        break
                    continue
                try:
                    data = json.loads(frame.data)
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    await self._error(socket, None, "bad_request", session)
                    continue
                if data.get("type") == "hello":
                    session = await self._hello(socket, data, session)
                elif data.get("type") == "message":
                    if session is None:
                        await self._error(socket, data.get("id"), "bad_request", session)
                    else:
                        await self._message(socket, session, data)
                else:
                    await self._error(socket, data.get("id"), "bad_request", session)
        finally:
            if session is not None:
                self.sockets[session].discard(socket)
                if not self.sockets[session]:
                    self.sockets.pop(session, None)
        return socket

    async def _hello(self, socket: web.WebSocketResponse, data: Mapping[str, Any], previous: Optional[str]) -> str:
        asked = data.get("session")
        asked = asked if isinstance(asked, str) and 0 < len(asked) <= 64 else None
        session = await self.gateway.db(self.gateway.store.widget_session, asked)
        if previous and previous != session:
            self.sockets[previous].discard(socket)
        self.sockets[session].add(socket)
        after = data.get("after") if isinstance(data.get("after"), int) and session == asked else 0
        history = await self.gateway.db(self.gateway.store.history, conversation_id(self.name, session), after)
        await socket.send_json({"type": "session", "session": session})
        await socket.send_json({"type": "history", "messages": history})
        return session

    async def _message(self, socket: web.WebSocketResponse, session: str, data: Mapping[str, Any]) -> None:
        client_id, text, payload = data.get("id"), data.get("text", ""), data.get("payload")
        if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_ID_CHARS or not isinstance(text, str):
            await self._error(socket, client_id if isinstance(client_id, str) else None, "bad_request", session)
            return
        if payload is not None and (not isinstance(payload, str) or not payload.startswith("/")
                                    or len(payload) > MAX_PAYLOAD_CHARS):
            await self._error(socket, client_id, "bad_request", session)
            return
        if not payload and not text.strip():
            await self._error(socket, client_id, "empty", session)
            return
        if len(text) > MAX_TEXT_CHARS and not payload:
            await self._error(socket, client_id, "too_long", session)
            return
        metadata = self._metadata(data.get("metadata"))
        message = InboundMessage(self.name, session, client_id, text=text[:MAX_TEXT_CHARS], payload=payload,
                                 metadata=metadata)
        recorded = await self.gateway.receive(message)
        await socket.send_json({"type": "ack", "id": client_id})
        if recorded.entry is not None:
            await self.push(session, {"type": "message", "message": as_sent(recorded.entry, message.text)})

    @staticmethod
    def _metadata(raw: Any) -> Dict[str, str]:
        """Only what the widget may pass on: a language hint and the host page's identity token."""
        if not isinstance(raw, Mapping):
            return {}
        metadata: Dict[str, str] = {}
        if raw.get("language") in SUPPORTED_LANGUAGES:
            metadata["language"] = raw["language"]
        token = raw.get("identity_token")
        if isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_CHARS:
            metadata["identity_token"] = token
        return metadata

    async def _error(self, socket: web.WebSocketResponse, client_id: Optional[str], code: str,
                     session: Optional[str]) -> None:
        language = None
        if session:
            language = await self.gateway.db(self.gateway.store.conversation_language,
                                             conversation_id(self.name, session))
        await socket.send_json({"type": "error", "id": client_id, "code": code, "text": notice(code, language)})

    async def push(self, session: str, frame: Dict[str, Any]) -> None:
        for socket in list(self.sockets.get(session, ())):
            if socket.closed:
                continue
            try:
                await socket.send_json(frame)
            except (ConnectionError, RuntimeError):
                pass        # the socket is going away; the client catches up from history on reconnect

    # --- adapter ------------------------------------------------------------------------------------------------

    async def show_typing(self, sender_id: str) -> None:
        await self.push(sender_id, {"type": "typing", "on": True})

    async def hide_typing(self, sender_id: str) -> None:
        await self.push(sender_id, {"type": "typing", "on": False})

    async def deliver(self, sender_id: str, reply: Reply, record: RecordDelivery) -> None:
        entry = await record()            # the transcript is the widget's mailbox
        await self.push(sender_id, {"type": "message", "message": as_sent(entry, reply.text)})

    async def close(self) -> None:
        for sockets in list(self.sockets.values()):
            for socket in list(sockets):
                await socket.close()
