"""Two gateway replicas on one PostgreSQL database, in front of the real assistant: one is killed with -9 while
Messenger customers are being answered; the other takes over its leases and answers every message, once to
Rasa, in order per conversation, and once to the customer: a reply Meta accepted whose delivery the dead replica
had not yet recorded is found in the page's conversation (Graph API) and not sent again."""
import json
import os
import signal
import time
import uuid
from datetime import datetime, timedelta
from typing import Dict, List

import pytest
from fake_platforms import running_platforms
from sqlalchemy import create_engine, text

from conftest import (
    FACEBOOK_APP_SECRET,
    FACEBOOK_VERIFY_TOKEN,
    GatewayProcess,
    free_port,
    gateway_environment,
    postgres_schema,
)
from gateway_helpers import facebook_post, http, messaging, page_body, wait_for

pytestmark = pytest.mark.integration

QUESTIONS = ["how much is the starter plan?", "can I pay with boost?", "berapa harga pelan standard?"]
ROTATIONS = [QUESTIONS[i:] + QUESTIONS[:i] for i in range(len(QUESTIONS))]
CONVERSATIONS = 12
LEASE_SECONDS = 3


platforms = pytest.fixture(scope="module", name="platforms")(running_platforms)


@pytest.fixture
def replicas(assistant, test_settings, platforms, tmp_path):
    with postgres_schema() as database_url:
        env = gateway_environment(
            test_settings, database_url, assistant.base_url,
            FACEBOOK_VERIFY_TOKEN=FACEBOOK_VERIFY_TOKEN, FACEBOOK_APP_SECRET=FACEBOOK_APP_SECRET,
            FACEBOOK_PAGE_ACCESS_TOKEN="test-page-token", FACEBOOK_GRAPH_URL=f"{platforms.url}/v21.0",
            GATEWAY_RATE_LIMIT_PER_MINUTE="0", GATEWAY_LEASE_SECONDS=str(LEASE_SECONDS),
        )
        gateways = [GatewayProcess({**env, "GATEWAY_REPLICA_ID": name}, tmp_path / f"{name}.log", free_port())
                    for name in ("replica-a", "replica-b")]
        for gateway in gateways:
            gateway.start()
        try:
            yield gateways, database_url
        finally:
            for gateway in gateways:
                gateway.stop()


def texts_to(platforms, sender: str) -> List[str]:
    return [message["text"] for message in platforms.messages_to(sender)]


def settled(platforms, sender: str, at_least: int, quiet: float = 1.0, timeout: float = 60) -> List[str]:
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        now = texts_to(platforms, sender)
        if now != last:
            last, since = now, time.monotonic()
        elif len(now) >= at_least and time.monotonic() - since >= quiet:
            return now
        time.sleep(0.1)
    raise AssertionError(f"{sender}: {last}")


def idle(gateway) -> bool:
    health = json.loads(http("GET", gateway.url + "/healthz")[1])
    return health["pending_messages"] == 0 and health["notices_in_flight"] == 0


def is_subsequence(expected: List[str], received: List[str]) -> bool:
    found = iter(received)
    return all(any(text == got for got in found) for text in expected)


