"""Gateway building blocks as plain functions: signatures, the CRC answer, OAuth 1.0a, event parsing (X Activity
API envelopes, v2 DM events, wrapped and Account Activity bodies), reply rendering per channel, numbered options,
rate-limit waits, text splitting, the rate limit and reading replies back from a Rasa tracker."""
import asyncio
import base64
import hashlib
import hmac

import aiohttp
import pytest
from aiohttp import web

from bot.gateway import x_api
from bot.gateway.adapter import DeliveryError, post_with_retry, rate_limit_wait
from bot.gateway.channels import facebook, twitter
from bot.gateway.config import GatewaySettings
from bot.gateway.inbox import asked_language
from bot.gateway.messages import Button, Reply, chosen_option, numbered_options, shorten, split_text
from bot.gateway.notices import LANGUAGES, notice, notice_keys
from bot.gateway.rasa_client import replies_after_message
from bot.gateway.ratelimit import SenderRateLimiter
from bot.gateway.worker import retry_delay
from bot.nlu.understanding import Understanding
from conftest import local_server

# --- signatures -----------------------------------------------------------------------------------------------

def test_facebook_signature_accepts_only_the_right_hmac():
    body = b'{"object":"page","entry":[]}'
    good = "sha256=" + hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert facebook.valid_signature("app-secret", body, good)
    assert facebook.valid_signature("app-secret", body, good.upper().replace("SHA256=", "sha256="))
    assert not facebook.valid_signature("app-secret", body + b" ", good)
    assert not facebook.valid_signature("other-secret", body, good)
    assert not facebook.valid_signature("app-secret", body, None)
    assert not facebook.valid_signature("app-secret", body, good.replace("sha256=", "sha1="))
    assert not facebook.valid_signature("", body, "sha256=")


def test_twitter_crc_response_matches_the_documented_formula():
    expected = base64.b64encode(hmac.new(b"consumer-secret", b"challenge-123", hashlib.sha256).digest()).decode()
    assert twitter.crc_response("consumer-secret", "challenge-123") == {"response_token": f"sha256={expected}"}


def test_twitter_signature_is_base64_hmac_of_the_body():
    body = b'{"for_user_id":"1"}'
    good = "sha256=" + base64.b64encode(hmac.new(b"cs", body, hashlib.sha256).digest()).decode()
    assert twitter.valid_signature("cs", body, good)
    assert not twitter.valid_signature("cs", body + b"\n", good)
    assert not twitter.valid_signature("cs", body, "sha256=AAAA")
    assert not twitter.valid_signature("", body, good)


def test_x_signatures_oauth2_header_with_the_client_secret_or_legacy_header_with_the_consumer_secret():
    body = b'{"data":{}}'

    def sign(secret):
        return "sha256=" + base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()

    oauth2, legacy = twitter.SIGNATURE_HEADER_OAUTH2, twitter.SIGNATURE_HEADER
    assert twitter.valid_signatures("client", "consumer", body, {oauth2: sign("client")})
    assert twitter.valid_signatures("client", "consumer", body, {legacy: sign("consumer")})
    assert twitter.valid_signatures("", "consumer", body, {oauth2: "sha256=nonsense", legacy: sign("consumer")})
    assert not twitter.valid_signatures("client", "consumer", body, {oauth2: sign("consumer")})   # swapped secrets
    assert not twitter.valid_signatures("client", "consumer", body, {legacy: sign("client")})
    assert not twitter.valid_signatures("client", "", body, {})
    assert not twitter.valid_signatures("", "", body, {oauth2: sign(""), legacy: sign("")})


def test_oauth1_signature_matches_twitters_documented_example():
    """The worked example of X's "Creating a signature" page."""
    header = x_api.oauth1_header(
        "POST", "https://api.twitter.com/1.1/statuses/update.json",
        {"status": "Hello Ladies + Gentlemen, a signed OAuth request!", "include_entities": "true"},
        consumer_key="xvz1evFS4wEEPTGEFPHBog", consumer_secret="kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
        token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
        token_secret="LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", timestamp=1318622958,
    )
    assert 'oauth_signature="hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D"' in header
    assert header.startswith("OAuth ")


