"""Rasa's lock store from REDIS_URL (bot/rasa_runtime/lock_store.py): in memory without it, Rasa's Redis lock store
on the real local Redis with it."""
import uuid

import pytest
from rasa.core.lock_store import InMemoryLockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from bot.rasa_runtime.lock_store import LockStoreFromUrl, lock_store_from_url, redis_options
from bot.settings import InvalidSettings, load_settings

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
    assert isinstance(store, RedisLockStore)
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
