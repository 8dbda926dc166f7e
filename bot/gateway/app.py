"""The gateway application: shared services (store, Rasa client, worker, rate limit) and the channel adapters."""
from __future__ import annotations

import asyncio
import functools
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Set, TypeVar

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from packaging.version import Version
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from bot.accounts.service import AccountService
from bot.accounts.store import account_store
from bot.gateway.adapter import ChannelAdapter, DeliveryError
from bot.gateway.clients import masked_address
from bot.gateway.config import GatewaySettings
from bot.gateway.handoffs import HandoffStore
from bot.gateway.messages import MAX_TEXT_CHARS, ROLE_NOTICE, InboundMessage, Reply
from bot.gateway.notices import notice
from bot.gateway.rasa_client import RasaClient
from bot.gateway.ratelimit import SenderRateLimiter
from bot.gateway.store import OPEN_STATUSES, PENDING, RATE_LIMITED, REJECTED, GatewayStore, InboxMessage, Recorded
from bot.gateway.worker import InboxWorker
from bot.language import SUPPORTED_LANGUAGES, detect_language

logger = logging.getLogger("bot.gateway")

MAX_BODY_BYTES = 1024 * 1024
# The aiohttp of requirements-gateway.txt, reviewed in docs/security/dependency-advisories.yml.
REVIEWED_AIOHTTP = Version("3.14.5")
T = TypeVar("T")


