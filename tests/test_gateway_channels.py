"""The gateway as a running process, with the real assistant behind it and local fakes of Meta's Graph API and
X's API v2 (aiohttp servers, tests/fake_x.py) in front: handshakes, signatures, batches, echoes, replays, huge and
garbage bodies, Rasa down then up, a restart with a pending inbox, platform retries, the rate limit and the widget
socket; X Activity API deliveries in both payload shapes, numbered options, X's rate limit, token refresh and
`python -m bot x authorize/setup/status`; and the human handoff on Messenger and X with an agent on the console's
API."""
import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Callable, Dict, List, Optional, Tuple

import aiohttp
import pytest
from aiohttp import web
from fake_platforms import running_platforms
from sqlalchemy import delete, select

from bot.accounts.crypto import Cipher
from bot.gateway.models import AnswerFeedback, ChannelToken
from bot.gateway.notices import notice
from bot.gateway.store import GatewayStore
from bot.gateway.x_api import TokenStore
from bot.paths import REPO_ROOT
from conftest import (
    FACEBOOK_APP_SECRET,
    FACEBOOK_VERIFY_TOKEN,
    TWITTER_BOT_USER_ID,
    TWITTER_CONSUMER_SECRET,
    ConsoleClient,
    GatewayProcess,
    add_agent,
    free_port,
    gateway_environment,
)
from fake_x import APP_BEARER as X_APP_BEARER
from fake_x import CLIENT_ID as X_CLIENT_ID
from fake_x import CLIENT_SECRET as X_CLIENT_SECRET
from fake_x import REDIRECT_URI as X_REDIRECT_URI
from gateway_helpers import (
    bot_texts,
    dm_body,
    dm_event,
    facebook_post,
    http,
    messaging,
    page_body,
    twitter_post,
    v2_dm,
    wait_for,
    widget_exchange,
    wrapped_dms,
    x_post,
    xaa,
)

pytestmark = pytest.mark.integration

RATE_LIMIT = 8


# --- local fakes ----------------------------------------------------------------------------------------------

class RasaSwitch:
    """A reverse proxy to the real Rasa that can be switched off: while off, nothing listens on its port
    (connection refused), exactly like a stopped Rasa."""

    def __init__(self, loop, target: str):
        self.loop, self.target, self.port = loop, target, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.runner: Optional[web.AppRunner] = None
        self.session: Optional[aiohttp.ClientSession] = None

    async def _forward(self, request: web.Request) -> web.Response:
        headers = {name: request.headers[name] for name in ("Content-Type", "Authorization") if name in request.headers}
        async with self.session.request(request.method, self.target + request.path_qs, data=await request.read(),
                                        headers=headers) as response:
            return web.Response(status=response.status, body=await response.read(),
                                content_type=response.content_type)

    async def _up(self):
        self.session = aiohttp.ClientSession()
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _down(self):
        await self.runner.cleanup()
        await self.session.close()
        self.runner = None

    def up(self):
        if self.runner is None:
            self.loop.run(self._up())

    def down(self):
        if self.runner is not None:
            self.loop.run(self._down())


platforms = pytest.fixture(scope="module", name="platforms")(running_platforms)


@pytest.fixture(scope="module")
def rasa_switch(background_loop, assistant):
    switch = RasaSwitch(background_loop, assistant.base_url)
    switch.up()
    yield switch
    switch.down()


@pytest.fixture(scope="module")
def gateway(test_settings, platforms, rasa_switch, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gateway-channels")
    env = gateway_environment(
        test_settings, f"sqlite:///{folder / 'gateway.db'}", rasa_switch.url,
        FACEBOOK_VERIFY_TOKEN=FACEBOOK_VERIFY_TOKEN, FACEBOOK_APP_SECRET=FACEBOOK_APP_SECRET,
        FACEBOOK_PAGE_ACCESS_TOKEN="test-page-token", FACEBOOK_GRAPH_URL=f"{platforms.url}/v21.0",
        TWITTER_CONSUMER_KEY="test-consumer-key", TWITTER_CONSUMER_SECRET=TWITTER_CONSUMER_SECRET,
        TWITTER_ACCESS_TOKEN="test-access-token", TWITTER_ACCESS_TOKEN_SECRET="test-access-secret",
        TWITTER_CLIENT_ID=X_CLIENT_ID, TWITTER_CLIENT_SECRET=X_CLIENT_SECRET, TWITTER_BEARER_TOKEN=X_APP_BEARER,
        TWITTER_REDIRECT_URI=X_REDIRECT_URI, TWITTER_AUTHORIZE_URL=f"{platforms.url}/i/oauth2/authorize",
        TWITTER_BOT_USER_ID=TWITTER_BOT_USER_ID, TWITTER_API_URL=platforms.url,
        # The Account Activity API's bodies are read until 1 January 2027 by default; these tests keep reading
        # them whatever the date (test_gateway_units checks the default and the refusal after it).
        TWITTER_AAA_UNTIL="2100-01-01",
        GATEWAY_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT), WIDGET_ALLOWED_ORIGINS="https://shop.example.my",
    )
    process = GatewayProcess(env, folder / "gateway.log", free_port())
    process.tokens = TokenStore(GatewayStore(env["DATABASE_URL"]), lambda: Cipher(test_settings.data_encryption_key))
    process.tokens.save(TWITTER_BOT_USER_ID, platforms.x.issue())      # as `python -m bot x authorize` leaves it
    process.start()
    yield process
    process.stop()
    process.tokens.store.dispose()


# --- helpers --------------------------------------------------------------------------------------------------

