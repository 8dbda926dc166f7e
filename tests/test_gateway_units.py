"""Gateway building blocks as plain functions: signatures, the CRC answer, OAuth 1.0a, event parsing, reply
rendering per channel, text splitting, the rate limit and reading replies back from a Rasa tracker."""
import base64
import hashlib
import hmac

from bot.gateway.channels import facebook, twitter
from bot.gateway.config import GatewaySettings
from bot.gateway.messages import Button, Reply, shorten, split_text
from bot.gateway.notices import LANGUAGES, notice, notice_keys
from bot.gateway.rasa_client import replies_after_message
from bot.gateway.ratelimit import SenderRateLimiter
from bot.gateway.worker import retry_delay


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


def test_oauth1_signature_matches_twitters_documented_example():
    """The worked example of X's "Creating a signature" page."""
    header = twitter.oauth1_header(
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


def test_twitter_events_skip_the_bot_itself_and_prefer_quick_reply_metadata():
    body = {"for_user_id": "BOT", "direct_message_events": [
        {"type": "message_create", "id": "e1", "created_timestamp": "1",
         "message_create": {"target": {"recipient_id": "BOT"}, "sender_id": "U1",
                            "message_data": {"text": "Yes", "quick_reply_response": {"type": "options",
                                                                                     "metadata": "/affirm"}}}},
        {"type": "message_create", "id": "e2",
         "message_create": {"target": {"recipient_id": "U1"}, "sender_id": "BOT", "message_data": {"text": "hi"}}},
        {"type": "message_create", "id": "e3",
         "message_create": {"target": {"recipient_id": "BOT"}, "sender_id": "U2", "message_data": {"text": "harga?"}}},
        {"type": "participant_join", "id": "e4"},
    ], "users": {}}
    parsed = list(twitter.inbound_messages(body, "BOT"))
    assert [(m.sender_id, m.message_id, m.rasa_text) for m in parsed] == [("U1", "e1", "/affirm"), ("U2", "e3", "harga?")]


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


def test_twitter_render_limits_options_and_labels():
    buttons = tuple(Button(f"Option number {i} with a very long label text", f"/x{i}") for i in range(25))
    events = twitter.render("U9", Reply("Pilih satu:", buttons))
    assert len(events) == 1
    create = events[0]["event"]["message_create"]
    assert create["target"] == {"recipient_id": "U9"}
    options = create["message_data"]["quick_reply"]["options"]
    assert len(options) == 20 and all(len(o["label"]) <= 36 for o in options)
    assert options[3]["metadata"] == "/x3"


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
    assert {"hold_on", "rate_limited", "too_long", "empty", "unsupported_attachment", "bad_request"} <= set(notice_keys())
    for key in notice_keys():
        texts = {language: notice(key, language) for language in LANGUAGES}
        assert texts["en"] != texts["ms"]
    assert notice("hold_on", None) == notice("hold_on", "en")


def test_replies_after_message_reads_the_bot_events_that_followed_it():
    events = [
        {"event": "user", "text": "hi", "metadata": {"gateway_message_id": "widget:a"}},
        {"event": "bot", "text": "Hello"},
        {"event": "user", "text": "plans", "metadata": {"gateway_message_id": "widget:b"}},
        {"event": "action", "name": "utter_faq"},
        {"event": "bot", "text": "Three plans", "data": {"buttons": [{"title": "Yes", "payload": "/affirm"}]}},
        {"event": "bot", "text": "Anything else?"},
        {"event": "user", "text": "bye", "metadata": {}},
        {"event": "bot", "text": "Bye"},
    ]
    assert replies_after_message(events, "widget:b") == [
        {"text": "Three plans", "buttons": [{"title": "Yes", "payload": "/affirm"}]}, {"text": "Anything else?"}]
    assert replies_after_message(events, "widget:zzz") is None


def test_settings_disable_channels_without_secrets_and_read_every_variable():
    settings = GatewaySettings.from_env({"WIDGET_ALLOWED_ORIGINS": "https://unifi.com.my/, https://a.example",
                                         "RASA_URL": "http://rasa:5005/", "GATEWAY_PORT": "9000"})
    assert settings.widget_allowed_origins == ("https://unifi.com.my", "https://a.example")
    assert settings.rasa_url == "http://rasa:5005" and settings.port == 9000
    assert settings.facebook_graph_url.startswith("https://graph.facebook.com/")
    assert settings.twitter_api_url == "https://api.twitter.com"

    from bot.gateway.app import Gateway
    from bot.gateway.channels.facebook import FacebookAdapter

    class NoStore:
        def dispose(self):
            pass

    adapter = FacebookAdapter(Gateway(settings, store=NoStore()))
    assert not adapter.enabled
    assert "FACEBOOK_APP_SECRET" in adapter.disabled_reason()


def test_the_gateway_process_redacts_without_loading_tensorflow():
    """spaCy's thinc would import TensorFlow (about 450 MB) just to see that it is there; the gateway runs none."""
    import subprocess
    import sys

    from bot.paths import REPO_ROOT

    script = ("import sys\n"
              "from bot.__main__ import without_ml_frameworks\n"
              "without_ml_frameworks()\n"
              "from bot.gateway.app import create_app\n"
              "from bot.privacy import redact\n"
              "assert redact('kod 482913') == 'kod [code]'\n"
              "print(sorted(name for name in ('tensorflow', 'torch', 'jax') if sys.modules.get(name)))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
