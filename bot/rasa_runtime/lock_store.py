"""Rasa's lock store, chosen by REDIS_URL (selected in endpoints.yml): Rasa's Redis lock store when it is set, so
that several Rasa servers sharing one tracker store take turns on a conversation, and Rasa's in-memory one (one
Rasa process, the embedded default) when it is empty.

Rasa's Redis lock is known to race (RasaHQ/rasa#9213); it is the second line. The first is the gateway, which never
sends two messages of one conversation at once, from any of its replicas (bot/gateway/worker.py). So while Redis is
unreachable, a Rasa server keeps answering with its tickets in its own memory (`RedisLockStoreWithFallback`)
instead of failing every turn: the gateway's one-at-a-time guarantee still holds, and the outage is logged once
when it starts and once when it ends."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Optional, TypeVar
from urllib.parse import unquote, urlsplit

from rasa.core.lock import TicketLock
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

KEY_PREFIX = "ksos"          # keys are ksos:lock:<conversation id>
SOCKET_TIMEOUT_SECONDS = 2.0  # a Redis that stopped answering holds a turn this long, not Rasa's default 10 s
RETRY_REDIS_SECONDS = 1.0     # while Redis is away, it is tried again at most this often (not on every call)
Result = TypeVar("Result")


def redis_options(url: str) -> Dict[str, Any]:
    """RedisLockStore's arguments from a redis:// or rediss:// URL (user, password, host, port, database)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"REDIS_URL must start with redis:// or rediss://, not {parts.scheme or url!r}")
    database = parts.path.strip("/")
    return {
        "host": parts.hostname or "localhost", "port": parts.port or 6379,
        "db": int(database) if database else 0,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "use_ssl": parts.scheme == "rediss", "key_prefix": KEY_PREFIX,
    }


class RedisLockStoreWithFallback(RedisLockStore):
    """Rasa's Redis lock store that keeps working while Redis is unreachable: each call that cannot reach Redis
    is served from this process's memory, and Redis is tried again at most once a second. Tickets issued in memory
    stay there; a conversation whose lock lived in Redis when it went away starts afresh in memory (the gateway
    sends it one message at a time anyway)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, **options: Any) -> None:
        super().__init__(socket_timeout=SOCKET_TIMEOUT_SECONDS, **options)
        self.local = InMemoryLockStore()
        self.clock = clock
        self.down_since: Optional[float] = None
        self.next_try = 0.0

    @property
    def redis_reachable(self) -> bool:
        return self.down_since is None

    def _either(self, in_redis: Callable[[], Result], in_memory: Callable[[], Result]) -> Result:
        if self.down_since is not None and self.clock() < self.next_try:
            return in_memory()
        try:
            result = in_redis()
        except (RedisConnectionError, RedisTimeoutError) as error:
            if self.down_since is None:
                self.down_since = self.clock()
                logger.warning("lock store: Redis is unreachable (%s); conversation locks are kept in this "
                               "process's memory until it is back", error)
            self.next_try = self.clock() + RETRY_REDIS_SECONDS
            return in_memory()
        if self.down_since is not None:
            logger.warning("lock store: Redis is back after %.1f s; conversation locks are in Redis again",
                           self.clock() - self.down_since)
            self.down_since = None
        return result

    def get_lock(self, conversation_id: str) -> Optional[TicketLock]:
        local = self.local.get_lock(conversation_id)
        if local is not None:           # issued while Redis was away: served from here until it is done
            return local
        return self._either(lambda: super(RedisLockStoreWithFallback, self).get_lock(conversation_id),
                            lambda: None)

    def save_lock(self, lock: TicketLock) -> None:
        if self.local.get_lock(lock.conversation_id) is not None:
            self.local.save_lock(lock)
            return
        self._either(lambda: super(RedisLockStoreWithFallback, self).save_lock(lock),
                     lambda: self.local.save_lock(lock))

    def delete_lock(self, conversation_id: str) -> None:
        if self.local.get_lock(conversation_id) is not None:
            self.local.delete_lock(conversation_id)
            return
        self._either(lambda: super(RedisLockStoreWithFallback, self).delete_lock(conversation_id), lambda: None)


def lock_store_from_url(endpoint_config: EndpointConfig) -> LockStore:
    """What endpoints.yml's `lock_store` makes: Redis (with the in-memory fallback) for a REDIS_URL, in memory
    without one."""
    url = (endpoint_config.url or "").strip()
    if not url:
        return InMemoryLockStore()
    return RedisLockStoreWithFallback(**redis_options(url))


class LockStoreFromUrl:
    """endpoints.yml's `type:` must name a class: constructing this one gives lock_store_from_url's store."""

    def __new__(cls, endpoint_config: EndpointConfig) -> LockStore:
        return lock_store_from_url(endpoint_config)