def test_a_killed_replica_loses_nothing_and_its_conversations_are_finished_in_order(replicas, platforms, assistant):
    (replica_a, replica_b), database_url = replicas
    # What each order of questions is answered with, through the gateway (one conversation each, replica b).
    expected: Dict[int, List[str]] = {}
    for index, questions in enumerate(ROTATIONS):
        sender = str(uuid.uuid4().int)[:15]
        for question in questions:
            count = len(texts_to(platforms, sender))
            facebook_post(replica_b, page_body(messaging(sender, question)))
            settled(platforms, sender, count + 1)
        expected[index] = texts_to(platforms, sender)

    senders = [str(uuid.uuid4().int)[:15] for _ in range(CONVERSATIONS)]
    first_round = time.monotonic()
    for number, sender in enumerate(senders):               # everybody's first message, to either replica
        facebook_post((replica_a, replica_b)[number % 2], page_body(messaging(sender, ROTATIONS[number % 3][0])))
    engine = create_engine(database_url, future=True)

    def held_by_a() -> int:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM gateway_inbox WHERE claimed_by = 'replica-a'")
                                      ).scalar()

    wait_for(lambda: held_by_a() >= 2, timeout=60, interval=0.01)
    os.kill(replica_a.process.pid, signal.SIGKILL)           # mid-work: it holds messages it is answering
    killed = time.monotonic()
    held = held_by_a()
    engine.dispose()
    assert held >= 1
    for round_number in (1, 2):                              # the rest arrive at the replica still alive
        for number, sender in enumerate(senders):
            facebook_post(replica_b, page_body(messaging(sender, ROTATIONS[number % 3][round_number])))

    wait_for(lambda: all(len(texts_to(platforms, sender)) >= len(expected[number % 3])
                         for number, sender in enumerate(senders)), timeout=120, interval=0.1)
    recovered = time.monotonic() - killed
    wait_for(lambda: idle(replica_b), timeout=30)
    received = {sender: texts_to(platforms, sender) for sender in senders}
    doubles = 0
    for number, sender in enumerate(senders):
        wanted, got = expected[number % 3], received[sender]
        assert is_subsequence(wanted, got), (sender, wanted, got)        # nothing lost, in order
        doubles += len(got) - len(wanted)
        user_turns = [e for e in assistant.tracker(f"facebook:{sender}")["events"] if e["event"] == "user"]
        assert len(user_turns) == 3, sender                               # each message reached Rasa once
    assert doubles == 0, (doubles, held)
    print(f"\nkill -9 of one of two gateway replicas: {CONVERSATIONS} conversations x 3 messages, "
          f"{held} message(s) held by the dead replica, all answered {recovered:.1f} s after the kill "
          f"(lease {LEASE_SECONDS} s; first round posted {killed - first_round:.1f} s before), "
          f"doubled replies: {doubles}")


def test_a_reply_that_reached_messenger_before_its_gateway_died_is_not_sent_again(platforms, test_settings,
                                                                                   tmp_path):
    """The dead replica had sent conversation A's first reply (Meta has it) but not recorded it; B's it had not
    sent. The replica taking over asks Meta's Conversations API and sends A only its second reply, B both."""
    from bot.clock import now_utc
    from bot.gateway.messages import InboundMessage, Reply
    from bot.gateway.store import GatewayStore

    with postgres_schema() as database_url:
        dead = GatewayStore(database_url, "dead-replica", timedelta(seconds=2))
        senders = {name: str(uuid.uuid4().int)[:15] for name in ("sent", "unsent")}
        started = now_utc() - timedelta(seconds=30)
        for name, sender in senders.items():
            row_id = dead.record_inbound(InboundMessage("facebook", sender, f"m-{name}", text="hi"),
                                         now=started).inbox_id
            dead.claim(row_id, now=started)
            dead.save_replies(row_id, [Reply(f"first to {name}"), Reply(f"second to {name}")], now=started)
        http("POST", f"{platforms.url}/v21.0/me/messages", json.dumps(
            {"recipient": {"id": senders["sent"]}, "messaging_type": "RESPONSE",
             "message": {"text": "first to sent"}}).encode(), {"Content-Type": "application/json"})
        dead.dispose()                                                  # ... and died
        env = gateway_environment(
            test_settings, database_url, f"http://127.0.0.1:{free_port()}",
            FACEBOOK_VERIFY_TOKEN=FACEBOOK_VERIFY_TOKEN, FACEBOOK_APP_SECRET=FACEBOOK_APP_SECRET,
            FACEBOOK_PAGE_ACCESS_TOKEN="test-page-token", FACEBOOK_GRAPH_URL=f"{platforms.url}/v21.0",
            GATEWAY_REPLICA_ID="taking-over")
        gateway = GatewayProcess(env, tmp_path / "gateway.log", free_port()).start()
        try:
            for sender in senders.values():
                wait_for(lambda s=sender: len(texts_to(platforms, s)) >= 2, timeout=30)
            wait_for(lambda: idle(gateway), timeout=30)
        finally:
            gateway.stop()
    assert texts_to(platforms, senders["sent"]) == ["first to sent", "second to sent"]       # not twice
    assert texts_to(platforms, senders["unsent"]) == ["first to unsent", "second to unsent"]
    log = gateway.log()
    assert f"(facebook:{senders['sent']}): reply 1 of 2 had reached the customer before the interruption" in log
    assert f"(facebook:{senders['unsent']}): reply 1 of 2 had reached" not in log


