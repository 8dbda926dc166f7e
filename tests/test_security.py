"""Attacks on the running assistant, as someone on the same network or on the internet would try them: the
internal services without their secrets, forged and malformed channel traffic, identity tokens replayed or
forged, commands typed as text, personal data in what is kept, and what a plain checkout exposes."""
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import date
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest
from sqlalchemy import create_engine, select, text

from bot.accounts.importer import import_file
from bot.accounts.store import AccountStore
from bot.accounts.verification import sign_identity_token
from bot.gateway.models import InboxMessage, TranscriptEntry
from bot.gateway.store import widget_session_key
from bot.paths import REPO_ROOT
from bot.rasa_runtime.api import CHANNEL_PATH
from bot.services import gateway_command
from conftest import (
    ACTION_SERVER_TOKEN,
    DATA_ENCRYPTION_KEY,
    FACEBOOK_APP_SECRET,
    FACEBOOK_VERIFY_TOKEN,
    IDENTITY_TOKEN_SECRET,
    RASA_API_TOKEN,
    TWITTER_BOT_USER_ID,
    TWITTER_CONSUMER_SECRET,
    GatewayProcess,
    add_agent,
    api_path,
    free_port,
    gateway_environment,
)
from gateway_helpers import (
    bot_texts,
    dm_body,
    dm_event,
    facebook_post,
    http,
    messaging,
    page_body,
    wait_for,
    widget_exchange,
)

pytestmark = pytest.mark.integration


def raw_request(port: int, request: bytes, timeout: float = 10) -> int:
    """Send `request` as bytes (headers in any shape, even non-ASCII) and return the response's status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def post_bytes(path: str, body: bytes, headers: Dict[bytes, bytes]) -> bytes:
    lines = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close",
             b"Content-Type: application/json", b"Content-Length: " + str(len(body)).encode()]
    lines += [name + b": " + value for name, value in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def listening_addresses(port: int) -> Set[str]:
    """The local addresses a TCP port is listening on, from /proc/net/tcp and tcp6."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:        # 0A: LISTEN
                continue
            if width == 8:
                found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
            else:
                found.add("::" if int(address, 16) == 0 else "::1" if address.endswith("01000000") else address)
    return found


def deeply_nested(levels: int = 5000) -> bytes:
    return b"[" * levels + b"]" * levels


# --- the internal services ------------------------------------------------------------------------------------

ACTION_CALL = {"next_action": "action_account_answer", "sender_id": "widget:victim", "version": "3.6.21",
               "domain": {}, "tracker": {"sender_id": "widget:victim", "slots": {}, "latest_message": {
                   "text": "what is my balance?", "intent": {"name": "ask_outstanding_balance"}},
                   "events": [], "latest_input_channel": "widget"}}


