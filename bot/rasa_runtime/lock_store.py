"""Rasa's lock store, chosen by REDIS_URL (selected in endpoints.yml): Rasa's Redis lock store when it is set, so
that several Rasa servers sharing one tracker store take turns on a conversation, and Rasa's in-memory one (one
Rasa process, the embedded default) when it is empty.

Rasa's Redis lock is known to race (RasaHQ/rasa#9213); it is the second line. The first is the gateway, which never
sends two messages of one conversation at once, from any of its replicas (bot/gateway/worker.py)."""
from __future__ import annotations

from typing import Any, Dict
from urllib.parse import unquote, urlsplit

from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

KEY_PREFIX = "ksos"          # keys are ksos:lock:<conversation id>


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


def lock_store_from_url(endpoint_config: EndpointConfig) -> LockStore:
    """What endpoints.yml's `lock_store` makes: Redis for a REDIS_URL, in memory without one."""
    url = (endpoint_config.url or "").strip()
    if not url:
        return InMemoryLockStore()
    return RedisLockStore(**redis_options(url))


class LockStoreFromUrl:
    """endpoints.yml's `type:` must name a class: constructing this one gives lock_store_from_url's store."""

    def __new__(cls, endpoint_config: EndpointConfig) -> LockStore:
        return lock_store_from_url(endpoint_config)
