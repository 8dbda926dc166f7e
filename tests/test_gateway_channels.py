"""The gateway as a running process, with the real assistant behind it and local fakes of Meta's Graph API and
X's API (aiohttp servers) in front: handshakes, signatures, batches, echoes, replays, huge and garbage bodies,
Rasa down then up, a restart with a pending inbox, platform retries, the rate limit and the widget socket; and
the human handoff on Messenger and X with an agent on the console's API."""
import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Dict, List, Optional

import aiohttp
import pytest
from aiohttp import web

from bot.gateway.notices import notice
from conftest import (
    FACEBOOK_APP_SECRET, FACEBOOK_VERIFY_TOKEN, TWITTER_BOT_USER_ID, TWITTER_CONSUMER_SECRET, ConsoleClient,
    GatewayProcess, add_agent, free_port, gateway_environment,
)
from gateway_helpers import (
    bot_texts, dm_body, dm_event, facebook_post, http, messaging, page_body, twitter_post, wait_for, widget_exchange,
)

RATE_LIMIT = 8


# --- local fakes ----------------------------------------------------------------------------------------------

class FakePlatforms:
    """Graph API (/me/messages) and X API (/1.1/direct_messages/...) on one local server. Records every call;
    `fail_next` makes the next N message sends answer with a given status (429, 500 ...)."""

    def __init__(self):
        self.calls: List[Dict] = []
        self.fail_next: List[int] = []

    async def graph_messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "message" in body and self.fail_next:
            status = self.fail_next.pop(0)
            self.calls.append({"api": "graph", "failed": status, "body": body})
            return web.json_response({"error": {"message": "slow down", "code": 4}}, status=status)
        self.calls.append({"api": "graph", "body": body, "token": request.query.get("access_token")})
        return web.json_response({"recipient_id": body["recipient"]["id"], "message_id": f"m_{uuid.uuid4().hex}"})

    async def dm_new(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.fail_next:
            status = self.fail_next.pop(0)
            self.calls.append({"api": "x", "failed": status, "body": body})
            return web.json_response({"errors": [{"code": 88}]}, status=status)
        self.calls.append({"api": "x", "body": body, "authorization": request.headers.get("Authorization", "")})
        return web.json_response({"event": {"id": uuid.uuid4().hex, **body["event"]}})

    async def dm_typing(self, request: web.Request) -> web.Response:
        self.calls.append({"api": "x-typing", "recipient": request.query.get("recipient_id")})
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v21.0/me/messages", self.graph_messages)
        app.router.add_post("/1.1/direct_messages/events/new.json", self.dm_new)
        app.router.add_post("/1.1/direct_messages/indicate_typing.json", self.dm_typing)
        return app

    def messages_to(self, recipient: str) -> List[Dict]:
        """Message bodies (not sender actions, not failed attempts) sent to `recipient` on either platform."""
        found = []
        for call in list(self.calls):
            if call.get("failed") or call["api"] not in ("graph", "x"):
                continue
            body = call["body"]
            if call["api"] == "graph" and body.get("recipient", {}).get("id") == recipient and "message" in body:
                found.append({"text": body["message"].get("text", ""), "buttons": body["message"].get("quick_replies", []),
                              "raw": body})
            if call["api"] == "x":
                create = body["event"]["message_create"]
                if create["target"]["recipient_id"] == recipient:
                    data = create["message_data"]
                    found.append({"text": data["text"], "buttons": (data.get("quick_reply") or {}).get("options", []),
                                  "raw": call})
        return found


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


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture(scope="module")
def platforms(background_loop):
    fake = FakePlatforms()
    port = free_port()
    runner = background_loop.run(_serve(fake.app(), port))
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    background_loop.run(runner.cleanup())


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
        TWITTER_BOT_USER_ID=TWITTER_BOT_USER_ID, TWITTER_API_URL=platforms.url,
        GATEWAY_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT), WIDGET_ALLOWED_ORIGINS="https://shop.example.my",
    )
    process = GatewayProcess(env, folder / "gateway.log", free_port()).start()
    yield process
    process.stop()


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


def settle(seconds: float = 2.0) -> None:
    """Give the gateway time to (wrongly) send something more."""
    time.sleep(seconds)


def new_sender() -> str:
    return str(uuid.uuid4().int)[:16]


# --- handshakes and signatures --------------------------------------------------------------------------------

def test_facebook_verification_handshake(gateway):
    query = f"hub.mode=subscribe&hub.verify_token={FACEBOOK_VERIFY_TOKEN}&hub.challenge=1158201444"
    assert http("GET", f"{gateway.url}/webhooks/facebook?{query}") == (200, "1158201444")
    wrong = "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444"
    assert http("GET", f"{gateway.url}/webhooks/facebook?{wrong}")[0] == 403
    assert FACEBOOK_VERIFY_TOKEN not in gateway.log()          # query strings stay out of the access log


def test_twitter_crc_handshake(gateway):
    status, body = http("GET", f"{gateway.url}/webhooks/twitter?crc_token=abc123")
    expected = base64.b64encode(hmac.new(TWITTER_CONSUMER_SECRET.encode(), b"abc123", hashlib.sha256).digest())
    assert status == 200 and json.loads(body) == {"response_token": "sha256=" + expected.decode()}
    assert http("GET", f"{gateway.url}/webhooks/twitter")[0] == 400


