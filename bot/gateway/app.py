"""The gateway application, built by an app factory in aiohttp's style (`init_app`): it makes the shared services
(store and its thread pool, outbound HTTP session, Rasa client, rate limit, inbox, worker) and hands each channel
adapter, the worker and the console only what it uses. Nothing below this module imports it back."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from packaging.version import Version
from sqlalchemy.exc import SQLAlchemyError

from bot.accounts.service import AccountService
from bot.accounts.store import account_store
from bot.gateway.adapter import ChannelAdapter, ChannelDeps
from bot.gateway.agent_directory import AgentDirectory
from bot.gateway.calls import DatabaseCalls
from bot.gateway.channels.facebook import FacebookAdapter
from bot.gateway.channels.twitter import TwitterAdapter
from bot.gateway.channels.widget import WidgetAdapter
from bot.gateway.clients import masked_address
from bot.gateway.config import GatewaySettings
from bot.gateway.console import Console
from bot.gateway.fanout import Fanout
from bot.gateway.feedback import FeedbackStore
from bot.gateway.handoffs import HandoffStore
from bot.gateway.inbox import Inbox, NoticeSender
from bot.gateway.rasa_client import RasaClient
from bot.gateway.review import ReviewQueue
from bot.gateway.shared_windows import shared_rate_limiter
from bot.gateway.store import GatewayStore
from bot.gateway.suggestion_log import SuggestionLog
from bot.gateway.worker import InboxWorker

logger = logging.getLogger("bot.gateway")

MAX_BODY_BYTES = 1024 * 1024
# The aiohttp of requirements-gateway.txt, reviewed in docs/security/dependency-advisories.yml.
REVIEWED_AIOHTTP = Version("3.14.5")

STORE = web.AppKey("store", GatewayStore)
RASA = web.AppKey("rasa", RasaClient)
DB = web.AppKey("db", DatabaseCalls)
CHANNELS = web.AppKey("channels", Dict[str, ChannelAdapter])
INBOX = web.AppKey("inbox", Inbox)
SETTINGS = web.AppKey("settings", GatewaySettings)
FANOUT = web.AppKey("fanout", Fanout)


def check_aiohttp() -> None:
    if Version(aiohttp.__version__) < REVIEWED_AIOHTTP:
        logger.warning("aiohttp %s: the gateway faces the internet and should run in its own environment "
                       "(make install builds .venv-gateway from requirements-gateway.txt); make audit lists what "
                       "this version exposes", aiohttp.__version__)
    else:
        logger.info("aiohttp %s", aiohttp.__version__)


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
    store, db = request.app[STORE], request.app[DB]
    try:
        pending: Optional[int] = await db(store.pending_count)
        database = "ok"
    except SQLAlchemyError:
        pending, database = None, "unavailable"
    try:
        status = await request.app[RASA].status(aiohttp.ClientTimeout(total=2))
        rasa = "ok" if status == 200 else f"HTTP {status}"
    except (aiohttp.ClientError, asyncio.TimeoutError):
        rasa = "unreachable"
    fanout = request.app[FANOUT].state()
    body: Dict[str, Any] = {
        "status": "ok" if database == "ok" and not fanout.startswith("degraded") else "degraded",
        "database": database, "rasa": rasa, "pending_messages": pending,
        "notices_in_flight": request.app[INBOX].notices_in_flight,
        "rasa_servers": request.app[RASA].servers_state(),
        "fanout": fanout,                      # degraded: answering still, other replicas' sockets get it later
        "channels": {name: adapter.enabled for name, adapter in request.app[CHANNELS].items()},
    }
    supervised = services_status(request.app[SETTINGS].services_status_file)
    if supervised is not None:                 # a restarting Rasa or action server: answers wait, none is lost
        body["services"] = supervised
        if any(isinstance(child, dict) and child.get("state") != "running" for child in supervised.values()):
            body["status"] = "degraded"
    return web.json_response(body, status=200 if database == "ok" else 503)


async def live(request: web.Request) -> web.Response:
    """For a load balancer's health check: this process answers. It asks nothing downstream, so that a busy Rasa
    or database does not take every gateway out of the pool at once (/healthz tells what is degraded)."""
    return web.json_response({"status": "ok"})


def services_status(path: str) -> Optional[Dict[str, Any]]:
    """What `serve` reports of its children (state, restarts, last exit), when it runs this gateway."""
    if not path:
        return None
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


class ReplicaNameTaken(RuntimeError):
    """Another live gateway process has this replica's name."""