class Gateway:
    def __init__(self, settings: GatewaySettings, store: Optional[GatewayStore] = None):
        self.settings = settings
        self.store = store or GatewayStore(settings.database_url)
        self.handoffs = HandoffStore(self.store)
        # The account side (same database): website identity tokens, and what the console shows agents.
        self.accounts = AccountService(settings.shared, store=account_store(
            settings.database_url, settings.shared.data_encryption_key))
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="gateway-db")
        self.rate_limiter = SenderRateLimiter(limit=settings.rate_limit_per_minute, window=60.0)
        self.adapters: Dict[str, ChannelAdapter] = {}
        self.worker = InboxWorker(self)
        self.http: Optional[aiohttp.ClientSession] = None
        self.rasa: Optional[RasaClient] = None
        self._background: Set[asyncio.Task] = set()

    def add_adapter(self, adapter: ChannelAdapter) -> None:
        self.adapters[adapter.name] = adapter

    def enabled_channels(self) -> List[str]:
        return [name for name, adapter in self.adapters.items() if adapter.enabled]

    async def db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a (synchronous) store call in the database thread pool, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, functools.partial(function, *args, **kwargs))

    async def identify(self, conversation_id: str, channel: str, token: Optional[str]) -> bool:
        """The website's identity token for a conversation: verify it (True) or, for None or a token that does
        not check out, log the conversation out. Tokens stop here: they are never passed on or stored."""
        if token is None:
            await self.db(self.accounts.log_out, conversation_id)
            return False
        return await self.db(self.accounts.verify_with_token, conversation_id, channel, token)

    def spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def receive(self, message: InboundMessage, has_attachments: bool = False) -> Recorded:
        """Store one inbound message durably, then let the worker answer it. Messages the assistant should not
        see (too long, empty, over the rate limit) are recorded too and answered with a notice instead."""
        # The conversation's language follows what the customer writes, as the assistant's does (bot/language.py);
        # the channel's hint (the widget's UI language) only starts a new conversation off.
        hint = message.metadata.get("language")
        language = detect_language(message.text, statistical=False)
        rejection = None
        if not message.payload and len(message.text) > MAX_TEXT_CHARS:
            rejection = "too_long"
        elif not message.payload and not message.text.strip():
            rejection = "unsupported_attachment" if has_attachments else "empty"
        allowed, notify = self.rate_limiter.check(message.conversation_id)
        status = REJECTED if rejection else PENDING if allowed else RATE_LIMITED
        try:
            recorded = await self.db(self.store.record_inbound, message, status, language,
                                     language_hint=hint if hint in SUPPORTED_LANGUAGES else None)
        except ValueError as refused:              # an id shaped like the gateway's own outbound keys
            logger.warning("%s: message refused: %s", message.conversation_id, refused)
            return Recorded(None, True, None)
        if recorded.duplicate:
            logger.info("%s: message %s already received; ignored", message.conversation_id, message.message_id)
            return recorded
        logger.info("%s: inbox %s %s", message.conversation_id, recorded.inbox_id, status)
        if rejection:
            self.spawn(self.send_notice(message.channel, message.sender_id, message.conversation_id, rejection,
                                        language))
        elif not allowed:
            if notify:
                self.spawn(self.send_notice(message.channel, message.sender_id, message.conversation_id,
                                            "rate_limited", language))
        else:
            self.worker.wake()
        return recorded

    async def send_notice(self, channel: str, sender_id: str, conversation_id: str, key: str,
                          language: Optional[str] = None) -> None:
        """Best effort: one of the gateway's own notices, in the conversation's language, recorded in the
        transcript. (Answers from the assistant go through the inbox; notices are not retried.)"""
        try:
            if language is None:
                language = await self.db(self.store.conversation_language, conversation_id)
            reply = Reply(notice(key, language), role=ROLE_NOTICE)
            entry: Dict[str, Any] = {}

            async def record() -> Dict[str, Any]:
                if not entry:
                    entry.update(await self.db(self.store.record_notice, conversation_id, reply))
                return entry

            await self.adapters[channel].deliver(sender_id, reply, record)
            await record()
        except (DeliveryError, SQLAlchemyError) as error:
            logger.warning("%s: %s notice not delivered: %s", conversation_id, key, error)

    def pending_count(self) -> int:
        with self.store.session() as session:
            return session.scalar(select(func.count()).select_from(InboxMessage)
                                  .where(InboxMessage.status.in_(OPEN_STATUSES)))

    async def start(self) -> None:
        if Version(aiohttp.__version__) < REVIEWED_AIOHTTP:
            logger.warning("aiohttp %s: the gateway faces the internet and should run in its own environment "
                           "(make install builds .venv-gateway from requirements-gateway.txt); make audit lists what "
                           "this version exposes", aiohttp.__version__)
        else:
            logger.info("aiohttp %s", aiohttp.__version__)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.rasa = RasaClient(self.settings.rasa_url, self.settings.rasa_api_token, self.http,
                               self.settings.rasa_timeout_seconds)
        for adapter in self.adapters.values():
            if adapter.enabled:
                logger.info("%s channel enabled", adapter.name)
            else:
                logger.warning(adapter.disabled_reason())
        self.spawn(self.worker.run())

    async def stop(self) -> None:
        await self.worker.stop()
        for adapter in self.adapters.values():
            await adapter.close()
        for task in list(self._background):
            task.cancel()
        if self.http:
            await self.http.close()
        self.executor.shutdown(wait=False)
        self.store.dispose()


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Access log without query strings (Messenger's verification puts the verify token in the query) and with
    the client's address masked to its network."""

    def log(self, request, response, time):  # noqa: A002 - aiohttp's signature
        self.logger.info('%s "%s %s" %s %.1f ms', masked_address(request.remote or ""), request.method, request.path,
                         response.status, time * 1000)


@web.middleware
async def security_headers(request: web.Request, handler):
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


async def plain_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, errors and the widget socket included, names no framework or version."""
    response.headers["Server"] = "KSOS gateway"


async def health(request: web.Request) -> web.Response:
    gateway: Gateway = request.app["gateway"]
    try:
        pending = await gateway.db(gateway.pending_count)
        database = "ok"
    except SQLAlchemyError:
        pending, database = None, "unavailable"
    try:
        status = await gateway.rasa.status(aiohttp.ClientTimeout(total=2))
        rasa = "ok" if status == 200 else f"HTTP {status}"
    except (aiohttp.ClientError, asyncio.TimeoutError):
        rasa = "unreachable"
    return web.json_response({
        "status": "ok" if database == "ok" else "degraded",
        "database": database, "rasa": rasa, "pending_messages": pending,
        "channels": {name: adapter.enabled for name, adapter in gateway.adapters.items()},
    }, status=200 if database == "ok" else 503)


def create_app(settings: Optional[GatewaySettings] = None) -> web.Application:
    from bot.gateway.channels.facebook import FacebookAdapter
    from bot.gateway.channels.twitter import TwitterAdapter
    from bot.gateway.channels.widget import WidgetAdapter
    from bot.gateway.console import Console

    settings = settings or GatewaySettings.from_env()
    gateway = Gateway(settings)
    for adapter_class in (WidgetAdapter, FacebookAdapter, TwitterAdapter):
        gateway.add_adapter(adapter_class(gateway))
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[security_headers])
    app["gateway"] = gateway
    app.on_response_prepare.append(plain_server_header)
    app.router.add_get("/healthz", health)
    for adapter in gateway.adapters.values():
        adapter.add_routes(app)
    Console(gateway).add_routes(app)

    async def on_startup(_app: web.Application) -> None:
        await gateway.start()

    async def on_cleanup(_app: web.Application) -> None:
        await gateway.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bot gateway", description="the channel gateway (aiohttp)")
    parser.add_argument("--port", type=int, default=None, help="default: GATEWAY_PORT or 8080")
    parser.add_argument("--host", default=None, help="default: GATEWAY_HOST or 0.0.0.0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = GatewaySettings.from_env()
    except ValueError as problem:
        print(f"Cannot start the gateway: {problem}", file=sys.stderr)
        return 2
    settings.shared.require("RASA_API_TOKEN", "DATA_ENCRYPTION_KEY")
    web.run_app(create_app(settings), host=args.host or settings.host, port=args.port or settings.port,
                access_log_class=PathOnlyAccessLogger, print=lambda *_: None, shutdown_timeout=10)
    return 0
