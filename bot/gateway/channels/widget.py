"""The website live-chat widget: /widget.js, a demo page at /, and a WebSocket at /widget/ws.

Protocol (JSON frames) — client: {"type": "hello", "session", "after", "language"?}, {"type": "identity",
"token"}, {"type": "message", "id": <UUID>, "text", "payload"?, "metadata"?: {"language"}}; server: session,
history (with the conversation's "language"), greeting (a first open, in the page's language), identity, message
(an answer's entries carry the conversation's "language", which the widget's own texts follow), ack, typing,
error. The session secret is issued by the gateway and kept by the browser; the
conversation is "widget:<key>", the key a one-way hash of the secret (bot/gateway/store.py), so its id, as agents
and logs see it, does not open the session. Messages and replies live in the transcript table, so history survives
page reloads and replies sent while the socket was down are shown on reconnect.

The host page's identity token (KSOSWidget.setIdentityToken) arrives in an identity frame, is checked here
(bot/accounts/verification.py) and goes no further: not to Rasa, the inbox or a log. A token of null, or one that
does not check out, logs the conversation out.
"""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from datetime import datetime
from typing import Any, Dict, Mapping, Optional, Set
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from bot.accounts.service import AccountService
from bot.gateway.adapter import ChannelAdapter, ChannelDeps, RecordDelivery
from bot.gateway.clients import client_address, masked_address
from bot.gateway.fanout import Fanout
from bot.gateway.feedback import RATINGS, FeedbackStore, feedback_reply
from bot.gateway.json_input import BadJson, parse_json
from bot.gateway.messages import MAX_PAYLOAD_CHARS, MAX_TEXT_CHARS, InboundMessage, Reply, conversation_id
from bot.gateway.notices import notice
from bot.gateway.ratelimit import counted
from bot.gateway.shared_windows import shared_rate_limiter
from bot.gateway.sources import for_customer
from bot.gateway.store import Recorded
from bot.nlu.language import SUPPORTED_LANGUAGES
from bot.paths import REPO_ROOT

logger = logging.getLogger(__name__)

STATIC_DIR = REPO_ROOT / "bot" / "gateway" / "static"
MAX_FRAME_BYTES = 64 * 1024
MAX_TOKEN_CHARS = 1000
MAX_SEQ = 2 ** 53                 # transcript sequence numbers a client may name (JavaScript's safe integers)
NEW_SESSIONS_PER_ADDRESS = 20     # in 10 minutes
# The widget's message ids are UUIDs (crypto.randomUUID); nothing else may claim an inbox key.
MESSAGE_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Payloads of the widget's own controls (the EN/BM switch), accepted though the assistant never offered them.
UI_PAYLOADS = frozenset(f'/switch_language{{"language":"{language}"}}' for language in SUPPORTED_LANGUAGES)


def as_sent(entry: Dict[str, Any], text: str) -> Dict[str, Any]:
    """A transcript entry as the open widgets get it live: with the words as written. The transcript keeps them
    with personal data redacted (bot/privacy/redaction.py), which is what a reload's history shows."""
    return {**entry, "text": text}