# --- parsing --------------------------------------------------------------------------------------------------

def messenger_body(*events):
    return {"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": list(events)}]}


def test_messenger_events_prefer_quick_reply_and_postback_payloads_and_skip_echoes_and_receipts():
    body = messenger_body(
        {"sender": {"id": "U1"}, "recipient": {"id": "PAGE"}, "timestamp": 1,
         "message": {"mid": "m1", "text": "Plans", "quick_reply": {"payload": "/faq/plans"}}},
        {"sender": {"id": "PAGE"}, "recipient": {"id": "U1"}, "message": {"mid": "m2", "text": "hi", "is_echo": True}},
        {"sender": {"id": "U1"}, "recipient": {"id": "PAGE"}, "delivery": {"mids": ["m2"], "watermark": 1}},
        {"sender": {"id": "U1"}, "recipient": {"id": "PAGE"}, "read": {"watermark": 1}},
        {"sender": {"id": "U1"}, "recipient": {"id": "PAGE"}, "timestamp": 5,
         "postback": {"title": "Yes", "payload": "/affirm", "mid": "m3"}},
        {"sender": {"id": "U2"}, "recipient": {"id": "PAGE"},
         "message": {"mid": "m4", "attachments": [{"type": "image", "payload": {"url": "https://x"}}]}},
        {"sender": {"id": "U2"}, "recipient": {"id": "PAGE"},
         "message": {"mid": "m5", "text": "Get started", "quick_reply": {"payload": "GET_STARTED"}}},
    )
    parsed = list(facebook.inbound_messages(body))
    assert [(m.sender_id, m.message_id, m.rasa_text, attachments) for m, attachments in parsed] == [
        ("U1", "m1", "/faq/plans", False),
        ("U1", "m3", "/affirm", False),
        ("U2", "m4", "", True),
        ("U2", "m5", "Get started", False),        # not one of our payloads: the text is what counts
    ]
    assert parsed[0][0].conversation_id == "facebook:U1"


def test_messenger_ignores_other_objects_and_junk():
    assert list(facebook.inbound_messages({"object": "instagram", "entry": [{"messaging": [{}]}]})) == []
    assert list(facebook.inbound_messages({"object": "page", "entry": ["x", {"messaging": [1, None, {}]}]})) == []


def legacy_item(event_id, sender, text, recipient="BOT", **data):
    return {"type": "message_create", "id": event_id, "created_timestamp": "1",
            "message_create": {"target": {"recipient_id": recipient}, "sender_id": sender,
                               "message_data": {"text": text, **data}}}


def envelope(payload, event_type="dm.received", event_uuid="-6850472171600526495", user="BOT"):
    return {"data": {"event_uuid": event_uuid, "filter": {"user_id": user}, "event_type": event_type,
                     "tag": "dm-inbound", "payload": payload}}


def parsed(body, legacy_accepted=True):
    return [(d.event_uuid, [(m.sender_id, m.message_id, m.rasa_text, attached) for m, attached in d.messages],
             d.ignored) for d in twitter.deliveries(body, "BOT", legacy_accepted)]


def test_account_activity_bodies_skip_the_bot_itself_and_prefer_quick_reply_metadata():
    body = {"for_user_id": "BOT", "direct_message_events": [
        legacy_item("e1", "U1", "Yes", quick_reply_response={"type": "options", "metadata": "/affirm"}),
        legacy_item("e2", "BOT", "hi", recipient="U1"),
        legacy_item("e3", "U2", "harga?"),
        {"type": "participant_join", "id": "e4"},
    ], "users": {}}
    assert parsed(body) == [(None, [("U1", "e1", "/affirm", False), ("U2", "e3", "harga?", False)], "")]
    assert parsed(body, legacy_accepted=False) == [(None, [], "Account Activity API body after TWITTER_AAA_UNTIL")]
    assert parsed({**body, "for_user_id": "OTHER"})[0][2] == "for_user_id is another user's"


