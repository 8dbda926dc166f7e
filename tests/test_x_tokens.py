"""The X bot account's OAuth 2.0 tokens (bot/gateway/x_api.py) on SQLite and on the real local PostgreSQL:
encrypted at rest, one refresh claim at a time, and two gateway processes needing a fresh token at once
refreshing it exactly once (X's refresh tokens work once), against the local fake of X's token endpoint."""
import asyncio
import contextlib
from datetime import datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from bot.accounts.crypto import Cipher
from bot.gateway.config import GatewaySettings
from bot.gateway.models import ChannelToken
from bot.gateway.store import GatewayStore
from bot.gateway.x_api import REFRESH_LEASE, TokenStore, UserAuth, XAuthError
from conftest import DATA_ENCRYPTION_KEY, TWITTER_BOT_USER_ID, local_server
from fake_x import CLIENT_ID, CLIENT_SECRET, FakeX

T0 = datetime(2026, 12, 2, 8, 0, 0)


@contextlib.asynccontextmanager
async def fake_x_api(fake: FakeX):
    """The fake on a free loopback port; yields gateway settings that point at it."""
    app = web.Application()
    fake.add_routes(app)
    async with local_server(app) as base:
        yield GatewaySettings.from_env({"TWITTER_CLIENT_ID": CLIENT_ID, "TWITTER_CLIENT_SECRET": CLIENT_SECRET,
                                        "TWITTER_API_URL": base, "DATA_ENCRYPTION_KEY": DATA_ENCRYPTION_KEY,
                                        "SECRETS_FILE": "/nonexistent"})


@pytest.fixture
def tokens(account_store_url):
    store = GatewayStore(account_store_url)
    yield TokenStore(store, lambda: Cipher(DATA_ENCRYPTION_KEY))
    store.dispose()


def test_tokens_are_stored_encrypted_and_a_refresh_without_a_new_refresh_token_keeps_the_old(tokens):
    assert tokens.load() is None
    saved = tokens.save("4242", {"access_token": "access-1", "refresh_token": "refresh-1", "expires_in": 7200,
                                 "scope": "dm.read dm.write"}, now=T0)
    assert (saved.access_token, saved.refresh_token, saved.expires_at) == ("access-1", "refresh-1",
                                                                           T0 + timedelta(hours=2))
    with tokens.store.session() as session:
        row = session.scalars(select(ChannelToken)).one()
        assert "access-1" not in row.access_token and "refresh-1" not in row.refresh_token
    again = tokens.save("4242", {"access_token": "access-2", "expires_in": "oops"}, now=T0)
    assert (again.access_token, again.refresh_token, again.scope) == ("access-2", "refresh-1", "dm.read dm.write")
    assert again.expires_at == T0 + timedelta(seconds=7200)
    with pytest.raises(XAuthError):
        tokens.save("4242", {"token_type": "bearer"})
    other = tokens.save("999", {"access_token": "access-3"}, now=T0)          # another account: no old refresh
    assert other.refresh_token is None and other.user_id == "999"


def test_one_refresh_claim_at_a_time_and_a_lapsed_claim_can_be_taken(tokens):
    tokens.save("4242", {"access_token": "a", "refresh_token": "r"}, now=T0)
    assert tokens.claim_refresh(now=T0)
    assert not tokens.claim_refresh(now=T0 + timedelta(seconds=5))
    assert tokens.claim_refresh(now=T0 + REFRESH_LEASE + timedelta(seconds=1))   # the holder died
    tokens.release_refresh()
    assert tokens.claim_refresh(now=T0 + REFRESH_LEASE + timedelta(seconds=2))
    tokens.save("4242", {"access_token": "b"})                                   # saving ends the claim
    assert tokens.claim_refresh()


@pytest.mark.integration
def test_two_processes_needing_a_new_token_at_once_refresh_it_once(tokens):
    """Each UserAuth stands for one gateway process (own lock, own HTTP session), sharing the database."""
    fake = FakeX(TWITTER_BOT_USER_ID)

    async def run():
        async with fake_x_api(fake) as settings:
            tokens.save(TWITTER_BOT_USER_ID, {**fake.issue(), "expires_in": 60})   # inside the refresh margin
            db = lambda function, *args: asyncio.get_running_loop().run_in_executor(None, function, *args)  # noqa
            async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
                processes = [UserAuth(settings, tokens, first, db), UserAuth(settings, tokens, second, db)]
                return await asyncio.gather(*(process.headers("POST", "/x") for process in processes * 3))

    headers = asyncio.run(run())
    fresh = tokens.load()
    assert {h["Authorization"] for h in headers} == {f"Bearer {fresh.access_token}"}
    assert len(fake.token_grants("refresh_token")) == 1
    assert not fresh.expiring()


@pytest.mark.integration
def test_a_refused_refresh_token_says_what_to_do(tokens):
    fake = FakeX(TWITTER_BOT_USER_ID)

    async def run():
        async with fake_x_api(fake) as settings:
            tokens.save(TWITTER_BOT_USER_ID, {"access_token": "old", "refresh_token": "used-elsewhere",
                                              "expires_in": 1})
            async with aiohttp.ClientSession() as session:
                with pytest.raises(XAuthError) as refused:
                    await UserAuth(settings, tokens, session).headers("POST", "/x")
            return refused.value

    problem = asyncio.run(run())
    assert "HTTP 400" in str(problem) and "invalid" in str(problem)
    assert tokens.claim_refresh()                                              # the claim was given back
