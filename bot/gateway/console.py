"""The agent console: the page at /agent, its JSON API under /api/agent/, and agent assist at /api/assist/suggest.

Security: agents log in with a name and password (scrypt hashes, bot/gateway/agents.py; failed logins meet
growing delays, never a lock-out). The session cookie is HttpOnly, SameSite=Strict and Secure (unless
CONSOLE_INSECURE_COOKIE=1 for plain-http development); every endpoint but login answers 401 without a live
session; every POST but login needs the session's CSRF token in the X-CSRF-Token header (compared in constant
time), and a POST whose Origin is another site is refused. Agents read only conversations handed over to them
(open handoffs, and the ones they handled), and every read is audit-logged. The API is described in
docs/agents.md.
"""
from __future__ import annotations

import asyncio
import logging
import math
import re
from datetime import datetime
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import aiohttp
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot import assist
from bot.accounts.answers import account_summary
from bot.accounts.service import AccountService
from bot.clock import today
from bot.dialogue.fallback import rank_candidates
from bot.dialogue.knowledge import domain_responses, knowledge_base
from bot.gateway.agent_audit import AUDIT_SUGGEST
from bot.gateway.agent_directory import AgentDirectory, ConsoleSession
from bot.gateway.agents import AGENT_NAME, LOGIN_WINDOW_SECONDS, LoginThrottle, check_password
from bot.gateway.calls import DatabaseCalls
from bot.gateway.channels.widget import STATIC_DIR
from bot.gateway.clients import client_address, masked_address
from bot.gateway.config import GatewaySettings
from bot.gateway.handoffs import DUPLICATE, MESSAGES, NOT_FOUND, NOT_OWNER, QUEUED, RESOLVED, HandoffStore
from bot.gateway.json_input import BadJson, parse_json_object
from bot.gateway.messages import MAX_TEXT_CHARS
from bot.gateway.rasa_client import RasaClient
from bot.gateway.ratelimit import counted
from bot.gateway.review import MAX_LABELLED_AT_ONCE, ReviewQueue, review_labels
from bot.gateway.shared_windows import window_for
from bot.gateway.store import GatewayStore
from bot.gateway.suggestion_log import SuggestionLog
from bot.nlu.language import SUPPORTED_LANGUAGES, detect_language
from bot.secret_compare import same_secret
from bot.vocabulary import RETRIEVAL_INTENTS

logger = logging.getLogger(__name__)

COOKIE = "ksos_agent"
CSRF_HEADER = "X-CSRF-Token"
CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'")
RASA_PARSE_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=3)

Handler = Callable[[web.Request, ConsoleSession], Awaitable[web.StreamResponse]]


def error(status: int, code: str, message: Optional[str] = None) -> web.Response:
    body = {"error": code}
    if message:
        body["message"] = message
    return web.json_response(body, status=status)