async def init_app(settings: Optional[GatewaySettings] = None) -> web.Application:
    """The gateway: every service made here, once, and given to what uses it."""
    settings = settings or GatewaySettings.from_env()
    check_aiohttp()
    store = GatewayStore(settings.database_url, settings.replica_id, timedelta(seconds=settings.lease_seconds))
    db = DatabaseCalls()
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    rasa = RasaClient(settings.rasa_urls, settings.rasa_api_token, http, settings.rasa_timeout_seconds)
    handoffs = HandoffStore(store)
    # The account side (same database): website identity tokens, and what the console shows agents.
    accounts = AccountService(settings.shared, store=account_store(settings.database_url,
                                                                   settings.shared.data_encryption_key))
    channels: Dict[str, ChannelAdapter] = {}
    notices = NoticeSender(store, db, channels)
    feedback = FeedbackStore(store)
    worker = InboxWorker(settings, store, db, rasa, handoffs, channels, notices, feedback)
    inbox = Inbox(store, db, shared_rate_limiter(store, "sender", settings.rate_limit_per_minute, 60.0), notices,
                  worker)
    deps = ChannelDeps(settings, http, db, store, inbox.receive)
    widget = WidgetAdapter(deps, accounts, feedback)
    adapters: List[ChannelAdapter] = [widget, FacebookAdapter(deps), TwitterAdapter(deps)]
    for adapter in adapters:
        channels[adapter.name] = adapter

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[security_headers])
    app[STORE], app[RASA], app[DB], app[CHANNELS], app[INBOX] = store, rasa, db, channels, inbox
    app[SETTINGS], app[FANOUT] = settings, widget.fanout
    app.on_response_prepare.append(plain_server_header)  # type: ignore[arg-type]  # aiohttp 3.9's Signal typing
    app.router.add_get("/healthz", health)
    app.router.add_get("/livez", live)
    for adapter in channels.values():
        adapter.add_routes(app)
    Console(settings, store, db, AgentDirectory(store), handoffs, SuggestionLog(store), accounts, rasa,
            worker.wake, ReviewQueue(store)).add_routes(app)

    async def running(_app: web.Application) -> AsyncIterator[None]:
        if not await db(store.hold_replica_name):
            raise ReplicaNameTaken(f"GATEWAY_REPLICA_ID={settings.replica_id!r} is in use by a running gateway: give "
                                   "each gateway replica its own")
        logger.info("gateway replica %s, leases of %g s", settings.replica_id, settings.lease_seconds)
        for adapter in channels.values():
            await adapter.start()
            if adapter.enabled:
                logger.info("%s channel enabled", adapter.name)
            else:
                logger.warning(adapter.disabled_reason())
        work = asyncio.create_task(worker.run())
        watch = asyncio.create_task(rasa.watch())
        yield
        watch.cancel()
        await worker.stop()
        work.cancel()
        for adapter in channels.values():
            await adapter.close()
        inbox.close()
        await http.close()
        db.close()
        store.dispose()

    app.cleanup_ctx.append(running)
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
    if args.port and not os.environ.get("GATEWAY_REPLICA_ID", "").strip():    # named after the port it listens on
        settings = dataclasses.replace(settings, replica_id=f"{socket.gethostname()}:{args.port}")
    try:
        web.run_app(init_app(settings), host=args.host or settings.host, port=args.port or settings.port,
                    access_log_class=PathOnlyAccessLogger, print=lambda *_: None, shutdown_timeout=10)
    except ReplicaNameTaken as taken:
        print(f"Cannot start the gateway: {taken}", file=sys.stderr)
        return 2
    return 0