def test_xaa_dm_received_with_the_documented_wrapped_payload():
    """The dm.received example of docs.x.com's event payloads: direct_message_events plus a users map."""
    payload = {"direct_message_events": [legacy_item("2080765901528535096", "2222", "hello!")],
               "users": {"2222": {"data": {"id": "2222", "username": "OtherUser"}}}}
    assert parsed(envelope(payload)) == [
        ("-6850472171600526495", [("2222", "2080765901528535096", "hello!", False)], "")]


def test_xaa_dm_received_with_a_v2_dm_event_payload_bare_or_under_data():
    event = {"id": "1582838499983564806", "event_type": "MessageCreate", "text": "Hi everyone.",
             "sender_id": "944480690", "dm_conversation_id": "944480690-BOT", "created_at": "2022-10-19T20:58:00.000Z"}
    expected = [("-6850472171600526495", [("944480690", "1582838499983564806", "Hi everyone.", False)], "")]
    assert parsed(envelope(event)) == expected
    assert parsed(envelope({"data": event})) == expected
    assert parsed(envelope({"data": [event, {**event, "id": "2", "sender_id": "BOT"}]})) == expected
    assert parsed(envelope({**event, "event_type": "ParticipantsJoin"}))[0][1] == []
    assert parsed(envelope({**event, "dm_conversation_id": "1578398451921985538"}))[0][1] == []   # a group


def test_xaa_deliveries_of_other_event_types_or_users_are_ignored_and_a_batch_is_read_whole():
    event = {"id": "7", "event_type": "MessageCreate", "text": "hi", "sender_id": "U1"}
    for event_type in ("dm.sent", "dm.indicate_typing", "dm.read", "follow.follow", "chat.received", None):
        assert parsed(envelope(event, event_type=event_type))[0][1] == []
        assert "is not subscribed" in parsed(envelope(event, event_type=event_type))[0][2]
    assert parsed(envelope(event, user="OTHER"))[0][2] == "filter is another user's"
    batch = {"data": [envelope(event, event_uuid="1")["data"], envelope({**event, "id": "8"}, event_uuid="2")["data"]]}
    assert [(uuid, [m[1] for m in messages]) for uuid, messages, _ in parsed(batch)] == [("1", ["7"]), ("2", ["8"])]
    assert parsed({"favorite_events": []})[0][2] == "no direct message in the body"


def test_x_attachments_are_flagged_and_their_media_link_is_not_a_question():
    v2 = {"id": "9", "event_type": "MessageCreate", "text": "https://t.co/AbC123", "sender_id": "U1",
          "attachments": {"media_keys": ["3_1"]}}
    assert parsed(envelope(v2))[0][1] == [("U1", "9", "", True)]
    assert parsed(envelope({**v2, "text": "is this the code? https://t.co/AbC123"}))[0][1] == [
        ("U1", "9", "is this the code?", True)]
    legacy = legacy_item("10", "U2", "my screen https://t.co/Zz9", attachment={
        "type": "media", "media": {"url": "https://t.co/Zz9", "type": "photo"}})
    assert parsed({"direct_message_events": [legacy]})[0][1] == [("U2", "10", "my screen", True)]
    assert parsed(envelope({**v2, "attachments": {}}))[0][1] == [("U1", "9", "https://t.co/AbC123", False)]


# --- rendering ------------------------------------------------------------------------------------------------

def test_messenger_render_splits_at_2000_and_puts_at_most_13_short_quick_replies_on_the_last_chunk():
    buttons = tuple(Button(f"A rather long option title {i}", f"/faq/q{i}") for i in range(15))
    reply = Reply(("word " * 900).strip(), buttons)
    bodies = facebook.render("U1", reply)
    assert len(bodies) == 3
    assert all(len(b["message"]["text"]) <= 2000 for b in bodies)
    assert " ".join(b["message"]["text"] for b in bodies) == reply.text
    assert all(b["messaging_type"] == "RESPONSE" and b["recipient"] == {"id": "U1"} for b in bodies)
    assert "quick_replies" not in bodies[0]["message"]
    quick = bodies[-1]["message"]["quick_replies"]
    assert len(quick) == 13 and all(len(q["title"]) <= 20 and q["content_type"] == "text" for q in quick)
    assert quick[0]["payload"] == "/faq/q0"


