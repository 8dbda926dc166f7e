"""Frames for widget sockets held by another gateway replica, through Redis pub/sub (REDIS_URL).

A widget's WebSocket is open on one replica; the reply to its customer may be worked out by another (whichever
claimed the message). Every frame pushed to a session goes to the sockets this replica holds, and is published
on one Redis channel; every replica listens and passes on the frames for the sessions it holds. The database
stays the record (the transcript is the widget's mailbox); Redis only carries the push, so losing it loses
nothing: while it is unreachable the replicas keep answering (each still pushes to its own sockets, /healthz says
"degraded"), and when it is back each replica sends its sockets what the transcript gained meanwhile
(`on_reconnect`), which the widget places by its sequence number and shows once.

Why Redis and not PostgreSQL's LISTEN/NOTIFY: Redis is already there for Rasa's lock store; a listener needs a
connection of its own held open and read asynchronously, which the gateway's synchronous SQLAlchemy (in a thread
pool) does not give; and a frame published without a transaction is what a push is. What must not be lost is in
PostgreSQL either way.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable, Dict, Optional

from bot.backoff import exponential_delay

logger = logging.getLogger(__name__)

CHANNEL = "ksos:widget:frames"
PUBLISH_TIMEOUT = 1.0

LocalPush = Callable[[str, Dict[str, Any]], Awaitable[None]]


class Fanout:
    """Given REDIS_URL (empty: one replica, nothing to do), this replica's name, how to push a frame to the local
    sockets of a session, and what to do once Redis is back after an outage."""

    def __init__(self, redis_url: str, replica: str, push_local: LocalPush,
                 on_reconnect: Callable[[], Awaitable[None]]):
        self.redis_url, self.replica = redis_url, replica
        self.push_local, self.on_reconnect = push_local, on_reconnect
        self.connected = False
        self._client: Any = None
        self._task: Optional[asyncio.Task] = None
        self._missed = False                    # a frame could not be published, or the listener was cut off

    @property
    def enabled(self) -> bool:
        return bool(self.redis_url)

    def state(self) -> str:
        if not self.enabled:
            return "off"
        return "ok" if self.connected else "degraded: Redis unreachable, no push across replicas"

    async def start(self) -> None:
        if not self.enabled:
            return
        import redis.asyncio as redis

        self._client = redis.Redis.from_url(self.redis_url, socket_timeout=PUBLISH_TIMEOUT,
                                            socket_connect_timeout=PUBLISH_TIMEOUT)
        self._task = asyncio.create_task(self._listen())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        if self._client is not None:
            await closed(self._client)

    async def publish(self, session: str, frame: Dict[str, Any]) -> None:
        """For the other replicas' sockets of `session` (this replica's own got it already)."""
        if self._client is None:
            return
        if not self.connected:            # Redis is away: no wait per frame; the listener catches up once it is back
            self._missed = True
            return
        message = json.dumps({"from": self.replica, "session": session, "frame": frame})
        try:
            await asyncio.wait_for(self._client.publish(CHANNEL, message), PUBLISH_TIMEOUT)
        except Exception as error:  # noqa: BLE001 - a timeout, or any of redis-py's connection errors
            if self.connected:
                logger.warning("fanout: Redis unreachable (%s); pushing to this replica's sockets only",
                               type(error).__name__)
            self.connected = False
            self._missed = True

    async def _listen(self) -> None:
        failures = 0
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                if failures or self._missed:
                    logger.info("fanout: Redis is back; sending each socket what it missed")
                    self._missed = False
                    await self.on_reconnect()
                self.connected, failures = True, 0
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        await self._client.ping()            # a quiet channel: is the connection still there?
                        continue
                    await self._deliver(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any connection failure: retry with backoff
                if self.connected or not failures:
                    logger.warning("fanout: Redis unreachable (%s); retrying", type(error).__name__)
                self.connected, self._missed = False, True
                failures += 1
                await asyncio.sleep(exponential_delay(failures - 1, 0.5, 5.0))
            finally:
                try:
                    await closed(pubsub)
                except Exception:  # noqa: BLE001 - the connection is gone anyway
                    pass

    async def _deliver(self, data: Any) -> None:
        try:
            message = json.loads(data)
        except (TypeError, ValueError):
            return
        if not isinstance(message, dict) or message.get("from") == self.replica:
            return
        session, frame = message.get("session"), message.get("frame")
        if isinstance(session, str) and isinstance(frame, dict):
            await self.push_local(session, frame)


async def closed(connection: Any) -> None:
    """Close a redis-py asyncio client or pub/sub (aclose from redis 5, close before)."""
    close = getattr(connection, "aclose", None) or connection.close
    await close()