def test_forged_signatures_are_refused_and_nothing_is_answered(gateway, platforms):
    sender = new_sender()
    assert facebook_post(gateway, page_body(messaging(sender, "hello")), secret="forged")[0] == 403
    status, _ = http("POST", gateway.url + "/webhooks/facebook", json.dumps(page_body(messaging(sender, "hi"))).encode(),
                     {"Content-Type": "application/json"})
    assert status == 403
    assert twitter_post(gateway, dm_body(dm_event(sender, "hello")), secret="forged")[0] == 403
    settle()
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
    settle()
    assert platforms.messages_to(customer) == [] and platforms.messages_to("PAGE_ID") == []


def test_a_replayed_event_is_answered_once(gateway, platforms):
    sender, mid = new_sender(), f"m_{uuid.uuid4().hex}"
    body = page_body(messaging(sender, "how do I download ksos?", mid=mid))
    assert facebook_post(gateway, body)[0] == 200
    assert facebook_post(gateway, body)[0] == 200               # Meta retries a delivery it thinks failed
    first = wait_for_replies(platforms, sender)
    assert facebook_post(gateway, body)[0] == 200               # and a late replay
    settle(2)
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
    settle(2)
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
    notices = lambda: [m for m in platforms.messages_to(sender) if m["text"] == notice("rate_limited", "en")]
    wait_for(notices)
    settle(3)
    assert len(notices()) == 1


# --- X direct messages ----------------------------------------------------------------------------------------

def test_x_direct_messages_are_answered_signed_and_the_bots_own_are_ignored(gateway, platforms):
    sender, event_id = new_sender(), str(uuid.uuid4().int)[:18]
    own = dm_event(TWITTER_BOT_USER_ID, "I am the bot")
    body = dm_body(dm_event(sender, "berapa harga pelan starter?", event_id=event_id), own)
    assert twitter_post(gateway, body)[0] == 200
    sent = wait_for_replies(platforms, sender)
    assert "sebulan" in " ".join(m["text"] for m in sent)
    authorization = sent[0]["raw"]["authorization"]
    assert authorization.startswith("OAuth ") and 'oauth_consumer_key="test-consumer-key"' in authorization
    assert 'oauth_token="test-access-token"' in authorization and "oauth_signature=" in authorization
    assert any(c["api"] == "x-typing" and c["recipient"] == sender for c in platforms.calls)
    twitter_post(gateway, body)                                           # replayed event
    settle(2)
    assert len(platforms.messages_to(sender)) == len(sent)
    assert platforms.messages_to(TWITTER_BOT_USER_ID) == []


def test_x_quick_reply_options_and_responses(gateway, platforms):
    sender = new_sender()
    twitter_post(gateway, dm_body(dm_event(sender, "what is my early termination penalty?")))
    with_options = [m for m in wait_for_replies(platforms, sender) if m["buttons"]]
    options = with_options[0]["buttons"]
    assert 0 < len(options) <= 20 and all(len(o["label"]) <= 36 for o in options)
    before = len(platforms.messages_to(sender))
    twitter_post(gateway, dm_body(dm_event(sender, options[0]["label"], quick_reply=options[0]["metadata"])))
    asked = wait_for_replies(platforms, sender, at_least=before + 1)[before:]
    assert "account number" in " ".join(m["text"] for m in asked).lower()


# --- outages and restarts -------------------------------------------------------------------------------------

def test_rasa_down_then_up_one_hold_notice_and_each_reply_once_in_order(gateway, platforms, rasa_switch):
    sender = new_sender()
    hold = notice("hold_on", "en")
    rasa_switch.down()
    try:
        facebook_post(gateway, page_body(messaging(sender, "how much is the starter plan?")))
        wait_for(lambda: platforms.messages_to(sender))
        facebook_post(gateway, page_body(messaging(sender, "can I pay with boost?")))
        settle(3)
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
    gateway.start()
    texts = [m["text"] for m in wait_for_replies(platforms, sender, at_least=2, quiet=3)]
    assert any("RM" in t for t in texts) and len(texts) == len(set(texts))
    assert "pending again" in gateway.log() or "answered" in gateway.log()


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
    assert not bot_texts(again)
    history = widget_exchange(background_loop, gateway.url, [{**hello, "session": session}],
                              until=lambda r: len(r) >= 2)
    messages = history[1]["messages"]
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


def test_logs_carry_no_message_text(gateway):
    log = gateway.log()
    for text in ("how much is the starter plan", "berapa harga pelan", "boleh bayar guna boost", "early termination"):
        assert text not in log
    assert "inbox" in log


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
    settle(2)
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
    settle(1.5)
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
    twitter_post(gateway, dm_body(dm_event(sender, "salam, saya ada soalan tentang ksos")))
    wait_for_replies(platforms, sender)
    twitter_post(gateway, dm_body(dm_event(sender, "blip blop zorg")))
    wait_for_replies(platforms, sender, at_least=2)
    twitter_post(gateway, dm_body(dm_event(sender, "zorg blop blip lagi")))
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