def same_origin(request: web.Request) -> bool:
    """False for a request another site's page made (its Origin names another host)."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return origin is None
    return origin.split("://", 1)[-1].rstrip("/") == request.host


async def json_body(request: web.Request) -> Dict[str, Any]:
    try:
        return parse_json_object(await request.read())
    except BadJson:
        raise web.HTTPBadRequest(text='{"error": "bad_json"}', content_type="application/json") from None


class Console:
    """Given the settings, the store and its thread pool, the agents and their sessions, the handoffs, the
    suggestion log, the account side, Rasa (to parse for agent assist), a way to wake the inbox worker (an
    agent's reply or a hand-back is waiting in the inbox) and the review queue."""

    def __init__(self, settings: GatewaySettings, store: GatewayStore, db: DatabaseCalls, agents: AgentDirectory,
                 handoffs: HandoffStore, suggestions: SuggestionLog, accounts: AccountService, rasa: RasaClient,
                 wake_worker: Callable[[], None], review: ReviewQueue):
        self.settings, self.store, self.db = settings, store, db
        self.agents, self.handoffs, self.suggestions = agents, handoffs, suggestions
        self.accounts, self.rasa, self.wake_worker = accounts, rasa, wake_worker
        self.review = review
        self.throttle = LoginThrottle(failures=window_for(store, LOGIN_WINDOW_SECONDS, "login:"))

    def add_routes(self, app: web.Application) -> None:
        static = STATIC_DIR
        app.router.add_get("/agent", self.page)
        app.router.add_get("/agent/agent.js", lambda r: self.asset(static / "agent.js", "application/javascript"))
        app.router.add_get("/agent/agent.css", lambda r: self.asset(static / "agent.css", "text/css"))
        app.router.add_post("/api/agent/login", self.login)
        app.router.add_get("/api/agent/me", self.guard(self.me))
        app.router.add_post("/api/agent/logout", self.guard(self.logout))
        app.router.add_get("/api/agent/queue", self.guard(self.queue))
        app.router.add_post("/api/agent/conversations/{conversation_id}/open", self.guard(self.open))
        app.router.add_get("/api/agent/conversations/{conversation_id}", self.guard(self.conversation))
        app.router.add_post("/api/agent/conversations/{conversation_id}/reply", self.guard(self.reply))
        app.router.add_post("/api/agent/conversations/{conversation_id}/resolve", self.guard(self.resolve))
        app.router.add_post("/api/assist/suggest", self.guard(self.suggest))
        app.router.add_get("/api/agent/review", self.guard(self.review_queue))
        app.router.add_post("/api/agent/review/label", self.guard(self.review_label))

    # --- pages ------------------------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        response = await self.asset(STATIC_DIR / "agent.html", "text/html")
        response.headers["Content-Security-Policy"] = PAGE_CSP
        response.headers["X-Frame-Options"] = "DENY"
        return response

    @staticmethod
    async def asset(path, content_type: str) -> web.Response:
        return web.Response(body=path.read_bytes(), content_type=content_type, charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    # --- authentication ---------------------------------------------------------------------------------------

    def guard(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Only for a live agent session; POSTs also need the CSRF token and a same-site origin."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            if request.method == "POST" and not same_origin(request):
                return error(403, "csrf", "Cross-site request refused.")
            try:
                session = await self.db(self.agents.session_for, request.cookies.get(COOKIE))
            except SQLAlchemyError:
                return error(503, "unavailable", "The database is unavailable. Please try again.")
            if session is None:
                return error(401, "unauthorized")
            if request.method == "POST" and not same_secret(request.headers.get(CSRF_HEADER), session.csrf_token):
                return error(403, "csrf", "Missing or wrong CSRF token. Reload the page.")
            try:
                return await handler(request, session)
            except SQLAlchemyError as problem:
                logger.error("console: database error %s", type(problem).__name__)
                return error(503, "unavailable", "The database is unavailable. Please try again.")
        return guarded

    async def login(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            return error(403, "csrf", "Cross-site request refused.")
        body = await json_body(request)
        name, password = body.get("name"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str) or len(name) > 80 or len(password) > 1000:
            return error(400, "bad_request", "Name and password are required.")
        address = client_address(request, self.settings.trusted_proxies)
        shared = self.throttle.shared
        wait = await counted(self.db, shared, self.throttle.wait, name, address)
        if wait > 0:
            seconds = math.ceil(wait)
            response = error(429, "too_many_attempts",
                             f"Too many failed attempts. Try again in {seconds} second{'s' if seconds > 1 else ''}.")
            response.headers["Retry-After"] = str(seconds)
            return response
        # Counted before the 0.1 s check, so that guesses sent all at once do not get through together.
        attempt = await counted(self.db, shared, self.throttle.failed, name, address)
        found = await self.db(self.agents.password_hash, name)
        valid = await asyncio.get_running_loop().run_in_executor(
            None, check_password, password, found[1] if found else None)
        if not found or not valid:
            logger.warning("console: failed login for %s from %s", repr(name[:40]) if AGENT_NAME.match(name)
                           else "a name no agent can have", masked_address(address))
            return error(401, "invalid_credentials")
        await counted(self.db, shared, self.throttle.succeeded, name, address, attempt)
        agent = found[0]
        token, csrf = await self.db(self.agents.create_session, agent)
        response = web.json_response({"agent": agent.to_json(), "csrf_token": csrf})
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                            secure=not self.settings.console_insecure_cookie, max_age=24 * 3600)
        logger.info("console: %s logged in", agent.name)
        return response

    async def me(self, request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        return web.json_response({"agent": session.agent.to_json(), "csrf_token": session.csrf_token})

    async def logout(self, request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        await self.db(self.agents.end_session, request.cookies.get(COOKIE))
        response = web.json_response({})
        response.del_cookie(COOKIE, path="/")
        return response

    # --- queue and conversations ------------------------------------------------------------------------------

    async def queue(self, request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        return web.json_response({"conversations": await self.db(self.handoffs.queue, session.agent.id)})

    def _account(self, conversation_id: str, channel: str) -> Optional[Dict[str, Any]]:
        number = self.accounts.verified_account(conversation_id, channel)
        snapshot = self.accounts.store.snapshot(number) if number else None
        return account_summary(snapshot, today()) if snapshot else None

    async def _conversation_json(self, conversation: Dict[str, Any], after: int) -> Dict[str, Any]:
        """The transcript and, while the conversation is handed over, the verified account; a conversation the
        agent handed back is shown as it was then (readable_until), without the account."""
        conversation_id, until = conversation["conversation_id"], readable_until(conversation)
        transcript = await self.db(self.store.history, conversation_id, after, 500, until,
                                           conversation.get("hand_back_seq"))
        account = None if until else await self.db(self._account, conversation_id, conversation["channel"])
        return {"conversation": conversation, "transcript": transcript, "account": account}

    async def open(self, request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        conversation_id = request.match_info["conversation_id"]
        conversation, taken = await self.db(self.handoffs.take, conversation_id, session.agent)
        if conversation is None:
            return error(404, "not_found", MESSAGES[NOT_FOUND])
        if taken:
            logger.info("console: %s took %s", session.agent.name, conversation_id)
            self.wake_worker()
        return web.json_response(await self._conversation_json(conversation, 0))

    async def conversation(self, request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        conversation_id = request.match_info["conversation_id"]
        raw = request.query.get("after", "0")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 15):
            return error(400, "bad_request", "`after` must be a whole number of at most 15 digits.")
        after = int(raw)
        conversation = await self.db(self.handoffs.view, conversation_id, session.agent.id)
        if conversation is None:
            return error(404, "not_found", MESSAGES[NOT_FOUND])
        return web.json_response(await self._conversation_json(conversation, after))

    async def reply(self, request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        conversation_id = request.match_info["conversation_id"]
        body = await json_body(request)
        text, client_id = body.get("text"), body.get("client_id")
        if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
            return error(400, "bad_request", "A client_id (letters, digits, - _ . :) is required.")
        if not isinstance(text, str) or not text.strip():
            return error(400, "empty", "The reply is empty.")
        if len(text) > MAX_TEXT_CHARS:
            return error(400, "too_long", f"The reply is longer than {MAX_TEXT_CHARS:,} characters.")
        suggestion = parse_suggestion(body.get("suggestion"))
        outcome = await self.db(self.handoffs.reply, conversation_id, session.agent, text.strip(),
                                        client_id, suggestion)
        if outcome == NOT_FOUND:
            return error(404, "not_found", MESSAGES[NOT_FOUND])
        if outcome in (RESOLVED, NOT_OWNER):
            return error(409, outcome, MESSAGES[outcome])
        if outcome == QUEUED:
            self.wake_worker()
        return web.json_response({"status": "duplicate" if outcome == DUPLICATE else "queued"}, status=202)

    async def resolve(self, request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        conversation_id = request.match_info["conversation_id"]
        outcome = await self.db(self.handoffs.resolve, conversation_id, session.agent)
        if outcome == NOT_FOUND:
            return error(404, "not_found", MESSAGES[NOT_FOUND])
        if outcome == NOT_OWNER:
            return error(409, NOT_OWNER, "Another agent is handling this conversation.")
        if outcome != RESOLVED:
            return error(409, RESOLVED, "This conversation has already been resolved.")
        logger.info("console: %s resolved %s", session.agent.name, conversation_id)
        self.wake_worker()
        return web.json_response({"status": "resolved"})

    # --- review queue -----------------------------------------------------------------------------------------

    async def review_queue(self, request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        """The messages waiting for review (redacted), grouped by similarity, newest first; and the labels."""
        groups, waiting = await self.db(self.review.pending)
        labels = [{"key": key, "title": title} for key, title in review_labels().items()]
        return web.json_response({"groups": [group.to_json() for group in groups], "waiting": waiting,
                                  "labels": labels})

    async def review_label(self, request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        body = await json_body(request)
        items, label = body.get("items"), body.get("label")
        if (not isinstance(items, list) or not 0 < len(items) <= MAX_LABELLED_AT_ONCE
                or not all(isinstance(item, int) and not isinstance(item, bool) and 0 < item < 2 ** 31
                           for item in items)):
            return error(400, "bad_request", f"`items`: a list of 1 to {MAX_LABELLED_AT_ONCE} message ids.")
        if not isinstance(label, str) or label not in review_labels():
            return error(400, "bad_label", "`label`: one of the labels the review queue lists.")
        labelled = await self.db(self.review.label, items, label, session.agent.id)
        logger.info("console: %s labelled %d review message(s) %s", session.agent.name, labelled, label)
        return web.json_response({"labelled": labelled})

    # --- agent assist -----------------------------------------------------------------------------------------

    async def parse(self, text: str) -> Optional[Dict[str, Any]]:
        """Rasa's /model/parse of `text`, or None when Rasa can't be asked (the suggestions then rest on the
        similarity to the example questions alone)."""
        try:
            data = await self.rasa.parse(text, RASA_PARSE_TIMEOUT)
            if data is None:
                logger.warning("assist: /model/parse answered with an error")
            return data
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as problem:
            logger.warning("assist: Rasa unavailable (%s); similarity only", type(problem).__name__)
        return None

    async def question_among(self, entries: List[Dict[str, Any]]
                             ) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]]]:
        """The customer message to suggest answers for, newest first: the newest that asks something the
        knowledge base answers ("I want a human" right after "how much is the penalty?" is about the penalty),
        else the newest. Returns (entry, its parse data)."""
        kb = knowledge_base()
        newest: Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]]] = (None, None)
        for entry in entries:
            parse_data = await self.parse(entry["text"])
            if newest[0] is None:
                newest = (entry, parse_data)
            if parse_data is None:
                break
            ranked = rank_candidates(parse_data, kb.keys(), limit=1)
            intent = (parse_data.get("intent") or {}).get("name")
            if ranked and (intent in RETRIEVAL_INTENTS or (intent is not None and intent in kb)):
                return entry, parse_data
        return newest

    def _suggestions(self, parse_data: Optional[Dict[str, Any]], text: str, language: str,
                     conversation: Optional[Dict[str, Any]]) -> list:
        number = self.accounts.verified_account(conversation["conversation_id"], conversation["channel"]) \
            if conversation else None

        def account_answer(key: str) -> Optional[str]:
            return self.accounts.answer(key, number, domain_responses(), language) if number else None

        return assist.suggestions(parse_data, text, language, account_answer=account_answer if number else None)

    async def suggest(self, request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        body = await json_body(request)
        conversation_id = body.get("conversation_id")
        customer_seq, conversation = None, None
        if conversation_id is not None:
            if not isinstance(conversation_id, str):
                return error(400, "bad_request", "conversation_id must be a string.")
            conversation = await self.db(self.handoffs.view, conversation_id, session.agent.id,
                                                 AUDIT_SUGGEST)
            if conversation is None:
                return error(404, "not_found", MESSAGES[NOT_FOUND])
            if readable_until(conversation):
                return error(409, RESOLVED, MESSAGES[RESOLVED])
            entries = await self.db(self.handoffs.latest_customer_entries, conversation_id)
            entry, parse_data = await self.question_among(entries)
            text = entry["text"] if entry else ""
            customer_seq = entry["seq"] if entry else None
            language = conversation["language"]
        else:
            text = body.get("text")
            if not isinstance(text, str) or not text.strip():
                return error(400, "bad_request", "Give a conversation_id or a text.")
            if len(text) > MAX_TEXT_CHARS:
                return error(400, "too_long", f"The text is longer than {MAX_TEXT_CHARS:,} characters.")
            language = body.get("language")
            if language not in SUPPORTED_LANGUAGES:
                language = detect_language(text) or "en"
            parse_data = None
        if not text.strip():
            return web.json_response({"set_id": None, "language": language, "text": "", "suggestions": []})
        if parse_data is None:
            parse_data = await self.parse(text)
        found = await self.db(self._suggestions, parse_data, text, language, conversation)
        items = [suggestion.to_json() for suggestion in found]
        set_id = None
        if conversation_id is not None and items:
            set_id = await self.db(self.suggestions.record, conversation_id, session.agent,
                                           language, customer_seq, items)
        return web.json_response({"set_id": set_id, "language": language, "text": text, "suggestions": items,
                                  "model": parse_data is not None})


def readable_until(conversation: Dict[str, Any]) -> Optional[datetime]:
    """Where an agent's view of a conversation they handed back ends (None: it is handed over now)."""
    value = conversation.get("readable_until")
    return datetime.fromisoformat(value.rstrip("Z")) if value else None


def parse_suggestion(value: Any) -> Optional[Tuple[int, int]]:
    """The {"set_id", "index"} a reply started from, or None when absent or malformed."""
    if isinstance(value, dict):
        set_id, index = value.get("set_id"), value.get("index")
        if isinstance(set_id, int) and isinstance(index, int) and not isinstance(set_id, bool):
            return set_id, index
    return None