class WidgetAdapter(ChannelAdapter):
    name = "widget"
    ui_payloads = UI_PAYLOADS
    transcript_delivers = True

    def __init__(self, deps: ChannelDeps, accounts: AccountService, feedback: FeedbackStore):
        super().__init__(deps)
        self.accounts, self.feedback = accounts, feedback
        self.sockets: Dict[str, Set[web.WebSocketResponse]] = defaultdict(set)   # sender (session) -> sockets
        self.shown: Dict[web.WebSocketResponse, int] = {}     # socket -> the highest transcript seq it was sent
        self.languages: Dict[web.WebSocketResponse, str] = {}  # socket -> the language it was last shown
        # Replies worked out by another replica reach this one's sockets through Redis (REDIS_URL).
        self.fanout = Fanout(deps.settings.shared.redis_url, deps.settings.replica_id, self.push_local,
                             self.catch_up)
        # Per client address: new sessions (each would start a fresh per-conversation rate limit) and messages
        # over all its sessions (3 customers' worth, for an office behind one address).
        per_minute = deps.settings.rate_limit_per_minute
        self.new_sessions = shared_rate_limiter(deps.store, "widget-sessions",
                                                NEW_SESSIONS_PER_ADDRESS if per_minute > 0 else 0, 600.0)
        self.address_messages = shared_rate_limiter(deps.store, "widget-address", 3 * per_minute, 60.0)

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
        allowed = self.settings.widget_allowed_origins
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
        address = client_address(request, self.settings.trusted_proxies)
        session: Optional[str] = None
        try:
            async for frame in socket:
                if frame.type != WSMsgType.TEXT:
                    if frame.type == WSMsgType.ERROR:
                        break
                    continue
                try:
                    data = parse_json(frame.data)
                except BadJson:
                    data = None
                if not isinstance(data, dict):
                    await self._error(socket, None, "bad_request", session)
                    continue
                kind = data.get("type")
                if kind == "hello":
                    session = await self._hello(socket, data, session, address)
                    if session is None:
                        break                       # too many new sessions from this address: told, closed
                elif kind in ("message", "identity") and session is None:
                    await self._error(socket, self._client_id(data), "bad_request", session)
                elif kind == "message" and session is not None:
                    await self._message(socket, session, data, address)
                elif kind == "identity" and session is not None:
                    await self._identity(socket, session, data.get("token"))
                elif kind == "feedback" and session is not None:
                    await self._feedback(socket, session, data)
                else:
                    await self._error(socket, self._client_id(data), "bad_request", session)
        finally:
            self.shown.pop(socket, None)
            self.languages.pop(socket, None)
            if session is not None:
                self.sockets[session].discard(socket)
                if not self.sockets[session]:
                    self.sockets.pop(session, None)
        return socket

    async def _hello(self, socket: web.WebSocketResponse, data: Mapping[str, Any], previous: Optional[str],
                     address: str) -> Optional[str]:
        """Open (or resume) the session; returns its key, the conversation's sender id (None: refused)."""
        asked = data.get("session")
        asked = asked if isinstance(asked, str) and 0 < len(asked) <= 64 else None
        resumed = await self.db(self.store.widget_session, asked, create=False) if asked else None
        if resumed is None:
            if address and not (await counted(self.db, self.new_sessions.shared, self.new_sessions.check,
                                              address))[0]:     # an unknown address: no such limit
                logger.warning("widget: too many new sessions from %s; refused", masked_address(address))
                await self._error(socket, None, "rate_limited", previous)
                return None
            resumed = await self.db(self.store.widget_session, None)
        assert resumed is not None                   # a new session always comes back
        secret, key = resumed
        if previous and previous != key:
            self.sockets[previous].discard(socket)
        self.sockets[key].add(socket)
        after = data.get("after")
        after = after if isinstance(after, int) and not isinstance(after, bool) and 0 <= after < MAX_SEQ and \
            secret == asked else 0
        conversation = conversation_id(self.name, key)
        history = await self.db(self.store.history, conversation, after)
        await socket.send_json({"type": "session", "session": secret})
        # The conversation's language (the widget's own texts follow it), when it has one; the answers rated.
        language = await self.db(self.store.conversation_language, conversation) if history or after else None
        ratings = await self.db(self.feedback.ratings, conversation) if history else {}
        await socket.send_json(self._for_customer(
            socket, {"type": "history", "messages": history, **({"language": language} if language else {}),
                     **({"ratings": {str(seq): rating for seq, rating in ratings.items()}} if ratings else {})}))
        self.shown[socket] = max([after, *(entry["seq"] for entry in history)])
        if not history and not after:
            # A first open: greet in the page's language (the widget's). Shown, not stored: an unanswered
            # greeting is not a conversation.
            page = data.get("language")
            page = page if page in SUPPORTED_LANGUAGES else None
            self.languages[socket] = page or "en"
            await socket.send_json({"type": "greeting", "text": notice("greeting", page), "language": page or "en"})
        return key

    @staticmethod
    def _client_id(data: Mapping[str, Any]) -> Optional[str]:
        """The frame's message id if it is one the widget could have made (echoed back in errors)."""
        client_id = data.get("id")
        return client_id if isinstance(client_id, str) and MESSAGE_ID.match(client_id) else None

    async def _identity(self, socket: web.WebSocketResponse, session: str, token: Any) -> None:
        """The host page signed its customer in (a token) or out (null)."""
        if token is not None and (not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS):
            token = ""                  # malformed: treated as a token that does not check out
        verified = await self.identify(conversation_id(self.name, session), token)
        await socket.send_json({"type": "identity", "verified": verified})

    async def identify(self, conversation: str, token: Optional[str]) -> bool:
        """The website's identity token for a conversation: verify it (True) or, for None or a token that does
        not check out, log the conversation out. Tokens stop here: they are never passed on or stored."""
        if token is None:
            await self.db(self.accounts.log_out, conversation)
            return False
        return await self.db(self.accounts.verify_with_token, conversation, self.name, token)

    async def _message(self, socket: web.WebSocketResponse, session: str, data: Mapping[str, Any],
                       address: str) -> None:
        client_id, text, payload = self._client_id(data), data.get("text", ""), data.get("payload")
        if client_id is None or not isinstance(text, str):
            await self._error(socket, client_id, "bad_request", session)
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
        if address and not (await counted(self.db, self.address_messages.shared, self.address_messages.check,
                                          address))[0]:
            await self._error(socket, client_id, "rate_limited", session)
            return
        metadata = self._metadata(data.get("metadata"))
        if address:
            metadata["client_ip"] = address          # for the verification limits; this turn only
        message = InboundMessage(self.name, session, client_id, text=text[:MAX_TEXT_CHARS], payload=payload,
                                 metadata=metadata)
        async def acknowledge(recorded: Recorded) -> None:
            await socket.send_json({"type": "ack", "id": client_id})
            if recorded.entry is not None:
                await self.push(session, {"type": "message", "message": as_sent(recorded.entry, message.text)})

        await self.receive(message, acknowledge=acknowledge)

    async def _feedback(self, socket: web.WebSocketResponse, session: str, data: Mapping[str, Any]) -> None:
        """👍 / 👎 under an answer ({"type": "feedback", "seq", "rating"}): kept once per answer, shown on every
        open tab of the session; the first rating of an answer is answered (a 👎 with a person and the channels)."""
        seq, rating = data.get("seq"), data.get("rating")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < MAX_SEQ or rating not in RATINGS:
            await self._error(socket, None, "bad_request", session)
            return
        conversation = conversation_id(self.name, session)
        rated = await self.db(self.feedback.record, conversation, rating, seq)
        if rated is None:                              # not an answer of this conversation
            await self._error(socket, None, "bad_request", session)
            return
        await self.push(session, {"type": "rated", "seq": rated.entry, "rating": rated.rating})
        if rated.new:
            reply = feedback_reply(rating, await self.db(self.store.conversation_language, conversation))
            entry = await self.db(self.store.record_notice, conversation, reply)
            await self.push(session, {"type": "message", "message": entry})

    @staticmethod
    def _metadata(raw: Any) -> Dict[str, str]:
        """Only what the widget may pass on: a language hint (identity tokens come in identity frames)."""
        if isinstance(raw, Mapping) and raw.get("language") in SUPPORTED_LANGUAGES:
            return {"language": raw["language"]}
        return {}

    async def _error(self, socket: web.WebSocketResponse, client_id: Optional[str], code: str,
                     session: Optional[str]) -> None:
        language = None
        if session:
            language = await self.db(self.store.conversation_language,
                                             conversation_id(self.name, session))
        await socket.send_json({"type": "error", "id": client_id, "code": code, "text": notice(code, language)})

    async def push(self, session: str, frame: Dict[str, Any]) -> None:
        """To every socket of the session: this replica's, and through Redis the other replicas'."""
        await self.push_local(session, frame)
        await self.fanout.publish(session, frame)

    async def push_local(self, session: str, frame: Dict[str, Any]) -> None:
        for socket in list(self.sockets.get(session, ())):
            await self._send(socket, frame)

    async def _send(self, socket: web.WebSocketResponse, frame: Dict[str, Any]) -> bool:
        """One frame to one socket, noting the highest transcript seq it was sent; False if the socket is going
        away (its client catches up from history on reconnect)."""
        if socket.closed:
            return False
        try:
            await socket.send_json(self._for_customer(socket, frame))
        except (ConnectionError, RuntimeError):
            return False
        seq = frame["message"].get("seq") if frame.get("type") == "message" else None
        if isinstance(seq, int):
            self.shown[socket] = max(self.shown.get(socket, 0), seq)
        return True

    def _for_customer(self, socket: web.WebSocketResponse, frame: Dict[str, Any]) -> Dict[str, Any]:
        """`frame` as the customer's widget gets it: each answer with the line naming its documents, in the
        language the entry (or the frame, or else what the socket was last shown) says."""
        kind = frame.get("type")
        if kind == "history":
            language = frame.get("language") or self.languages.get(socket)
            if language:
                self.languages[socket] = language
            return {**frame, "messages": [for_customer(entry, language) for entry in frame["messages"]]}
        if kind == "message":
            entry = frame["message"]
            language = entry.get("language") or self.languages.get(socket)
            if entry.get("language"):
                self.languages[socket] = entry["language"]
            return {**frame, "message": for_customer(entry, language)}
        return frame

    async def catch_up(self) -> None:
        """After a Redis outage: send each socket of this replica what its transcript gained since it was last
        sent something (frames another replica published meanwhile were lost; the widget shows each seq once)."""
        for session, sockets in list(self.sockets.items()):
            for socket in list(sockets):
                missed = await self.db(self.store.history, conversation_id(self.name, session),
                                       self.shown.get(socket, 0))
                for entry in missed:
                    if not await self._send(socket, {"type": "message", "message": entry}):
                        break

    # --- adapter ------------------------------------------------------------------------------------------------

    async def show_typing(self, sender_id: str) -> None:
        await self.push(sender_id, {"type": "typing", "on": True})

    async def hide_typing(self, sender_id: str) -> None:
        await self.push(sender_id, {"type": "typing", "on": False})

    async def already_delivered(self, sender_id: str, reply: Reply, since: datetime) -> Optional[bool]:
        """Never: a reply is pushed only after its transcript entry is written, and that entry counts it
        delivered; an attempt that broke off before it had shown the customer nothing."""
        return False

    async def deliver(self, sender_id: str, reply: Reply, record: RecordDelivery) -> None:
        entry = await record()            # the transcript is the widget's mailbox
        await self.push(sender_id, {"type": "message", "message": as_sent(entry, reply.text)})

    async def start(self) -> None:
        await self.fanout.start()

    async def close(self) -> None:
        await self.fanout.close()
        for sockets in list(self.sockets.values()):
            for socket in list(sockets):
                await socket.close()
