"""Rasa's lock store from REDIS_URL (bot/rasa_runtime/lock_store.py): in memory without it, Rasa's Redis lock store
on the real local Redis with it."""
import asyncio
import logging
import shutil
import uuid

import pytest
from rasa.core.lock_store import InMemoryLockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from bot.rasa_runtime.lock_store import (
    LockStoreFromUrl,
    RedisLockStoreWithFallback,
    lock_store_from_url,
    redis_options,
)
from bot.settings import InvalidSettings, load_settings
from gateway_helpers import OwnRedis

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def test_no_redis_url_is_one_process_in_memory():
    assert isinstance(LockStoreFromUrl(EndpointConfig(url="")), InMemoryLockStore)     # as endpoints.yml makes it
    assert isinstance(lock_store_from_url(EndpointConfig(url="")), InMemoryLockStore)
    assert isinstance(lock_store_from_url(EndpointConfig(url=None)), InMemoryLockStore)


def test_a_redis_url_gives_every_part_to_rasas_redis_lock_store():
    assert redis_options("rediss://ksos:p%40ss@cache.internal:6380/3") == {
        "host": "cache.internal", "port": 6380, "db": 3, "username": "ksos", "password": "p@ss", "use_ssl": True,
        "key_prefix": "ksos"}
    assert redis_options("redis://127.0.0.1")["port"] == 6379 and redis_options("redis://h/")["db"] == 0
    with pytest.raises(ValueError):
        redis_options("http://127.0.0.1:6379")


def test_a_bad_redis_url_is_named_at_start():
    with pytest.raises(InvalidSettings, match="REDIS_URL='localhost:6379'"):
        load_settings({"REDIS_URL": "localhost:6379", "SECRETS_FILE": "/nonexistent"})
    assert load_settings({"SECRETS_FILE": "/nonexistent"}).rasa_environment()["REDIS_URL"] == ""


@pytest.mark.integration
def test_tickets_live_in_the_real_redis_under_our_prefix():
    import redis

    store = lock_store_from_url(EndpointConfig(url=LOCAL_REDIS))
    assert isinstance(store, RedisLockStoreWithFallback) and isinstance(store, RedisLockStore)
    conversation = f"facebook:{uuid.uuid4().hex}"
    ticket = store.issue_ticket(conversation)
    client = redis.Redis.from_url(LOCAL_REDIS)
    try:
        assert client.exists(f"ksos:lock:{conversation}")
        other = lock_store_from_url(EndpointConfig(url=LOCAL_REDIS))          # another Rasa server sees it
        assert other.get_lock(conversation).is_locked(ticket + 1)              # a later turn waits for this one
    finally:
        client.delete(f"ksos:lock:{conversation}")
        client.close()


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")
def test_while_redis_is_away_turns_take_their_tickets_in_memory_and_redis_is_used_again_once_back(tmp_path, caplog):
    redis = OwnRedis(tmp_path)
    redis.start()
    now = [0.0]
    store = RedisLockStoreWithFallback(clock=lambda: now[0], **redis_options(redis.url))
    conversation = f"widget:{uuid.uuid4().hex}"

    async def one_turn() -> None:
        async with store.lock(conversation, lock_lifetime=60):
            pass

    try:
        asyncio.run(one_turn())
        assert store.redis_reachable
        first = store.issue_ticket(conversation)
        assert store.red.exists(f"ksos:lock:{conversation}")             # in Redis while it is there
        store.cleanup(conversation, first)
        redis.stop()
        with caplog.at_level(logging.WARNING, logger="bot.rasa_runtime.lock_store"):
            asyncio.run(one_turn())                                       # Redis away: the turn still runs
            waiting = store.issue_ticket(conversation)
            later = store.issue_ticket(conversation)
            assert not store.redis_reachable
            assert store.get_lock(conversation).is_locked(later)          # still one turn at a time, in memory
            store.cleanup(conversation, waiting)
            assert not store.get_lock(conversation).is_locked(later)
            store.cleanup(conversation, later)
            assert store.local.get_lock(conversation) is None             # done: nothing left behind
            redis.start()                                                 # back, same port
            asyncio.run(one_turn())
            assert not store.redis_reachable                              # not tried again within the second
            now[0] += 1.5
            ticket = store.issue_ticket(conversation)
            assert store.redis_reachable and store.red.exists(f"ksos:lock:{conversation}")
            store.cleanup(conversation, ticket)
        outage = [r.getMessage() for r in caplog.records if r.name == "bot.rasa_runtime.lock_store"]
        assert len(outage) == 2 and "unreachable" in outage[0] and "back after" in outage[1]   # once each way
    finally:
        redis.stop()