def wait_for_replies(platforms, sender: str, at_least: int = 1, quiet: float = 1.5, timeout: float = 40) -> List[Dict]:
    """The messages sent to `sender` once at least `at_least` arrived and no more came for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    count, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        messages = platforms.messages_to(sender)
        if len(messages) != count:
            count, stable_since = len(messages), time.monotonic()
        elif count >= at_least and time.monotonic() - stable_since >= quiet:
            return messages
        time.sleep(0.1)
    raise AssertionError(f"replies to {sender} did not settle: {count}")


def idle(gateway, timeout: float = 30) -> None:
    """Until the gateway has no message left to answer and no notice in flight (/healthz, twice in a row): the
    point after which nothing more may be sent."""
    deadline, quiet_polls = time.monotonic() + timeout, 0
    while quiet_polls < 2:
        assert time.monotonic() < deadline, "the gateway did not become idle"
        health = json.loads(http("GET", gateway.url + "/healthz")[1])
        quiet = health.get("pending_messages") == 0 and health.get("notices_in_flight") == 0
        quiet_polls = quiet_polls + 1 if quiet else 0
        time.sleep(0.2)


def new_sender() -> str:
    return str(uuid.uuid4().int)[:16]


# --- handshakes and signatures --------------------------------------------------------------------------------

def test_facebook_verification_handshake(gateway):
    query = f"hub.mode=subscribe&hub.verify_token={FACEBOOK_VERIFY_TOKEN}&hub.challenge=1158201444"
    assert http("GET", f"{gateway.url}/webhooks/facebook?{query}") == (200, "1158201444")
    wrong = "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444"
    assert http("GET", f"{gateway.url}/webhooks/facebook?{wrong}")[0] == 403
    assert FACEBOOK_VERIFY_TOKEN not in gateway.log()          # query strings stay out of the access log


def test_x_crc_handshake_answers_with_the_oauth2_client_secret_on_both_paths(gateway):
    expected = base64.b64encode(hmac.new(X_CLIENT_SECRET.encode(), b"abc123", hashlib.sha256).digest()).decode()
    for path in ("/webhooks/x", "/webhooks/twitter"):
        status, body = http("GET", f"{gateway.url}{path}?crc_token=abc123")
        assert status == 200 and json.loads(body) == {"response_token": "sha256=" + expected}
        assert http("GET", f"{gateway.url}{path}")[0] == 400


def test_forged_signatures_are_refused_and_nothing_is_answered(gateway, platforms):
    sender = new_sender()
    assert facebook_post(gateway, page_body(messaging(sender, "hello")), secret="forged")[0] == 403
    unsigned = json.dumps(page_body(messaging(sender, "hi"))).encode()
    status, _ = http("POST", gateway.url + "/webhooks/facebook", unsigned,
                     {"Content-Type": "application/json"})
    assert status == 403
    assert twitter_post(gateway, dm_body(dm_event(sender, "hello")), secret="forged")[0] == 403
    assert x_post(gateway, xaa(v2_dm(sender, "hello")), secret="forged")[0] == 403
    # Each header with its own secret: the consumer secret under the OAuth 2.0 header is a forgery too.
    assert x_post(gateway, xaa(v2_dm(sender, "hello")), secret=TWITTER_CONSUMER_SECRET)[0] == 403
    assert twitter_post(gateway, xaa(v2_dm(sender, "hello")), secret=X_CLIENT_SECRET)[0] == 403
    idle(gateway)
    assert platforms.messages_to(sender) == []


def test_huge_and_garbage_bodies(gateway):
    huge = b'{"object":"page","entry":[' + b" " * (10 * 1024 * 1024) + b"]}"
    status, _ = facebook_post(gateway, None, raw=huge)
    assert status == 413
    assert facebook_post(gateway, None, raw=b"{not json")[0] == 400
    assert facebook_post(gateway, None, raw=b'"a string"')[0] == 400
    assert twitter_post(gateway, ["not", "an", "object"])[0] == 400
    assert facebook_post(gateway, {"object": "page", "entry": [{"id": "P", "changes": [{"field": "feed"}]}]})[0] == 200
    assert http("GET", gateway.url + "/healthz")[0] == 200


# --- Messenger ------------------------------------------------------------------------------------------------

def test_a_batch_of_three_events_gets_three_answers_in_each_customers_language(gateway, platforms):
    english, malay, third = new_sender(), new_sender(), new_sender()
    body = page_body(messaging(english, "how much is the starter plan?"),
                     messaging(malay, "berapa harga pelan starter sebulan?"),
                     messaging(third, "can I pay with boost?"), entries=2)
    status, text = facebook_post(gateway, body)
    assert (status, text) == (200, "EVENT_RECEIVED")
    english_text, malay_text, third_text = (" ".join(m["text"] for m in wait_for_replies(platforms, sender))
                                            for sender in (english, malay, third))
    assert "Boost" in third_text
    assert "RM" in english_text and "month" in english_text
    assert "RM" in malay_text and "sebulan" in malay_text
    typing = [c for c in platforms.calls if c["api"] == "graph" and c["body"].get("sender_action") == "typing_on"
              and c["body"]["recipient"]["id"] == english]
    assert typing, "typing_on is sent while the assistant works"
    time.sleep(0.5)
    assert not [c for c in platforms.calls if c["api"] == "graph" and c["body"].get("sender_action") == "typing_off"
                and c["body"]["recipient"]["id"] == english], "Messenger ends the indicator with the reply itself"
    sent = platforms.messages_to(english)[0]["raw"]
    assert sent["messaging_type"] == "RESPONSE" and sent["recipient"] == {"id": english}


def test_echoes_deliveries_and_reads_are_ignored(gateway, platforms):
    customer = new_sender()
    body = page_body(
        {"sender": {"id": "PAGE_ID"}, "recipient": {"id": customer}, "timestamp": 1,
         "message": {"mid": f"m_{uuid.uuid4().hex}", "text": "Hello from the page", "is_echo": True, "app_id": 1}},
        {"sender": {"id": customer}, "recipient": {"id": "PAGE_ID"}, "timestamp": 2,
         "delivery": {"mids": ["m_x"], "watermark": 2}},
        {"sender": {"id": customer}, "recipient": {"id": "PAGE_ID"}, "timestamp": 3, "read": {"watermark": 3}},
    )
    assert facebook_post(gateway, body)[0] == 200
    idle(gateway)
    assert platforms.messages_to(customer) == [] and platforms.messages_to("PAGE_ID") == []


def test_a_replayed_event_is_answered_once(gateway, platforms):
    sender, mid = new_sender(), f"m_{uuid.uuid4().hex}"
    body = page_body(messaging(sender, "how do I download ksos?", mid=mid))
    assert facebook_post(gateway, body)[0] == 200
    assert facebook_post(gateway, body)[0] == 200               # Meta retries a delivery it thinks failed
    first = wait_for_replies(platforms, sender)
    assert facebook_post(gateway, body)[0] == 200               # and a late replay
    idle(gateway)
    assert len(platforms.messages_to(sender)) == len(first)


def test_offered_quick_replies_are_payloads_and_unoffered_ones_are_words(gateway, platforms, console):
    asker = new_sender()
    facebook_post(gateway, page_body(messaging(asker, "what is my early termination penalty?")))
    with_buttons = [m for m in wait_for_replies(platforms, asker) if m["buttons"]]
    quick = with_buttons[0]["buttons"]
    assert 0 < len(quick) <= 13 and all(len(q["title"]) <= 20 and q["payload"].startswith("/") for q in quick)
    before = len(platforms.messages_to(asker))
    facebook_post(gateway, page_body(messaging(asker, quick[0]["title"], quick_reply=quick[0]["payload"])))
    after = wait_for_replies(platforms, asker, at_least=before + 1)[before:]
    assert "account number" in " ".join(m["text"] for m in after).lower()
    # A payload the assistant never offered in the conversation is only the customer's words.
    forcer = new_sender()
    facebook_post(gateway, page_body(messaging(forcer, "hello there", quick_reply="/request_human")))
    greeting = " ".join(m["text"] for m in wait_for_replies(platforms, forcer))
    assert "join this chat" not in greeting and queued(console, f"facebook:{forcer}") is None


def test_graph_api_429_and_500_are_retried_and_the_reply_arrives_once(gateway, platforms):
    sender = new_sender()
    platforms.fail_next.extend([429, 500])
    facebook_post(gateway, page_body(messaging(sender, "hello")))
    replies = wait_for_replies(platforms, sender)
    idle(gateway)
    assert len(platforms.messages_to(sender)) == len(replies)
    assert not platforms.fail_next


def test_attachments_get_a_polite_notice(gateway, platforms):
    sender = new_sender()
    event = {"sender": {"id": sender}, "recipient": {"id": "PAGE_ID"}, "timestamp": 1,
             "message": {"mid": f"m_{uuid.uuid4().hex}", "attachments": [{"type": "image",
                                                                        "payload": {"url": "https://x/y.jpg"}}]}}
    facebook_post(gateway, page_body(event))
    sent = wait_for(lambda: platforms.messages_to(sender))
    assert sent[0]["text"] == notice("unsupported_attachment", "en")


def test_rate_limit_answers_the_first_messages_and_sends_one_notice(gateway, platforms):
    sender = new_sender()
    events = [messaging(sender, "hello") for _ in range(RATE_LIMIT + 3)]
    facebook_post(gateway, page_body(*events))
    def notices():
        return [m for m in platforms.messages_to(sender) if m["text"] == notice("rate_limited", "en")]

    wait_for(notices)
    idle(gateway)
    assert len(notices()) == 1


# --- X direct messages ----------------------------------------------------------------------------------------

def authorizations(platforms, sender: str) -> List[str]:
    return [call["authorization"] for call in platforms.x.sends_to(sender) if not call.get("failed")]


def test_an_xaa_dm_is_answered_once_in_the_askers_language_through_the_v2_endpoint(gateway, platforms):
    sender = new_sender()
    delivery = xaa(v2_dm(sender, "berapa harga pelan starter?"))
    assert x_post(gateway, delivery)[0] == 200
    sent = wait_for_replies(platforms, sender)
    assert "sebulan" in " ".join(m["text"] for m in sent)
    token = gateway.tokens.load().access_token
    assert set(authorizations(platforms, sender)) == {f"Bearer {token}"}       # OAuth 2.0 user context
    assert x_post(gateway, delivery)[0] == 200                               # redelivered: the same event_uuid
    assert x_post(gateway, xaa(delivery["data"]["payload"]))[0] == 200       # the same DM in a new delivery
    idle(gateway)
    assert len(platforms.messages_to(sender)) == len(sent)
    assert f"delivery {delivery['data']['event_uuid']} already handled" in gateway.log()


def test_the_wrapped_payload_and_the_old_account_activity_body_are_answered_too(gateway, platforms):
    wrapped, legacy = new_sender(), new_sender()
    assert x_post(gateway, xaa(wrapped_dms(dm_event(wrapped, "how much is the starter plan?"))),
                  path="/webhooks/twitter")[0] == 200
    assert twitter_post(gateway, dm_body(dm_event(legacy, "berapa harga pelan starter?")))[0] == 200
    assert "month" in " ".join(m["text"] for m in wait_for_replies(platforms, wrapped))
    assert "sebulan" in " ".join(m["text"] for m in wait_for_replies(platforms, legacy))


def test_x_own_unsubscribed_and_other_users_deliveries_are_not_answered(gateway, platforms):
    sender = new_sender()
    assert x_post(gateway, xaa(v2_dm(TWITTER_BOT_USER_ID, "I am the bot")))[0] == 200
    assert x_post(gateway, xaa(wrapped_dms(dm_event(TWITTER_BOT_USER_ID, "me too"))))[0] == 200
    for event_type in ("dm.sent", "dm.indicate_typing", "dm.read", "follow.follow"):
        delivery = xaa(v2_dm(sender, "hello"), event_type=event_type)
        assert x_post(gateway, delivery)[0] == 200
        assert f"delivery {delivery['data']['event_uuid']} ignored: event type {event_type!r}" in gateway.log()
    assert x_post(gateway, xaa(v2_dm(sender, "hello"), for_user="999"))[0] == 200
    idle(gateway)
    assert platforms.messages_to(sender) == [] and platforms.x.sends_to(TWITTER_BOT_USER_ID) == []


def test_an_x_photo_gets_the_polite_notice(gateway, platforms):
    sender = new_sender()
    assert x_post(gateway, xaa(v2_dm(sender, "https://t.co/AbC123xyz", media_keys=["3_1582838499983564806"])))[0] == 200
    sent = wait_for(lambda: platforms.messages_to(sender))
    assert sent[0]["text"] == notice("unsupported_attachment", "en")


def test_x_options_are_a_numbered_list_and_a_number_or_the_words_pick_one(gateway, platforms):
    sender = new_sender()
    x_post(gateway, xaa(v2_dm(sender, "what is my early termination penalty?")))
    listed = [m["text"] for m in wait_for_replies(platforms, sender) if "\n1. " in m["text"]]
    assert listed and notice("numbered_options", "en") in listed[0]
    before = len(platforms.messages_to(sender))
    x_post(gateway, xaa(v2_dm(sender, "1")))
    asked = wait_for_replies(platforms, sender, at_least=before + 1)[before:]
    assert "account number" in " ".join(m["text"] for m in asked).lower()
    assert f"(twitter:{sender}): numbered option /" in gateway.log()

    malay = new_sender()
    x_post(gateway, xaa(v2_dm(malay, "berapa penalti penamatan awal saya?")))
    listed = [m["text"] for m in wait_for_replies(platforms, malay) if "\n1. " in m["text"]]
    assert listed and notice("numbered_options", "ms") in listed[0]
    first_option = listed[0].split("\n1. ", 1)[1].split("\n", 1)[0]
    before = len(platforms.messages_to(malay))
    x_post(gateway, xaa(v2_dm(malay, first_option.lower())))                # the option's words
    asked = wait_for_replies(platforms, malay, at_least=before + 1)[before:]
    assert "nombor akaun" in " ".join(m["text"] for m in asked).lower()


def test_x_rate_limit_is_waited_out_and_the_answer_arrives_once(gateway, platforms):
    sender = new_sender()
    platforms.x.fail_next.append((429, {"x-rate-limit-reset": str(int(time.time()) + 2)},
                                  {"title": "Too Many Requests", "detail": "Too Many Requests", "status": 429}))
    x_post(gateway, xaa(v2_dm(sender, "how much is the starter plan?")))
    sent = wait_for_replies(platforms, sender)
    calls = platforms.x.sends_to(sender)
    assert calls[0]["failed"] == 429 and not any(call.get("failed") for call in calls[1:])
    assert calls[1]["at"] - calls[0]["at"] >= 1.0                           # not before the window reopened
    assert len({m["text"] for m in sent}) == len(sent)


def test_a_customer_who_takes_no_dms_is_logged_once_and_the_next_message_is_answered(gateway, platforms):
    sender = new_sender()
    platforms.x.fail_next.append((403, {}, {"title": "Forbidden", "type": "about:blank", "status": 403,
                                            "detail": "You cannot send messages to this user."}))
    x_post(gateway, xaa(v2_dm(sender, "what is ksos?")))
    wait_for(lambda: platforms.x.sends_to(sender))
    idle(gateway)
    assert [call.get("failed") for call in platforms.x.sends_to(sender)] == [403]
    assert sum(f"(twitter:{sender}): the customer cannot be sent messages now" in line
               for line in gateway.log().splitlines()) == 1
    x_post(gateway, xaa(v2_dm(sender, "berapa harga pelan starter?")))
    assert "sebulan" in " ".join(m["text"] for m in wait_for_replies(platforms, sender))


def test_a_refused_access_token_is_refreshed_once_and_the_answer_sent_with_the_new_one(gateway, platforms):
    before, refreshes = gateway.tokens.load(), len(platforms.x.token_grants("refresh_token"))
    platforms.x.revoke_access_tokens()
    sender = new_sender()
    x_post(gateway, xaa(v2_dm(sender, "how much is the starter plan?")))
    wait_for_replies(platforms, sender)
    after = gateway.tokens.load()
    assert after.access_token != before.access_token and after.refresh_token != before.refresh_token
    grants = platforms.x.token_grants("refresh_token")[refreshes:]
    assert len(grants) == 1 and grants[0]["basic_auth"]                     # confidential client: HTTP Basic
    assert platforms.x.sends_to(sender)[0]["failed"] == 401
    assert set(authorizations(platforms, sender)) == {f"Bearer {after.access_token}"}
    assert before.access_token not in gateway.log() and after.refresh_token not in gateway.log()


def test_an_expiring_access_token_is_refreshed_before_it_is_used(gateway, platforms):
    refreshes = len(platforms.x.token_grants("refresh_token"))
    gateway.tokens.expire_now()
    sender = new_sender()
    x_post(gateway, xaa(v2_dm(sender, "what is ksos?")))
    wait_for_replies(platforms, sender)
    assert len(platforms.x.token_grants("refresh_token")) == refreshes + 1
    assert not any(call.get("failed") for call in platforms.x.sends_to(sender))
    assert set(authorizations(platforms, sender)) == {f"Bearer {gateway.tokens.load().access_token}"}


def test_without_a_stored_token_replies_go_with_oauth1_user_context(gateway, platforms):
    saved = gateway.tokens.load()
    with gateway.tokens.store.session() as session:
        session.execute(delete(ChannelToken))
    try:
        sender = new_sender()
        x_post(gateway, xaa(v2_dm(sender, "what is ksos?")))
        wait_for_replies(platforms, sender)
        authorization = authorizations(platforms, sender)[0]
        assert authorization.startswith("OAuth ") and 'oauth_consumer_key="test-consumer-key"' in authorization
        assert 'oauth_token="test-access-token"' in authorization and "oauth_signature=" in authorization
    finally:
        gateway.tokens.save(saved.user_id, {"access_token": saved.access_token, "refresh_token": saved.refresh_token,
                                            "expires_in": 7200, "scope": saved.scope})


# --- python -m bot x -------------------------------------------------------------------------------------------

def run_x(gateway, *args: str, approve: Optional[Callable[[str], str]] = None) -> Tuple[int, str]:
    """`python -m bot x ...` with the gateway's settings; for `authorize`, `approve` plays the operator in the
    browser: it gets the printed authorize address and returns the address X redirected to."""
    process = subprocess.Popen([sys.executable, "-m", "bot", "x", *args], cwd=REPO_ROOT, env=gateway.env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    if approve is not None:
        for line in process.stdout:
            lines.append(line)
            if line.startswith(gateway.env["TWITTER_AUTHORIZE_URL"]):
                process.stdin.write(approve(line.strip()) + "\n")
                process.stdin.flush()
                break
    rest, _ = process.communicate(timeout=60)
    return process.returncode, "".join(lines) + rest


def test_x_authorize_stores_the_bot_accounts_token_and_refuses_anything_else(gateway, platforms):
    before = gateway.tokens.load()
    code, output = run_x(gateway, "authorize", approve=lambda url: platforms.x.approve(url, user="999"))
    assert code == 1 and "not from TWITTER_BOT_USER_ID" in output
    code, output = run_x(gateway, "authorize",
                         approve=lambda url: platforms.x.approve(url).replace("state=", "state=x", 1))
    assert code == 1 and "state differs" in output
    assert gateway.tokens.load() == before
    code, output = run_x(gateway, "authorize", approve=platforms.x.approve)
    assert code == 0 and f"Authorized as @helpmeunifi ({TWITTER_BOT_USER_ID})" in output, output
    after = gateway.tokens.load()
    assert after.access_token != before.access_token and after.access_token not in output
    assert "renewed automatically" in output and after.refresh_token not in output
    sender = new_sender()
    x_post(gateway, xaa(v2_dm(sender, "what is ksos?")))
    wait_for_replies(platforms, sender)
    assert set(authorizations(platforms, sender)) == {f"Bearer {after.access_token}"}


def test_x_setup_registers_the_webhook_with_a_crc_and_subscribes_to_dm_received(gateway, platforms):
    url = f"{gateway.url}/webhooks/x"
    code, output = run_x(gateway, "setup", "--url", url)
    assert code == 0, output
    hooks = [hook for hook in platforms.x.webhooks.values() if hook["url"] == url]
    assert len(hooks) == 1 and hooks[0]["valid"]
    subscriptions = [sub for sub in platforms.x.subscriptions.values() if sub["event_type"] == "dm.received"]
    assert len(subscriptions) == 1 and subscriptions[0]["filter"] == {"user_id": TWITTER_BOT_USER_ID}
    assert subscriptions[0]["webhook_id"] == hooks[0]["id"]
    created = [call for call in platforms.x.calls if call["api"] == "x-subscriptions"]
    assert created[-1]["user"] == TWITTER_BOT_USER_ID                        # in the bot account's user context
    code, output = run_x(gateway, "setup", "--url", url)                     # again: a CRC check, nothing doubled
    assert code == 0 and "checked it again (CRC): valid" in output and "already delivers" in output
    assert len(platforms.x.webhooks) == 1 and len(platforms.x.subscriptions) == 1
    code, output = run_x(gateway, "status")
    assert code == 0 and url in output and "dm.received" in output and hooks[0]["id"] in output
    assert f"OAuth 2.0 user context for user {TWITTER_BOT_USER_ID}" in output
    code, output = run_x(gateway, "setup", "--url", f"{gateway.url}/webhooks/facebook")   # answers no CRC
    assert code == 1 and "CrcValidationFailed" in output


# --- outages and restarts -------------------------------------------------------------------------------------

def test_rasa_down_then_up_one_hold_notice_and_each_reply_once_in_order(gateway, platforms, rasa_switch):
    sender = new_sender()
    hold = notice("hold_on", "en")
    rasa_switch.down()
    try:
        facebook_post(gateway, page_body(messaging(sender, "how much is the starter plan?")))
        wait_for(lambda: platforms.messages_to(sender))
        offset = len(gateway.log())
        facebook_post(gateway, page_body(messaging(sender, "can I pay with boost?")))
        # the second message is stored and the worker tries Rasa again (and fails) after it: no second notice
        wait_for(lambda: re.search(rf"facebook:{sender}: inbox \d+ pending.*\(facebook:{sender}\): .*attempt \d+, "
                                   r"retry in", gateway.log()[offset:], re.S), timeout=20)
        assert [m["text"] for m in platforms.messages_to(sender)] == [hold]
    finally:
        rasa_switch.up()
    texts = [m["text"] for m in wait_for_replies(platforms, sender, at_least=3, quiet=3)]
    assert texts.count(hold) == 1
    starter = [i for i, t in enumerate(texts) if "RM" in t]
    boost = [i for i, t in enumerate(texts) if "Boost" in t]
    assert len(boost) == 1 and starter and max(starter) < boost[0]      # each answered once, in order
    assert len(texts) == len(set(texts))


def test_a_restart_processes_the_pending_inbox(gateway, platforms, rasa_switch):
    sender = new_sender()
    rasa_switch.down()
    try:
        facebook_post(gateway, page_body(messaging(sender, "berapa harga pelan standard?")))
        wait_for(lambda: platforms.messages_to(sender))          # the hold notice: the message is stored
        gateway.stop()
    finally:
        rasa_switch.up()
    offset = len(gateway.log())
    gateway.start()
    texts = [m["text"] for m in wait_for_replies(platforms, sender, at_least=2, quiet=3)]
    assert any("RM" in t for t in texts) and len(texts) == len(set(texts))
    assert re.search(rf"\(facebook:{sender}\): answered with \d+ message", gateway.log()[offset:])


# --- the widget socket ----------------------------------------------------------------------------------------

def test_widget_socket_session_answer_history_and_bad_frames(gateway, background_loop):
    hello = {"type": "hello", "session": None, "after": 0}
    ask_id = str(uuid.uuid4())
    ask = {"type": "message", "id": ask_id, "text": "boleh bayar guna boost?", "metadata": {"language": "ms"}}
    frames = widget_exchange(background_loop, gateway.url, [hello, ask],
                             until=lambda r: any(f == {"type": "typing", "on": False} for f in r))
    session = frames[0]["session"]
    assert frames[1] == {"type": "history", "messages": []}
    assert {"type": "ack", "id": ask_id} in frames
    assert any("Boost" in text for text in bot_texts(frames))
    # the same message again (a resend after a reconnect) is acknowledged but not answered twice
    again = widget_exchange(background_loop, gateway.url, [{**hello, "session": session, "after": 10 ** 9}, ask],
                            until=lambda r: any(f.get("type") == "ack" for f in r), timeout=5)
    assert {"type": "ack", "id": ask_id} in again
    idle(gateway)                      # whatever the resend could have caused is in the history now
    history = widget_exchange(background_loop, gateway.url, [{**hello, "session": session}],
                              until=lambda r: len(r) >= 2)
    messages = history[1]["messages"]
    assert sum(1 for m in messages if m["role"] != "customer") == len(bot_texts(frames))
    assert messages[0]["role"] == "customer" and messages[0]["client_id"] == ask_id
    assert sum(1 for m in messages if m["role"] == "customer") == 1
    assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)
    ids = [str(uuid.uuid4()) for _ in range(4)]
    bad = widget_exchange(background_loop, gateway.url, [
        {"type": "message", "id": ids[0], "text": "before hello"}, hello,
        {"type": "message", "id": ids[1], "text": "   "}, {"type": "message", "id": ids[2], "text": "a" * 2001},
        {"type": "message", "id": ids[3], "text": "x", "payload": "not-a-payload"}, {"type": "nonsense"},
        {"type": "message", "id": "agent:joined:1", "text": "an id that is no UUID"}],
        until=lambda r: sum(1 for f in r if f["type"] == "error") >= 6)
    errors = [(f["id"], f["code"]) for f in bad if f["type"] == "error"]
    assert errors == [(ids[0], "bad_request"), (ids[1], "empty"), (ids[2], "too_long"), (ids[3], "bad_request"),
                      (None, "bad_request"), (None, "bad_request")]


def test_widget_origins(gateway, background_loop):
    hello = {"type": "hello", "session": None, "after": 0}
    allowed = widget_exchange(background_loop, gateway.url, [hello], origin="https://shop.example.my",
                              until=lambda r: len(r) >= 2)
    assert allowed[0]["type"] == "session"
    with pytest.raises(aiohttp.WSServerHandshakeError):
        widget_exchange(background_loop, gateway.url, [hello], origin="https://evil.example")


# --- configuration and logs -----------------------------------------------------------------------------------

def test_a_channel_without_secrets_is_disabled_with_one_log_line(test_settings, tmp_path):
    env = gateway_environment(test_settings, f"sqlite:///{tmp_path / 'g.db'}", "http://127.0.0.1:9")
    process = GatewayProcess(env, tmp_path / "gateway.log", free_port()).start()
    try:
        assert http("POST", process.url + "/webhooks/facebook", b"{}", {"Content-Type": "application/json"})[0] == 404
        assert http("GET", process.url + "/webhooks/twitter?crc_token=x")[0] == 404
        health = json.loads(http("GET", process.url + "/healthz")[1])
        assert health["channels"] == {"widget": True, "facebook": False, "twitter": False}
        assert health["rasa"] == "unreachable"
    finally:
        process.stop()
    lines = process.log().splitlines()
    assert sum("facebook channel disabled: set FACEBOOK_APP_SECRET" in line for line in lines) == 1
    assert sum("twitter channel disabled" in line for line in lines) == 1


def test_logs_carry_no_message_text(gateway, platforms, background_loop):
    sender, texts = new_sender(), ("how much is the starter plan", "berapa harga pelan standard")
    offset = len(gateway.log())
    facebook_post(gateway, page_body(messaging(sender, texts[0]), messaging(sender, texts[1])))
    widget_text = "boleh bayar guna boost"
    widget_exchange(background_loop, gateway.url, [{"type": "hello", "session": None, "after": 0},
                                                   {"type": "message", "id": str(uuid.uuid4()), "text": widget_text}],
                    until=lambda r: any(f == {"type": "typing", "on": False} for f in r))
    wait_for_replies(platforms, sender, at_least=2)
    idle(gateway)
    log = gateway.log()[offset:]
    assert re.search(rf"\(facebook:{sender}\): answered with", log) and re.search(r"\(widget:\S+\): answered", log)
    for text in (*texts, widget_text):
        assert text not in log


def test_widget_language_hint_starts_the_conversation_in_malay(gateway, background_loop):
    hello = {"type": "hello", "session": None, "after": 0}
    frames = widget_exchange(background_loop, gateway.url, [hello, {
        "type": "message", "id": str(uuid.uuid4()), "text": "hi", "metadata": {"language": "ms"}}],
        until=lambda r: any(f == {"type": "typing", "on": False} for f in r))
    greeting = " ".join(bot_texts(frames))
    assert "Kaspersky" in greeting and ("Selamat" in greeting or "saya" in greeting), greeting


# --- human handoff on Messenger and X, the agent using the console API ------------------------------------------

AGENT_PASSWORD = "console-test-password"


@pytest.fixture(scope="module")
def console(gateway):
    add_agent(gateway.env, "mei", AGENT_PASSWORD, display_name="Mei")
    add_agent(gateway.env, "raj", AGENT_PASSWORD)
    return ConsoleClient(gateway.url).login("mei", AGENT_PASSWORD)


def texts_to(platforms, sender: str) -> List[str]:
    return [m["text"] for m in platforms.messages_to(sender)]


def wait_for_text(platforms, sender: str, fragment: str, timeout: float = 40) -> List[str]:
    return wait_for(lambda: [t for t in texts_to(platforms, sender) if fragment in t], timeout=timeout)


def queued(console, conversation: str) -> Optional[Dict]:
    status, body = console.call("GET", "/api/agent/queue")
    assert status == 200
    return next((c for c in body["conversations"] if c["conversation_id"] == conversation), None)


def test_messenger_handoff_agent_reply_and_hand_back(gateway, platforms, console):
    sender = new_sender()
    conversation = f"facebook:{sender}"
    facebook_post(gateway, page_body(messaging(sender, "I want to talk to a human agent")))
    wait_for_text(platforms, sender, "join this chat")
    waiting = wait_for(lambda: queued(console, conversation))
    assert waiting["state"] == "waiting" and waiting["language"] == "en" and waiting["reason"] == "request_human"

    facebook_post(gateway, page_body(messaging(sender, "hello? what is the termination penalty?")))
    idle(gateway)
    before = len(texts_to(platforms, sender))
    assert not [t for t in texts_to(platforms, sender) if "penalty" in t.lower()]     # the assistant is silent

    status, opened = console.call("POST", f"/api/agent/conversations/{conversation}/open")
    assert status == 200 and opened["conversation"]["mine"] and opened["conversation"]["state"] == "assigned"
    assert opened["transcript"][-1]["text"] == "hello? what is the termination penalty?"
    wait_for_text(platforms, sender, "Mei from Unifi has joined")

    status, assist = console.call("POST", "/api/assist/suggest", {"conversation_id": conversation})
    assert status == 200 and len(assist["suggestions"]) == 3 and assist["set_id"]
    top = assist["suggestions"][0]
    assert top["key"] == "ask_termination_penalty" and "FAQ 32" in top["source"] and 0 < top["confidence"] <= 1
    reply = {"text": top["answer"], "client_id": "mei-1", "suggestion": {"set_id": assist["set_id"], "index": 0}}
    assert console.call("POST", f"/api/agent/conversations/{conversation}/reply", reply) == (202, {"status": "queued"})
    assert console.call("POST", f"/api/agent/conversations/{conversation}/reply", reply)[1] == {"status": "duplicate"}
    wait_for(lambda: len(texts_to(platforms, sender)) >= before + 2)
    idle(gateway)
    assert texts_to(platforms, sender)[before + 1].startswith(top["answer"][:40])
    assert len([t for t in texts_to(platforms, sender) if t.startswith(top["answer"][:40])]) == 1

    assert console.call("POST", f"/api/agent/conversations/{conversation}/resolve") == (200, {"status": "resolved"})
    wait_for_text(platforms, sender, "back with the Unifi assistant")
    assert queued(console, conversation) is None
    status, body = console.call("POST", f"/api/agent/conversations/{conversation}/reply",
                                {"text": "one more thing", "client_id": "mei-2"})
    assert status == 409 and body["error"] == "resolved" and "not sent" in body["message"]

    facebook_post(gateway, page_body(messaging(sender, "what payment methods can I use?")))
    wait_for_text(platforms, sender, "JomPAY")
    assert "one more thing" not in texts_to(platforms, sender)


def test_x_handoff_after_two_misses_in_malay(gateway, platforms, console):
    sender = new_sender()
    conversation = f"twitter:{sender}"
    x_post(gateway, xaa(v2_dm(sender, "salam, saya ada soalan tentang ksos")))
    wait_for_replies(platforms, sender)
    x_post(gateway, xaa(v2_dm(sender, "blip blop zorg")))
    wait_for_replies(platforms, sender, at_least=2)
    x_post(gateway, xaa(v2_dm(sender, "zorg blop blip lagi")))
    wait_for_text(platforms, sender, "ejen Unifi")
    waiting = wait_for(lambda: queued(console, conversation))
    assert waiting["reason"] == "fallback" and waiting["language"] == "ms"

    raj = ConsoleClient(gateway.url).login("raj", AGENT_PASSWORD)
    assert raj.call("POST", f"/api/agent/conversations/{conversation}/open")[1]["conversation"]["mine"]
    status, seen_by_mei = console.call("POST", f"/api/agent/conversations/{conversation}/open")
    assert status == 200 and not seen_by_mei["conversation"]["mine"] and seen_by_mei["conversation"]["agent"] == "raj"
    status, body = console.call("POST", f"/api/agent/conversations/{conversation}/reply",
                                {"text": "Hai, saya Mei.", "client_id": "mei-x1"})
    assert status == 409 and body["error"] == "not_owner"
    status, assist = raj.call("POST", "/api/assist/suggest", {"conversation_id": conversation})
    assert status == 200 and assist["language"] == "ms"
    assert raj.call("POST", f"/api/agent/conversations/{conversation}/reply",
                    {"text": "Hai, saya Raj. Boleh saya bantu?", "client_id": "raj-x1"})[0] == 202
    wait_for_text(platforms, sender, "saya Raj")
    assert "Hai, saya Mei." not in texts_to(platforms, sender)
    assert raj.call("POST", f"/api/agent/conversations/{conversation}/resolve")[0] == 200
    wait_for_text(platforms, sender, "kembali bersama pembantu Unifi")


def test_console_api_refuses_anonymous_forged_and_cross_site_requests(gateway, console):
    anonymous = ConsoleClient(gateway.url)
    for method, path in [("GET", "/api/agent/me"), ("GET", "/api/agent/queue"),
                         ("GET", "/api/agent/conversations/widget:x"), ("POST", "/api/agent/logout"),
                         ("POST", "/api/agent/conversations/widget:x/open"),
                         ("POST", "/api/agent/conversations/widget:x/reply"),
                         ("POST", "/api/agent/conversations/widget:x/resolve"), ("POST", "/api/assist/suggest")]:
        assert anonymous.call(method, path)[0] == 401, path
    forged = ConsoleClient(gateway.url)
    forged.opener.addheaders = [("Cookie", "ksos_agent=forged-session-token")]
    assert forged.call("GET", "/api/agent/queue")[0] == 401
    assert console.call("POST", "/api/assist/suggest", {"text": "hello"}, csrf=False)[0] == 403
    assert console.call("GET", "/api/agent/queue", csrf=False)[0] == 200           # reads need no token

    def cross_site(path, body):
        request = urllib.request.Request(gateway.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "X-CSRF-Token": console.csrf,
                                                  "Origin": "https://evil.example"})
        try:
            with console.opener.open(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as failure:
            return failure.code

    assert cross_site("/api/assist/suggest", {"text": "hello"}) == 403
    assert cross_site("/api/agent/login", {"name": "mei", "password": AGENT_PASSWORD}) == 403

    status, body = anonymous.call("POST", "/api/agent/login", {"name": "mei", "password": "wrong password!"})
    assert (status, body) == (401, {"error": "invalid_credentials"})
    # From loopback, with no proxy listed, the client's address is unknown: only the name's counter applies
    # (10 free tries, then growing delays).
    for _ in range(10):
        anonymous.call("POST", "/api/agent/login", {"name": "nobody-here", "password": "wrong password!"})
    status, body = anonymous.call("POST", "/api/agent/login", {"name": "nobody-here", "password": "x"})
    assert status == 429 and "Try again in" in body["message"]
    assert anonymous.call("POST", "/api/agent/login", {"name": "mei", "password": "x" * 2000})[0] == 400

    status, body = console.call("POST", "/api/assist/suggest", {"text": "camne nk bayar bil ksos"})
    assert status == 200 and body["language"] == "ms" and body["set_id"] is None
    assert body["suggestions"][0]["key"] == "faq/payment_methods" and "JomPAY" in body["suggestions"][0]["answer"]
    assert console.call("POST", "/api/assist/suggest", {"text": ""})[0] == 400
    assert console.call("POST", "/api/assist/suggest", {"conversation_id": "widget:none"})[0] == 404
    assert console.call("POST", "/api/agent/conversations/widget:none/reply",
                        {"text": "hi", "client_id": "c-1"})[0] == 404
    assert console.call("POST", "/api/agent/conversations/widget:none/reply", {"text": "hi"})[0] == 400

    page = urllib.request.urlopen(gateway.url + "/agent", timeout=10)
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    cookie = next(c for c in console.cookies if c.name == "ksos_agent")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "Strict"


def test_suggestions_answer_the_question_asked_before_the_request_for_a_person(gateway, platforms, console):
    sender = new_sender()
    conversation = f"facebook:{sender}"
    facebook_post(gateway, page_body(messaging(sender, "how much is the early termination penalty?")))
    wait_for_replies(platforms, sender)
    facebook_post(gateway, page_body(messaging(sender, "I want to talk to a human agent")))
    wait_for_text(platforms, sender, "join this chat")
    status, assist = console.call("POST", "/api/assist/suggest", {"conversation_id": conversation})
    assert status == 200 and assist["text"] == "how much is the early termination penalty?"
    assert assist["suggestions"][0]["key"] == "ask_termination_penalty"
    assert console.call("POST", f"/api/agent/conversations/{conversation}/resolve")[0] == 200    # a waiting one


# --- "Was this helpful?" on Messenger and X (bot/gateway/feedback.py) -------------------------------------------

def feedback_rows(gateway, conversation: str) -> List[Tuple[str, str, Optional[str], int]]:
    store = GatewayStore(gateway.env["DATABASE_URL"])
    try:
        with store.session() as session:
            return [tuple(row) for row in session.execute(
                select(AnswerFeedback.rating, AnswerFeedback.channel, AnswerFeedback.language,
                       AnswerFeedback.entry_id).where(AnswerFeedback.conversation_id == conversation))]
    finally:
        store.dispose()


def test_messenger_asks_once_and_a_thumbs_down_offers_a_person(gateway, platforms, console):
    sender = new_sender()
    conversation = f"facebook:{sender}"
    facebook_post(gateway, page_body(messaging(sender, "how much is the starter plan?")))
    first = wait_for_replies(platforms, sender, at_least=2)
    assert "RM30" in first[0]["text"] and not first[0]["buttons"]
    assert first[-1]["text"] == "Was this answer helpful?"
    assert [b["title"] for b in first[-1]["buttons"]] == ["👍", "👎"]
    down = first[-1]["buttons"][1]

    facebook_post(gateway, page_body(messaging(sender, "can I pay with boost?")))
    second = wait_for_replies(platforms, sender, at_least=len(first) + 1)[len(first):]
    assert "Boost" in " ".join(m["text"] for m in second)
    assert not [m for m in second if m["text"] == "Was this answer helpful?"]           # once per conversation

    before = len(platforms.messages_to(sender))
    facebook_post(gateway, page_body(messaging(sender, down["title"], quick_reply=down["payload"])))
    sorry = wait_for_replies(platforms, sender, at_least=before + 1)[before:]
    assert len(sorry) == 1 and sorry[0]["text"].startswith("Sorry that didn't help")
    assert "help@tm.com.my" in sorry[0]["text"] and "100" in sorry[0]["text"]
    person = sorry[0]["buttons"]
    assert [b["title"] for b in person] == ["Talk to a person"]
    # The rating is for the latest answer from the documents (the Boost one), with the channel and language.
    [(rating, channel, language, _)] = feedback_rows(gateway, conversation)
    assert (rating, channel, language) == ("down", "facebook", "en")
    assert f"({conversation}): rated down" in gateway.log()       # taken by the gateway, not sent to Rasa

    facebook_post(gateway, page_body(messaging(sender, person[0]["title"], quick_reply=person[0]["payload"])))
    wait_for_text(platforms, sender, "join this chat")
    assert wait_for(lambda: queued(console, conversation))["reason"] == "request_human"
    assert console.call("POST", f"/api/agent/conversations/{conversation}/open")[0] == 200
    assert console.call("POST", f"/api/agent/conversations/{conversation}/resolve")[0] == 200


def test_x_asks_with_numbered_options_and_a_number_rates_in_malay(gateway, platforms):
    sender = new_sender()
    x_post(gateway, xaa(v2_dm(sender, "berapa harga pelan starter sebulan?")))
    replies = [m["text"] for m in wait_for_replies(platforms, sender, at_least=2)]
    assert replies[-1].startswith("Adakah jawapan ini membantu?") and "\n1. 👍" in replies[-1]
    before = len(platforms.messages_to(sender))
    x_post(gateway, xaa(v2_dm(sender, "1")))
    thanks = [m["text"] for m in wait_for_replies(platforms, sender, at_least=before + 1)[before:]]
    assert thanks == ["Terima kasih atas maklum balas anda!"]
    [(rating, channel, language, _)] = feedback_rows(gateway, f"twitter:{sender}")
    assert (rating, channel, language) == ("up", "twitter", "ms")


def test_widget_feedback_is_kept_once_per_answer_of_the_session_and_a_thumbs_down_is_answered(gateway,
                                                                                             background_loop):
    hello = {"type": "hello", "session": None, "after": 0}
    ask = {"type": "message", "id": str(uuid.uuid4()), "text": "can I pay with boost?"}
    frames = widget_exchange(background_loop, gateway.url, [hello, ask],
                             until=lambda r: any(f == {"type": "typing", "on": False} for f in r))
    session = frames[0]["session"]
    answers = [f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "bot"]
    answer = answers[0]
    # The customer's widget gets the document's name, never the source's numbers.
    assert answer["source_line"] == "Source: KSOS FAQ (Unifi, Aug 2023)" and "source" not in answer
    question = next(f["message"]["seq"] for f in frames if f["type"] == "message"
                    and f["message"]["role"] == "customer")
    resume = {**hello, "session": session, "after": answer["seq"]}

    def rate(*feedback: Dict, until=lambda r: False, timeout: float = 10) -> List[Dict]:
        return widget_exchange(background_loop, gateway.url, [resume, *feedback], until=until, timeout=timeout)

    bad = rate({"type": "feedback", "seq": question, "rating": "up"},           # the customer's own message
               {"type": "feedback", "seq": str(answer["seq"]), "rating": "up"},
               {"type": "feedback", "seq": answer["seq"], "rating": "meh"},
               {"type": "feedback", "seq": True, "rating": "up"},
               until=lambda r: sum(f["type"] == "error" for f in r) >= 4)
    assert [f["code"] for f in bad if f["type"] == "error"] == ["bad_request"] * 4
    other_session = widget_exchange(background_loop, gateway.url, [hello, {"type": "feedback", "seq": answer["seq"],
                                                                            "rating": "down"}],
                                    until=lambda r: any(f["type"] == "error" for f in r))
    assert [f["code"] for f in other_session if f["type"] == "error"] == ["bad_request"]

    down = rate({"type": "feedback", "seq": answer["seq"], "rating": "down"},
                until=lambda r: any(f["type"] == "message" for f in r))
    assert {"type": "rated", "seq": answer["seq"], "rating": "down"} in down
    [sorry] = [f["message"] for f in down if f["type"] == "message"]
    assert sorry["role"] == "bot" and sorry["text"].startswith("Sorry that didn't help")
    assert sorry["buttons"] == [{"title": "Talk to a person", "payload": "/request_human"}]
    again = rate({"type": "feedback", "seq": answer["seq"], "rating": "up"},
                 until=lambda r: any(f["type"] == "rated" for f in r))
    assert {"type": "rated", "seq": answer["seq"], "rating": "down"} in again          # the first rating stays
    idle(gateway)
    history = widget_exchange(background_loop, gateway.url, [{**hello, "session": session}],
                              until=lambda r: len(r) >= 2)
    assert history[1]["ratings"] == {str(answer["seq"]): "down"}
    assert len([m for m in history[1]["messages"] if m["text"].startswith("Sorry that didn't help")]) == 1