def test_messenger_agent_replies_carry_the_human_agent_tag_only_when_enabled():
    agent_reply = Reply("Hi, Aisyah from Unifi here.", role="agent")
    assert facebook.render("U1", agent_reply)[0]["messaging_type"] == "RESPONSE"
    tagged = facebook.render("U1", agent_reply, human_agent_tag=True)[0]
    assert (tagged["messaging_type"], tagged["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    assert "tag" not in facebook.render("U1", Reply("bot answer"), human_agent_tag=True)[0]


def test_x_render_shows_buttons_as_a_numbered_list_under_the_hint_in_one_message():
    buttons = tuple(Button(f"Option number {i} " + "with a very long label text " * 4, f"/x{i}") for i in range(25))
    texts = twitter.render(Reply("Pilih satu:", buttons), "Balas dengan nombor pilihan anda:")
    assert len(texts) == 1
    lines = texts[0].split("\n")
    assert lines[:3] == ["Pilih satu:", "", "Balas dengan nombor pilihan anda:"]
    assert len(lines) == 3 + 20 and lines[3].startswith("1. Option number 0") and lines[-1].startswith("20. ")
    assert all(len(line) <= 4 + twitter.OPTION_TITLE_LIMIT for line in lines[3:])
    assert twitter.render(Reply("Harga?"), "hint") == ["Harga?"]
    assert twitter.render(Reply("", (Button("Ya", "/affirm"),)), "Pilih:") == ["Pilih:\n1. Ya"]
    long = twitter.render(Reply(("kata " * 2500).strip(), buttons[:2]), "Pilih:")
    assert len(long) == 2 and all(len(text) <= twitter.TEXT_LIMIT for text in long)
    assert long[-1].endswith("Pilih:\n1. " + twitter.shorten(buttons[0].title, 80) + "\n2. "
                             + twitter.shorten(buttons[1].title, 80))


def test_a_numbered_option_is_chosen_by_its_number_or_its_words():
    offered = [Button("Early termination penalty", "/account_penalty"), Button("Yes", "/affirm"),
               Button("No", "/deny")]
    for text, payload in (("1", "/account_penalty"), ("2.", "/affirm"), (" 3 ", "/deny"), ("no 2", "/affirm"),
                          ("#3", "/deny"), ("(2)", None), ("yes", "/affirm"), ("YES!", "/affirm"),
                          ("early termination penalty", "/account_penalty"), ("4", None), ("0", None),
                          ("1 and 2", None), ("yes please", None), ("", None), ("12", None)):
        chosen = chosen_option(text, offered)
        assert (chosen.payload if chosen else None) == payload, text
    assert chosen_option("same", [Button("Same", "/a"), Button("same", "/b")]) is None      # ambiguous
    assert numbered_options(tuple(offered[:2]), "Reply with the number of your choice:") == (
        "Reply with the number of your choice:\n1. Early termination penalty\n2. Yes")


def test_send_refusals_are_classified():
    blocked = twitter.classify_refusal(DeliveryError('HTTP 403: {"detail": "You cannot send messages to this user"}',
                                                     retryable=False, status=403))
    assert blocked.recipient_unreachable and not blocked.retryable
    scopes = twitter.classify_refusal(DeliveryError('HTTP 403: {"reason": "client-not-enrolled"}', retryable=False,
                                                    status=403))
    assert scopes.retryable and scopes.retry_after == twitter.AUTH_RETRY_SECONDS and not scopes.recipient_unreachable
    lost = twitter.classify_refusal(DeliveryError("HTTP 401: Unauthorized", retryable=False, status=401))
    assert lost.retryable and "x authorize" in str(lost)
    bad = DeliveryError("HTTP 400: text is required", retryable=False, status=400)
    assert twitter.classify_refusal(bad) is bad


def test_rate_limit_waits_from_retry_after_or_the_reset_epoch():
    assert rate_limit_wait({"Retry-After": "7"}) == 7.0
    assert rate_limit_wait({"x-rate-limit-reset": "1000060"}, now=1000000) == 60.0
    assert rate_limit_wait({"x-rate-limit-reset": "999990"}, now=1000000) == 0.0
    assert rate_limit_wait({"x-rate-limit-reset": "soon"}) is None
    assert rate_limit_wait({"x-rate-limit-reset": "9" * 40}) is None
    assert rate_limit_wait({}) is None


@pytest.mark.integration
def test_post_with_retry_waits_a_short_reset_and_hands_a_long_one_to_the_inbox():
    import time

    resets = []

    async def handler(request):
        resets.append(time.time())
        if len(resets) == 1:                                           # short wait: 1 s
            return web.json_response({"title": "Too Many Requests"}, status=429,
                                     headers={"x-rate-limit-reset": str(int(time.time()) + 1)})
        if len(resets) == 3:                                           # long wait: 15 minutes
            return web.json_response({}, status=429, headers={"x-rate-limit-reset": str(int(time.time()) + 900)})
        return web.json_response({"data": {"dm_event_id": "1"}}, status=201)

    async def run():
        app = web.Application()
        app.router.add_post("/send", handler)
        async with local_server(app) as base, aiohttp.ClientSession() as session:
            first = await post_with_retry(session, base + "/send", json={"text": "a"})
            with pytest.raises(DeliveryError) as refused:
                await post_with_retry(session, base + "/send", json={"text": "b"})
            return first, refused.value

    first, refused = asyncio.run(run())
    assert first == {"data": {"dm_event_id": "1"}} and len(resets) == 3
    assert resets[1] - resets[0] >= 0.5                                # waited for the window to reopen
    assert refused.retryable and refused.status == 429 and 890 <= refused.retry_after <= 900


def test_split_text_prefers_paragraphs_then_words():
    text = "a" * 1500 + "\n\n" + "b" * 1000
    assert split_text(text, 2000) == ["a" * 1500, "b" * 1000]
    assert split_text("x" * 4500, 2000) == ["x" * 2000, "x" * 2000, "x" * 500]
    assert split_text("short", 2000) == ["short"]
    assert split_text("   ", 2000) == []


def test_shorten_keeps_short_labels_and_marks_cut_ones():
    assert shorten("Plans", 20) == "Plans"
    cut = shorten("Kaspersky Small Office Security", 20)
    assert len(cut) == 20 and cut.endswith("…")


def test_reply_from_rasa_keeps_text_buttons_and_image():
    reply = Reply.from_rasa({"recipient_id": "x", "text": "Pick", "buttons": [{"title": "Yes", "payload": "/affirm"},
                                                                               {"title": "broken"}]})
    assert reply.text == "Pick" and reply.buttons == (Button("Yes", "/affirm"),)
    assert Reply.from_json(reply.to_json()) == reply


# --- rate limit, retries, notices -----------------------------------------------------------------------------

def test_rate_limit_allows_the_limit_then_notifies_once_per_window():
    now = [0.0]
    limiter = SenderRateLimiter(limit=3, window=60, clock=lambda: now[0])
    assert [limiter.check("a") for _ in range(3)] == [(True, False)] * 3
    assert limiter.check("a") == (False, True)
    assert limiter.check("a") == (False, False)
    assert limiter.check("b") == (True, False)          # per sender
    now[0] = 61
    assert limiter.check("a") == (True, False)


def test_retry_delay_grows_and_is_capped():
    delays = [retry_delay(n, cap=30) for n in range(1, 9)]
    assert 0.9 <= delays[0] <= 1.1
    assert delays[2] > delays[1] > delays[0]
    assert max(delays) <= 30 * 1.1


def test_every_notice_has_english_and_malay():
    expected = {"hold_on", "rate_limited", "too_long", "empty", "unsupported_attachment", "bad_request"}
    assert expected <= set(notice_keys())
    for key in notice_keys():
        texts = {language: notice(key, language) for language in LANGUAGES}
        assert texts["en"] != texts["ms"]
    assert notice("hold_on", None) == notice("hold_on", "en")


def test_replies_after_message_reads_the_bot_events_that_followed_it():
    events = [
        {"event": "user", "text": "hi", "metadata": {"gateway_message_id": "widget:a"}},
        {"event": "bot", "text": "Hello"},
        {"event": "user", "text": "plans", "metadata": {"gateway_message_id": "widget:b"},
         "parse_data": {"intent": {"name": "faq", "confidence": 0.9},
                        "response_selector": {"faq": {"response": {"intent_response_key": "faq/plans",
                                                                   "confidence": 0.5}}}}},
        {"event": "action", "name": "utter_faq"},
        {"event": "bot", "text": "Three plans", "data": {"buttons": [{"title": "Yes", "payload": "/affirm"}]},
         "metadata": {"utter_action": "utter_faq/plans", "source": "FAQ 2"}},       # its source, for the agents
        {"event": "bot", "text": "Anything else?"},
        {"event": "user", "text": "bye", "metadata": {}},
        {"event": "bot", "text": "Bye"},
    ]
    answer = replies_after_message(events, "widget:b")
    assert answer is not None and answer.replies == [
        {"text": "Three plans", "buttons": [{"title": "Yes", "payload": "/affirm"}], "source": "FAQ 2"},
        {"text": "Anything else?"}]
    assert answer.understanding == Understanding("faq/plans", "faq/plans", 0.45)     # from the parse Rasa kept
    assert replies_after_message(events, "widget:a").understanding is None           # no parse kept
    assert replies_after_message(events, "widget:zzz") is None


def test_settings_disable_channels_without_secrets_and_read_every_variable():
    settings = GatewaySettings.from_env({"WIDGET_ALLOWED_ORIGINS": "https://unifi.com.my/, https://a.example",
                                         "RASA_URL": "http://rasa:5005/", "GATEWAY_PORT": "9000"})
    assert settings.widget_allowed_origins == ("https://unifi.com.my", "https://a.example")
    assert settings.rasa_url == "http://rasa:5005" and settings.port == 9000
    assert settings.facebook_graph_url.startswith("https://graph.facebook.com/")
    assert settings.twitter_api_url == "https://api.x.com"
    assert settings.twitter_aaa_until.isoformat() == "2027-01-01T00:00:00"       # the Account Activity API's end
    with pytest.raises(ValueError, match="TWITTER_AAA_UNTIL"):
        GatewaySettings.from_env({"TWITTER_AAA_UNTIL": "next year"})

    from bot.gateway.adapter import ChannelDeps
    from bot.gateway.channels.facebook import FacebookAdapter

    adapter = FacebookAdapter(ChannelDeps(settings, http=None, db=None, store=None, receive=None))
    assert not adapter.enabled
    assert "FACEBOOK_APP_SECRET" in adapter.disabled_reason()


def test_bad_settings_are_refused_at_start_with_each_variable_named():
    from bot.settings import InvalidSettings, load_settings

    with pytest.raises(InvalidSettings) as refused:
        load_settings({"GATEWAY_PORT": "eighty", "RASA_PORT": "70000", "RETENTION_DAYS": "0",
                       "SECRETS_FILE": "/nonexistent"})
    lines = str(refused.value).splitlines()[1:]
    assert [line.split("=")[0].strip() for line in lines] == ["RASA_PORT", "GATEWAY_PORT", "RETENTION_DAYS"]
    assert "not a whole number" in str(refused.value) and "from 1 to 65535" in str(refused.value)
    with pytest.raises(InvalidSettings) as refused:
        GatewaySettings.from_env({"GATEWAY_RATE_LIMIT_PER_MINUTE": "-1", "CONSOLE_INSECURE_COOKIE": "maybe",
                                  "HANDOFF_WAIT_MINUTES": "soon", "SECRETS_FILE": "/nonexistent"})
    named = str(refused.value)
    assert all(name in named for name in ("GATEWAY_RATE_LIMIT_PER_MINUTE", "CONSOLE_INSECURE_COOKIE",
                                          "HANDOFF_WAIT_MINUTES"))
    assert GatewaySettings.from_env({"GATEWAY_PORT": " ", "SECRETS_FILE": "/nonexistent"}).port == 8080


@pytest.mark.integration
def test_the_gateway_entry_point_redacts_without_loading_tensorflow():
    """spaCy's thinc would import TensorFlow (about 450 MB) just to see that it is there; the gateway runs none.
    `python -m bot gateway` up to the server start, with run_app replaced by a probe of what got imported."""
    import subprocess
    import sys

    from bot.paths import REPO_ROOT
    from conftest import TEST_SECRETS

    script = ("import sys\n"
              "from aiohttp import web\n"
              "def probe(app, **options):\n"
              "    app.close()\n"
              "    from bot.privacy.redaction import redact\n"
              "    assert redact('kod 482913') == 'kod [code]'\n"
              "    print(sorted(name for name in ('tensorflow', 'torch', 'jax') if sys.modules.get(name)))\n"
              "web.run_app = probe\n"
              "from bot.__main__ import main\n"
              "sys.exit(main(['gateway', '--port', '1']))\n")
    env = {**TEST_SECRETS, "SECRETS_FILE": "/nonexistent", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_sliding_window_counts_only_its_window_and_forgets_idle_keys():
    from bot.gateway.ratelimit import SlidingWindow

    window = SlidingWindow(10.0)
    for moment in (0.0, 4.0, 8.0):
        window.add("a", moment)
    assert list(window.recent("a", 9.0)) == [0.0, 4.0, 8.0]
    assert list(window.recent("a", 14.5)) == [8.0]                    # 0 and 4 fell out of the window
    window.remove("a", 8.0)
    assert len(window) == 0 and not window.recent("a", 15.0)
    window.add("b", 0.0)
    window.add("c", 20.0)
    window.forget_idle(now=25.0, above=1)
    assert len(window) == 1 and list(window.recent("c", 25.0)) == [20.0]
    window.clear("c")
    assert len(window) == 0


def test_the_language_switch_button_sets_the_conversations_language_and_nothing_else_does():
    assert asked_language('/switch_language{"language":"ms"}') == "ms"
    assert asked_language('/switch_language{"language": "en"}') == "en"
    assert asked_language('/switch_language{"language":"id"}') is None           # not a language we speak
    assert asked_language('/switch_language{"language":"ms"} /affirm') is None
    assert asked_language("/affirm") is None and asked_language(None) is None


def test_an_answers_source_line_names_its_documents_never_their_numbers():
    from bot.gateway.sources import for_customer, source_line
    assert source_line("FAQ 22", "en") == "Source: KSOS FAQ (Unifi, Aug 2023)"
    assert source_line("FAQ 32, 33, 25", "ms") == "Sumber: Soalan Lazim KSOS (Unifi, Ogos 2023)"
    assert source_line("Support Rules 2.2; FAQ 11", "en") == \
        "Source: Kaspersky Support Rules (7 Apr 2022); KSOS FAQ (Unifi, Aug 2023)"
    assert source_line("Support Rules, after 4.5; 4.4.5", None) == "Source: Kaspersky Support Rules (7 Apr 2022)"
    assert source_line("account records", "en") is None and source_line(None, "ms") is None
    assert source_line("FAQs 3", "en") is None                     # a prefix is a whole word
    entry = {"seq": 4, "role": "bot", "text": "…", "source": "FAQ 22", "language": "ms"}
    shown = for_customer(entry, "en")
    assert shown == {"seq": 4, "role": "bot", "text": "…", "language": "ms",
                     "source_line": "Sumber: Soalan Lazim KSOS (Unifi, Ogos 2023)"}
    assert for_customer({"seq": 5, "role": "bot", "text": "x", "source": "our records"}, "en") == \
        {"seq": 5, "role": "bot", "text": "x"}
    customer = {"seq": 6, "role": "customer", "text": "hi"}
    assert for_customer(customer, "en") == customer


def test_a_replys_source_comes_from_its_response_and_survives_the_inbox():
    reply = Reply.from_rasa({"text": "Plans …", "source": "FAQ 2"})
    assert reply.source == "FAQ 2" and Reply.from_json(reply.to_json()) == reply
    assert "source" not in Reply.from_rasa({"text": "hi"}).to_json()
    assert Reply.from_rasa({"text": "x", "source": ["FAQ 2"]}).source is None
    assert len(Reply.from_rasa({"text": "x", "source": "F" * 500}).source or "") == 200