def test_rasa_and_the_action_server_listen_on_loopback_only(assistant, test_settings, tmp_path):
    assert listening_addresses(test_settings.rasa_port) == {"127.0.0.1"}
    assert listening_addresses(test_settings.actions_port) == {"127.0.0.1"}
    # The gateway, with no host given (as `make run` starts it), is the one thing on every interface.
    env = gateway_environment(test_settings, f"sqlite:///{tmp_path / 'g.db'}", assistant.base_url)
    env.pop("GATEWAY_HOST", None)
    port = free_port()
    process = subprocess.Popen([*gateway_command(), "--port", str(port)],
                               cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_for(lambda: listening_addresses(port), timeout=60)
        assert listening_addresses(port) & {"0.0.0.0", "::"}
    finally:
        process.terminate()
        process.wait(15)


@pytest.mark.parametrize("authorization", [
    None, b"", b"Bearer", b"Bearer ", b"Bearer wrong-token", b"Basic " + ACTION_SERVER_TOKEN.encode(),
    b"Bearer " + ACTION_SERVER_TOKEN.encode() + b"x", b"Bearer \xc3\xa9\xff", b"Bearer " + b"x" * 6000,
])
def test_the_action_server_runs_nothing_without_its_token(assistant, test_settings, authorization):
    headers = {} if authorization is None else {b"Authorization": authorization}
    for path in ("/webhook", "/actions", f"/webhook?token={ACTION_SERVER_TOKEN}"):
        status = raw_request(test_settings.actions_port, post_bytes(path, json.dumps(ACTION_CALL).encode(), headers))
        assert status in (400, 401, 431), (path, authorization, status)      # never run, never a 5xx
    assert http("GET", f"http://127.0.0.1:{test_settings.actions_port}/health")[0] == 200


def test_the_action_server_with_its_token_and_no_cors(assistant, test_settings):
    request = urllib.request.Request(f"http://127.0.0.1:{test_settings.actions_port}/actions", method="GET",
                                     headers={"Authorization": f"Bearer {ACTION_SERVER_TOKEN}",
                                              "Origin": "https://evil.example"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200 and "action_account_answer" in response.read().decode()
        assert "Access-Control-Allow-Origin" not in response.headers
    # A malformed call, even authenticated, is a 4xx that echoes nothing back.
    status = raw_request(test_settings.actions_port, post_bytes(
        "/webhook", b'{"next_action": ', {b"Authorization": f"Bearer {ACTION_SERVER_TOKEN}".encode()}))
    assert status == 400


def test_rasa_http_api_needs_the_token(assistant, test_settings):
    base = f"http://127.0.0.1:{test_settings.rasa_port}"
    for method, path in [("GET", "/status"), ("GET", "/conversations/widget:victim/tracker"), ("GET", "/domain"),
                         ("POST", "/model/parse"), ("POST", "/conversations/widget:victim/messages"),
                         ("PUT", "/model"), ("DELETE", "/model"), ("POST", "/model/train")]:
        for query in ("", "?token=", "?token=wrong", f"?token={RASA_API_TOKEN}x"):
            request = urllib.request.Request(base + path + query, data=b"{}" if method != "GET" else None,
                                             method=method, headers={"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(request, timeout=10)
                raise AssertionError(f"{method} {path}{query} answered without the token")
            except urllib.error.HTTPError as refused:
                assert refused.code in (401, 403), (method, path, query, refused.code)
    assert http("GET", base + api_path("/status", RASA_API_TOKEN))[0] == 200
    # Rasa's open REST channel is not there to talk as a customer through.
    assert http("POST", base + "/webhooks/rest/webhook", b'{"sender": "x", "message": "hi"}',
                {"Content-Type": "application/json"})[0] == 404


@pytest.mark.parametrize("authorization", [
    None, b"", b"Bearer wrong", b"Token " + RASA_API_TOKEN.encode(), b"Bearer \xff\xfe", b"Bearer " + b"a" * 6000,
])
def test_the_gateway_channel_refuses_anyone_without_the_token(assistant, test_settings, authorization):
    headers = {} if authorization is None else {b"Authorization": authorization}
    body = json.dumps({"sender": "widget:victim", "message": "what is my balance?", "input_channel": "widget"})
    status = raw_request(test_settings.rasa_port, post_bytes(CHANNEL_PATH, body.encode(), headers))
    assert status in (401, 431)


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'"text"', deeply_nested(), b'{"message": "hi"}', b'{"sender": "", "message": "hi"}',
    json.dumps({"sender": "x" * 300, "message": "hi"}).encode(), b'{"sender": "a", "message": 5}',
    b'{"sender": "a", "message": "hi", "metadata": []}', b'{"sender": "a", "message": "hi", "input_channel": "admin"}',
    json.dumps({"sender": "a", "message": "x" * 20_000}).encode(),
])
def test_the_gateway_channel_answers_bad_bodies_with_400(assistant, test_settings, body):
    status = raw_request(test_settings.rasa_port, post_bytes(
        CHANNEL_PATH, body, {b"Authorization": f"Bearer {RASA_API_TOKEN}".encode()}))
    assert status == 400


def test_each_response_arrives_whole(assistant):
    replies = assistant.send(f"whole-{uuid.uuid4().hex[:8]}", "how much is the starter plan?")
    assert len(replies) == 1 and "\n\n" in replies[0]["text"]       # paragraphs stay in one message


def test_rasa_reports_no_crashes_to_sentry_even_with_telemetry_on(monkeypatch):
    """Rasa 3.6 sends uncaught exceptions to sentry.io whenever its telemetry is on (RASA_TELEMETRY_ENABLED or
    `rasa telemetry enable`); our wrapper (bot/rasa_runtime/launcher.py) switches that off for every Rasa command."""
    import rasa.__main__
    import rasa.telemetry
    import sentry_sdk

    from bot.rasa_runtime import launcher

    calls = []
    monkeypatch.setenv("RASA_TELEMETRY_ENABLED", "true")
    monkeypatch.setenv("RASA_EXCEPTION_WRITE_KEY", "key-of-the-test")      # as Rasa's packaged key file gives one
    monkeypatch.setattr(sentry_sdk, "init", lambda *args, **kwargs: calls.append(args))
    original = rasa.telemetry.initialize_error_reporting
    original()
    assert calls, "Rasa's own error reporting would have started (the test would not show anything otherwise)"
    calls.clear()
    monkeypatch.setattr(rasa.telemetry, "initialize_error_reporting", original)
    # Rasa's main() starts its error reporting before running the command: stand in for it, without telemetry.
    monkeypatch.setattr(rasa.__main__, "main", lambda: rasa.telemetry.initialize_error_reporting())
    assert launcher.run_rasa(["data", "validate"]) == 0 and calls == []


# --- what is kept -----------------------------------------------------------------------------------------------

SECRETS_TYPED = {
    "nric": "901231-14-5678", "card": "4111 1111 1111 1111", "phone": "012-345 6789", "email": "siti@kedai.my",
    "code": "482913", "activation": "MJ7K2-QX9P4-LT3RW-8DZ5N",
}


def test_the_tracker_store_keeps_none_of_what_the_customer_typed(assistant, test_settings):
    sender = f"pii-{uuid.uuid4().hex[:8]}"
    message = ("my ic {nric}, card {card}, hp {phone}, email {email}, code {code}, kod {activation}"
               .format(**SECRETS_TYPED))
    assert assistant.send(sender, message, {"client_ip": "203.0.113.77", "language": "en"})
    assistant.text(sender, "verify me")
    assistant.text(sender, "my account is 1000000002")          # the action reads the number: a code is sent
    engine = create_engine(test_settings.tracker_store_url)
    with engine.connect() as connection:
        stored = " ".join(row[0] for row in connection.execute(
            text("SELECT data FROM events WHERE sender_id = :sender"), {"sender": sender}))
    engine.dispose()
    for value in [*SECRETS_TYPED.values(), "1000000002", "203.0.113.77"]:
        assert value not in stored, value
    assert "[nric]" in stored and "[card number]" in stored and "[account number]" in stored
    tracker = json.dumps(assistant.tracker(sender))
    assert "901231-14-5678" not in tracker and "1000000002" not in tracker
    assert json.loads(tracker)["slots"]["account_number"] == "******0002"


def extra_accounts(store: AccountStore, numbers: List[str], folder: Path) -> None:
    """Accounts only the timing test uses (the demo ones count their daily codes across the whole session)."""
    path = folder / "timing-accounts.json"
    path.write_text(json.dumps([{
        "account_number": number, "business_name": f"Kedai {number}", "registration_type": "brn",
        "registration_id": f"20200100{number[-4:]}", "email": f"owner{number}@example.my",
        "phone": "+6012-000 0000", "subscriptions": [{"plan": "Starter", "start_date": "2026-01-05"}],
    } for number in numbers]))
    import_file(store, path, date.today())


def test_unknown_account_numbers_take_the_same_time(assistant, test_settings, tmp_path):
    existing = [f"17000000{i:02d}" for i in range(1, 7)]
    unknown = [f"17999999{i:02d}" for i in range(1, 7)]
    store = AccountStore(test_settings.database_url, DATA_ENCRYPTION_KEY)
    extra_accounts(store, existing, tmp_path)
    store.engine.dispose()
    timings: Dict[str, List[float]] = {"existing": [], "unknown": []}
    for known, missing in zip(existing, unknown, strict=False):
        for kind, number in (("existing", known), ("unknown", missing)):
            sender = f"timing-{uuid.uuid4().hex[:8]}"
            assistant.text(sender, "verify me")
            started = time.perf_counter()
            reply = assistant.text(sender, number)
            timings[kind].append(time.perf_counter() - started)
            assert "If this account exists" in reply
    existing_median, unknown_median = (statistics.median(timings[k]) for k in ("existing", "unknown"))
    assert min(existing_median, unknown_median) >= 0.4
    assert abs(existing_median - unknown_median) < 0.1, timings


# --- channels: forged traffic and malformed input ----------------------------------------------------------------

@pytest.fixture(scope="module")
def exposed_gateway(test_settings, assistant, tmp_path_factory):
    """A gateway with Messenger and X configured (their replies go nowhere: only what is refused matters here),
    the console's cookie as in production (Secure), behind a "proxy" on loopback that names the client in
    X-Forwarded-For."""
    folder = tmp_path_factory.mktemp("gateway-security")
    env = gateway_environment(
        test_settings, f"sqlite:///{folder / 'gateway.db'}", assistant.base_url,
        FACEBOOK_VERIFY_TOKEN=FACEBOOK_VERIFY_TOKEN, FACEBOOK_APP_SECRET=FACEBOOK_APP_SECRET,
        FACEBOOK_PAGE_ACCESS_TOKEN="page-token", FACEBOOK_GRAPH_URL="http://127.0.0.1:9",
        TWITTER_CONSUMER_KEY="key", TWITTER_CONSUMER_SECRET=TWITTER_CONSUMER_SECRET, TWITTER_ACCESS_TOKEN="t",
        TWITTER_ACCESS_TOKEN_SECRET="s", TWITTER_BOT_USER_ID=TWITTER_BOT_USER_ID, TWITTER_API_URL="http://127.0.0.1:9",
        CONSOLE_INSECURE_COOKIE="", GATEWAY_TRUSTED_PROXIES="127.0.0.1")
    process = GatewayProcess(env, folder / "gateway.log", free_port()).start()
    yield process
    process.stop()


@pytest.mark.parametrize("token", [
    '{"direct_message_events": [{"type": "message_create"}]}', "a b", "abc\"def", "x" * 129, "é", "<script>", "",
])
def test_the_x_crc_endpoint_signs_only_crc_tokens(exposed_gateway, token):
    from urllib.parse import quote

    for path in ("/webhooks/x", "/webhooks/twitter"):
        status, body = http("GET", f"{exposed_gateway.url}{path}?crc_token={quote(token)}")
        assert status == 400 and "response_token" not in body


def test_a_crc_signature_cannot_sign_a_webhook_body(exposed_gateway):
    """The attack: have the CRC endpoint sign a forged body, then post the body with that signature."""
    forged = json.dumps(dm_body(dm_event("666", "I am someone else")))
    from urllib.parse import quote

    assert http("GET", f"{exposed_gateway.url}/webhooks/twitter?crc_token={quote(forged)}")[0] == 400
    token = "bm90LWEtYm9keQ=="                       # a real-looking token is signed, but it is no JSON object
    for path in ("/webhooks/x", "/webhooks/twitter"):
        signature = json.loads(http("GET", f"{exposed_gateway.url}{path}?crc_token={token}")[1])
        for header in ("X-Twitter-Webhooks-Signature", "X-Twitter-Webhooks-Signature-OAuth2"):
            status, _ = http("POST", exposed_gateway.url + path, token.encode(),
                             {"Content-Type": "application/json", header: signature["response_token"]})
            assert status in (400, 403)


@pytest.mark.parametrize("header", [
    b"", b"sha256=", b"sha256", b"sha1=0123456789abcdef0123456789abcdef01234567", b"SHA256=abcd",
    b"sha256=\xc3\xa9\xc3\xa9\xc3\xa9", b"sha256=\xff\xfe\xfd", b"sha256=" + b"0" * 64 + b"\xe2\x80\x8b",
    b"sha256= " + b"a" * 64, b"sha256=" + b"A" * 7000,
])
def test_malformed_signature_headers_get_403_never_500(exposed_gateway, header):
    body = json.dumps(page_body(messaging("123", "hello"))).encode()
    for path, name in (("/webhooks/facebook", b"X-Hub-Signature-256"),
                       ("/webhooks/twitter", b"x-twitter-webhooks-signature"),
                       ("/webhooks/x", b"X-Twitter-Webhooks-Signature-OAuth2")):
        status = raw_request(exposed_gateway.port, post_bytes(path, body, {name: header}))
        assert status in (400, 403, 431), (path, header, status)      # 4xx; malformed or wrong: refused


def test_deep_or_malformed_json_is_a_400(exposed_gateway):
    for raw in (deeply_nested(), b'{"object": "page", "entry": ' + deeply_nested(40) + b"}", b"\xff\xfe{}"):
        assert facebook_post(exposed_gateway, None, raw=raw)[0] == 400
    deep_dm = deeply_nested(3000)
    import base64
    import hashlib
    import hmac

    signature = "sha256=" + base64.b64encode(hmac.new(TWITTER_CONSUMER_SECRET.encode(), deep_dm,
                                                      hashlib.sha256).digest()).decode()
    assert http("POST", exposed_gateway.url + "/webhooks/twitter", deep_dm,
                {"Content-Type": "application/json", "x-twitter-webhooks-signature": signature})[0] == 400
    assert http("GET", exposed_gateway.url + "/healthz")[0] == 200


def test_a_widget_frame_nested_too_deep_gets_an_error_and_the_socket_stays(exposed_gateway, background_loop):
    import aiohttp

    async def run():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(exposed_gateway.url.replace("http", "ws") + "/widget/ws") as ws:
                await ws.send_str("[" * 20000 + "]" * 20000)
                first = json.loads((await ws.receive(timeout=10)).data)
                await ws.send_json({"type": "hello", "session": None, "after": 0})
                second = json.loads((await ws.receive(timeout=10)).data)
                return first, second
    first, second = background_loop.run(run())
    assert first["type"] == "error" and first["code"] == "bad_request" and second["type"] == "session"


def test_customers_cannot_claim_the_gateways_own_message_keys(exposed_gateway, background_loop):
    hello = {"type": "hello", "session": None, "after": 0}
    frames = widget_exchange(background_loop, exposed_gateway.url, [hello] + [
        {"type": "message", "id": key, "text": "hi"} for key in
        ("agent:joined:1", "agent:handed-back:1", "agent:no-agent:1", "x" * 36, "../../etc")],
        until=lambda r: sum(1 for f in r if f["type"] == "error") >= 5)
    assert [f["code"] for f in frames if f["type"] == "error"] == ["bad_request"] * 5
    engine = create_engine(exposed_gateway.env["DATABASE_URL"])
    with engine.connect() as connection:
        keys = [row[0] for row in connection.execute(select(InboxMessage.message_id))]
    engine.dispose()
    assert not any(key.startswith("agent:") for key in keys)


def test_the_console_cookie_is_secure_by_default(exposed_gateway):
    add_agent(exposed_gateway.env, "sec.agent", "a-long-test-password")
    request = urllib.request.Request(exposed_gateway.url + "/api/agent/login", method="POST",
                                     data=json.dumps({"name": "sec.agent",
                                                      "password": "a-long-test-password"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # A forged CSRF token in every shape is a 403, never a 500.
    token = cookie.split(";", 1)[0]
    for csrf in (b"", b"x", b"\xc3\xa9" * 40, b"A" * 5000):
        status = raw_request(exposed_gateway.port, post_bytes(
            "/api/agent/logout", b"{}", {b"Cookie": token.encode(), b"X-CSRF-Token": csrf}))
        assert status in (403, 431), (csrf, status)


# --- typed commands ---------------------------------------------------------------------------------------------

def user_texts(assistant, conversation: str) -> List[str]:
    """What Rasa received as the customer's messages (its tracker's user events)."""
    return [e.get("text") for e in assistant.tracker(conversation)["events"] if e["event"] == "user"]


def widget_conversation(secret: str) -> str:
    """The conversation id of a widget session (its key: a hash of the secret the browser got)."""
    return f"widget:{widget_session_key(secret)}"


def test_typed_commands_reach_rasa_as_words(agent_gateway, assistant, background_loop):
    """Rasa takes a message starting with "/" as a command (an intent, even with slot values): only the payloads
    of buttons the assistant offered in the conversation, and the widget's own language switch, may be one."""
    hello = {"type": "hello", "session": None, "after": 0}
    def done(received):
        return any(frame == {"type": "typing", "on": False} for frame in received)

    typed = widget_exchange(background_loop, agent_gateway.url, [hello, {
        "type": "message", "id": str(uuid.uuid4()), "text": '/inform{"verification_code": "verified"}'}], until=done)
    conversation = widget_conversation(typed[0]['session'])
    assert user_texts(assistant, conversation) == ['inform{"verification_code": "verified"}']
    spaced = widget_exchange(background_loop, agent_gateway.url, [hello, {
        "type": "message", "id": str(uuid.uuid4()), "text": ' / /switch_language{"language":"ms"}'}], until=done)
    assert user_texts(assistant, widget_conversation(spaced[0]['session'])) == ['switch_language{"language":"ms"}']
    forced = widget_exchange(background_loop, agent_gateway.url, [hello, {
        "type": "message", "id": str(uuid.uuid4()), "text": "hi", "payload": "/request_human"}], until=done)
    assert user_texts(assistant, widget_conversation(forced[0]['session'])) == ["hi"]
    assert not any("join this chat" in text for text in bot_texts(forced))
    # The widget's own EN/BM switch is a control of the widget: its payload goes through.
    switched = widget_exchange(background_loop, agent_gateway.url, [hello, {
        "type": "message", "id": str(uuid.uuid4()), "text": "Bahasa Melayu",
        "payload": '/switch_language{"language":"ms"}'}], until=done)
    assert user_texts(assistant, widget_conversation(switched[0]['session'])) == ['/switch_language{"language":"ms"}']
    # So does a button the assistant offered: "None of these" after a "did you mean ...?".
    session = switched[0]["session"]
    offered = widget_exchange(background_loop, agent_gateway.url, [{**hello, "session": session}, {
        "type": "message", "id": str(uuid.uuid4()), "text": "pasal benda tu"}], until=done)     # vague
    buttons = [b for f in offered if f["type"] == "message" for b in f["message"]["buttons"]]
    assert buttons and buttons[-1]["payload"] == "/deny"
    widget_exchange(background_loop, agent_gateway.url, [{**hello, "session": session}, {
        "type": "message", "id": str(uuid.uuid4()), "text": buttons[-1]["title"], "payload": "/deny"}], until=done)
    assert user_texts(assistant, widget_conversation(session))[-1] == "/deny"


# --- identity tokens through the widget -------------------------------------------------------------------------

def tampered(token: str) -> str:
    """`token` with the last digit of its signature changed."""
    return token[:-1] + ("1" if token[-1] == "0" else "0")


def identity_token(number: str = "1000000003", lifetime: int = 600, issued: Optional[int] = None,
                   secret: str = IDENTITY_TOKEN_SECRET) -> str:
    issued = int(time.time()) if issued is None else issued
    return sign_identity_token(number, issued, issued + lifetime, secret)


def widget_turn(background_loop, url: str, session: Optional[str], frames: List[Dict], text: Optional[str]) -> tuple:
    """Open the widget (hello), send `frames`, then optionally one question; returns (session, all frames)."""
    sent = [{"type": "hello", "session": session, "after": 0}, *frames]
    if text is not None:
        sent.append({"type": "message", "id": str(uuid.uuid4()), "text": text, "metadata": {"language": "en"}})

    def until(received):
        if text is not None:
            return any(frame == {"type": "typing", "on": False} for frame in received)
        return sum(1 for frame in received if frame["type"] == "identity") >= len(frames)

    received = widget_exchange(background_loop, url, sent, until=until)
    assert received and received[0].get("type") == "session", received[:3]
    return received[0]["session"], received


def identity_answers(received: List[Dict]) -> List[bool]:
    return [f["verified"] for f in received if f["type"] == "identity"]


def test_identity_tokens_verify_once_expire_and_sign_out(agent_gateway, background_loop):
    url = agent_gateway.url
    token = identity_token()
    session, received = widget_turn(background_loop, url, None, [{"type": "identity", "token": token}],
                                    "is my account suspended?")
    assert identity_answers(received) == [True]
    assert any("suspended since" in t and "RM250" in t for t in bot_texts(received)), bot_texts(received)
    # The same token from another conversation: a replay, refused.
    _other, replayed = widget_turn(background_loop, url, None, [{"type": "identity", "token": token}],
                                   "is my account suspended?")
    assert identity_answers(replayed) == [False]
    assert not any("suspended since" in t for t in bot_texts(replayed))
    number, issued, expires, signature = token.split(".")
    for disguised in (f"{number}.{issued}.{expires}.{signature.upper()}", f"{number}.0{issued}.{expires}.{signature}",
                      f"{number}.{issued}.0{expires}.{signature.upper()}"):
        assert identity_answers(widget_turn(background_loop, url, None, [{"type": "identity", "token": disguised}],
                                            None)[1]) == [False], disguised
    # A reconnect of the same conversation may send it again.
    assert identity_answers(widget_turn(background_loop, url, session, [{"type": "identity", "token": token}],
                                        None)[1]) == [True]
    # The host page withdraws it (KSOSWidget.setIdentityToken(null)): the conversation is logged out.
    _, signed_out = widget_turn(background_loop, url, session, [{"type": "identity", "token": None}],
                                "is my account suspended?")
    assert identity_answers(signed_out) == [False]
    assert not any("suspended since" in t for t in bot_texts(signed_out))


BAD_TOKENS = {                  # made when the test runs: a token's validity depends on the time
    "lives 601 s": lambda: identity_token(lifetime=601),
    "expired": lambda: identity_token(issued=int(time.time()) - 700),
    "issued in 5 minutes": lambda: identity_token(issued=int(time.time()) + 300),
    "wrong secret": lambda: identity_token(secret="a-guess"),
    "tampered": lambda: tampered(identity_token()),
    "empty": lambda: "", "huge": lambda: "x" * 5000, "a number": lambda: 12, "a list": lambda: ["a"],
    "an object": lambda: {"token": 1}, "malformed": lambda: "1000000003.1.2.3",
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_bad_identity_tokens_verify_nothing(agent_gateway, background_loop, kind):
    token = BAD_TOKENS[kind]()
    session, received = widget_turn(background_loop, agent_gateway.url, None,
                                    [{"type": "identity", "token": token}], "is my account suspended?")
    assert identity_answers(received) == [False]
    texts = " ".join(bot_texts(received))
    assert "suspended since" not in texts and "0003" not in texts and "Traceback" not in texts


def test_identity_tokens_reach_no_inbox_transcript_tracker_or_log(agent_gateway, assistant, test_settings,
                                                                   background_loop):
    token = identity_token("1000000002")
    session, _ = widget_turn(background_loop, agent_gateway.url, None, [{"type": "identity", "token": token}],
                             "how much do I owe?")
    engine = create_engine(test_settings.database_url)
    with engine.connect() as connection:
        rows = [json.dumps(list(row)) for row in connection.execute(select(
            InboxMessage.message_metadata, InboxMessage.text).where(
            InboxMessage.conversation_id == widget_conversation(session)))]
        rows += [row[0] for row in connection.execute(select(TranscriptEntry.text).where(
            TranscriptEntry.conversation_id == widget_conversation(session)))]
    engine.dispose()
    signature = token.rsplit(".", 1)[1]
    assert rows and not any(signature in row for row in rows)
    assert signature not in json.dumps(assistant.tracker(widget_conversation(session)))
    assert signature not in agent_gateway.process.log()


# --- the console: agents read only what was handed over to them -------------------------------------------------

def test_agents_cannot_read_conversations_that_were_not_handed_over(agent_gateway, background_loop):
    agent_gateway.add_agent("nosy.agent", "a-long-test-password")
    nosy = agent_gateway.console("nosy.agent", "a-long-test-password")
    session, _ = widget_turn(background_loop, agent_gateway.url, None, [], "how much is the starter plan?")
    conversation = widget_conversation(session)
    for method, path, body in (("GET", f"/api/agent/conversations/{conversation}", None),
                               ("POST", f"/api/agent/conversations/{conversation}/open", None),
                               ("POST", "/api/assist/suggest", {"conversation_id": conversation})):
        assert nosy.call(method, path, body)[0] == 404, path
    assert nosy.call("GET", f"/api/agent/conversations/{conversation}?after={'9' * 30}")[0] == 400
    audit = subprocess.run([sys.executable, "-m", "bot", "agents", "audit", "--conversation", conversation],
                           cwd=REPO_ROOT, env=agent_gateway.process.env, capture_output=True, text=True, timeout=60)
    assert "no console access recorded" in audit.stdout


# --- a plain checkout -------------------------------------------------------------------------------------------

def plain_environment(tmp_path) -> Dict[str, str]:
    """The environment of a checkout where nobody set a secret."""
    env = {k: v for k, v in os.environ.items() if k not in (
        "RASA_API_TOKEN", "ACTION_SERVER_TOKEN", "DATA_ENCRYPTION_KEY", "IDENTITY_TOKEN_SECRET")}
    env.update({"SECRETS_FILE": str(tmp_path / "var" / "secrets.env"),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'ksos.db'}", "PYTHONPATH": str(REPO_ROOT)})
    return env


def test_services_refuse_to_start_open(tmp_path):
    env = plain_environment(tmp_path)
    for command in (["actions"], ["rasa-server"], ["gateway"]):
        done = subprocess.run([sys.executable, "-m", "bot", *command], cwd=REPO_ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2 and "not set" in done.stderr, (command, done.stderr[-500:])


def test_a_plain_checkout_generates_private_secrets(tmp_path):
    env = plain_environment(tmp_path)
    done = subprocess.run([sys.executable, "-m", "bot", "accounts", "seed-demo"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    secrets_file = tmp_path / "var" / "secrets.env"
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "var").stat().st_mode & 0o777) == "0o700"
    assert oct((tmp_path / "var" / "ksos.db").stat().st_mode & 0o777) == "0o600"
    assert "DATA_ENCRYPTION_KEY=" in secrets_file.read_text()
    from bot.local_secrets import ensure_secrets, read_secrets

    generated = ensure_secrets({"SECRETS_FILE": str(secrets_file)})
    assert generated == ["RASA_API_TOKEN", "ACTION_SERVER_TOKEN"]
    assert ensure_secrets({"SECRETS_FILE": str(secrets_file)}) == []          # generated once, then kept
    values = read_secrets(secrets_file)
    assert len(set(values.values())) == 3 and all(len(v) >= 40 for v in values.values())
    assert ensure_secrets({"SECRETS_FILE": str(secrets_file), "RASA_API_TOKEN": "from-env"}, ["RASA_API_TOKEN"]) == []


# --- findings of the attack review, each as the attack that now fails ---------------------------------------------

def test_a_conversation_id_does_not_open_its_session(exposed_gateway, background_loop):
    """Agents and logs see `widget:<key>`; the key is a hash of the session secret only the browser holds."""
    hello = {"type": "hello", "session": None, "after": 0}
    customer = widget_exchange(background_loop, exposed_gateway.url, [hello, {
        "type": "message", "id": str(uuid.uuid4()), "text": "my ic is 901231-14-5678"}],
        until=lambda r: any(f.get("type") == "ack" for f in r))
    secret = customer[0]["session"]
    key = widget_session_key(secret)
    hijack = widget_exchange(background_loop, exposed_gateway.url, [{**hello, "session": key}],
                             until=lambda r: len(r) >= 2)
    assert hijack[0]["session"] not in (secret, key) and hijack[1] == {"type": "history", "messages": []}
    resumed = widget_exchange(background_loop, exposed_gateway.url, [{**hello, "session": secret}],
                              until=lambda r: len(r) >= 2)
    assert resumed[0]["session"] == secret and resumed[1]["messages"]
    assert secret not in exposed_gateway.log()


def test_new_widget_sessions_are_limited_per_client_address(exposed_gateway, background_loop):
    import aiohttp

    async def sessions(address: str, count: int) -> List[Dict]:
        answers = []
        async with aiohttp.ClientSession() as client:
            for _ in range(count):
                async with client.ws_connect(exposed_gateway.url.replace("http", "ws") + "/widget/ws",
                                             headers={"X-Forwarded-For": f"{address}, 127.0.0.1"}) as ws:
                    await ws.send_json({"type": "hello", "session": None, "after": 0})
                    answers.append(json.loads((await ws.receive(timeout=10)).data))
        return answers

    flood = background_loop.run(sessions("198.51.100.23", 22), timeout=120)
    assert [a["type"] for a in flood[:20]] == ["session"] * 20
    assert [(a["type"], a.get("code")) for a in flood[20:]] == [("error", "rate_limited")] * 2
    assert background_loop.run(sessions("198.51.100.24", 1))[0]["type"] == "session"    # another client


def test_a_burst_of_login_guesses_is_counted_as_it_arrives(exposed_gateway):
    from concurrent.futures import ThreadPoolExecutor

    add_agent(exposed_gateway.env, "burst.target", "the-right-password")

    def guess(number: int) -> int:
        return http("POST", exposed_gateway.url + "/api/agent/login",
                    json.dumps({"name": "burst.target", "password": f"guess-{number}"}).encode(),
                    {"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.50"})[0]

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(guess, range(30)))
    assert statuses.count(401) <= 3 and statuses.count(429) >= 27, statuses      # 3 free tries, not 30


def test_odd_numbers_from_clients_are_4xx_not_5xx(exposed_gateway, background_loop, tmp_path):
    frames = widget_exchange(background_loop, exposed_gateway.url, [
        {"type": "hello", "session": None, "after": 10 ** 30}], until=lambda r: len(r) >= 2)
    assert frames[0]["type"] == "session" and frames[1]["type"] == "history"
    env = plain_environment(tmp_path)
    done = subprocess.run([sys.executable, "-m", "bot", "purge", "--older-than", "99999999"], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