def test_without_the_conversations_api_the_reply_is_sent_and_may_arrive_twice(test_settings):
    """A page token without the permission to read conversations: Meta answers 403, the check says it cannot
    tell (None), and the worker sends the reply (at least once, never lost)."""
    import asyncio

    from aiohttp import ClientSession, web

    from bot.gateway.adapter import ChannelDeps
    from bot.gateway.channels.facebook import FacebookAdapter
    from bot.gateway.config import GatewaySettings
    from bot.gateway.messages import Reply
    from conftest import TEST_SECRETS, local_server

    async def refused(_request):
        return web.json_response({"error": {"message": "(#10) Requires pages_messaging permission", "code": 10}},
                                 status=403)

    async def scenario():
        app = web.Application()
        app.router.add_get("/v21.0/me/conversations", refused)
        async with local_server(app) as url, ClientSession() as http_session:
            settings = GatewaySettings.from_env({**TEST_SECRETS, "SECRETS_FILE": "/nonexistent",
                                                 "FACEBOOK_GRAPH_URL": f"{url}/v21.0",
                                                 "FACEBOOK_PAGE_ACCESS_TOKEN": "token"})
            adapter = FacebookAdapter(ChannelDeps(settings, http_session, None, None, None))
            return await adapter.already_delivered("123", Reply("hello"), datetime(2026, 1, 1))

    assert asyncio.run(scenario()) is None


def test_x_shows_whether_an_interrupted_reply_went_out(tmp_path):
    """The DM conversation's events (X API v2) tell the replica taking over whether the bot account already sent
    the reply: yes for one it sent after the reply was saved, no for one it never sent or sent before."""
    import asyncio

    from aiohttp import ClientSession, web

    from bot.clock import now_utc
    from bot.gateway.adapter import ChannelDeps
    from bot.gateway.calls import DatabaseCalls
    from bot.gateway.channels.twitter import TwitterAdapter
    from bot.gateway.config import GatewaySettings
    from bot.gateway.messages import Reply
    from bot.gateway.store import GatewayStore
    from conftest import TEST_SECRETS, TWITTER_BOT_USER_ID, local_server
    from fake_x import FakeX

    fake = FakeX(TWITTER_BOT_USER_ID, consumer_key="test-consumer-key")
    store = GatewayStore(f"sqlite:///{tmp_path / 'gateway.db'}")

    async def scenario():
        app = web.Application()
        fake.add_routes(app)
        async with local_server(app) as url, ClientSession() as http_session:
            settings = GatewaySettings.from_env({
                **TEST_SECRETS, "SECRETS_FILE": "/nonexistent", "DATABASE_URL": store.url, "TWITTER_API_URL": url,
                "TWITTER_CONSUMER_KEY": "test-consumer-key", "TWITTER_CONSUMER_SECRET": "consumer-secret",
                "TWITTER_ACCESS_TOKEN": "access-token", "TWITTER_ACCESS_TOKEN_SECRET": "access-secret",
                "TWITTER_BOT_USER_ID": TWITTER_BOT_USER_ID})
            db = DatabaseCalls()
            adapter = TwitterAdapter(ChannelDeps(settings, http_session, db, store, None))
            saved = now_utc()
            before = await adapter.already_delivered("777", Reply("Our plans are …"), saved)

            async def record():
                return {}

            await adapter.deliver("777", Reply("Our plans are …"), record)        # then the gateway died
            after = await adapter.already_delivered("777", Reply("Our plans are …"), saved)
            other = await adapter.already_delivered("777", Reply("Something else"), saved)
            later = await adapter.already_delivered("777", Reply("Our plans are …"),
                                                    saved + timedelta(minutes=10))  # an older copy is not it
            db.close()
            return before, after, other, later

    try:
        assert asyncio.run(scenario()) == (False, True, False, False)
    finally:
        store.dispose()
