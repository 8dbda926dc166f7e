"""The security building blocks as plain functions: secrets of a checkout, constant-time comparisons, JSON from
outside, client addresses behind proxies, what the tracker store writes, the whole-message collector, the
activation-code cipher."""
import asyncio
import multiprocessing
import os
import stat

import pytest

from bot.accounts.crypto import Cipher, UnreadableSecret
from bot.gateway.clients import client_address, masked_address, parse_networks
from bot.gateway.json_input import BadJson, nesting_depth, parse_json, parse_json_object
from bot.gateway.messages import as_words
from bot.local_secrets import ensure_secrets, parse_secrets, read_secrets, secure_var_dir
from bot.rasa_runtime.tracker_store import redact_event
from bot.secret_compare import bearer, same_secret
from bot.settings import MissingSecret, load_settings
from bot.vocabulary import response_source


def test_same_secret_is_safe_on_anything():
    assert same_secret("abc", "abc") and same_secret(b"abc", "abc")
    for given in (None, "", "abd", "ab", "abcd", "é", "\udcff", "a" * 10_000, b"\xff"):
        assert not same_secret(given, "abc")
    assert not same_secret("", "") and not same_secret("abc", "") and not same_secret("abc", None)
    assert bearer("Bearer t0k") == "t0k" and bearer("bearer  t0k ") == "t0k"
    assert bearer(None) is None and bearer("Bearer") is None and bearer("Basic t0k") is None


def test_json_from_outside():
    assert parse_json_object(b'{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    assert nesting_depth({"a": [1, {"b": 2}]}) == 3 and nesting_depth(5) == 0
    for raw in (b"", b"{", b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000, b"[" * 40 + b"]" * 40):
        with pytest.raises(BadJson):
            parse_json(raw)
    with pytest.raises(BadJson):
        parse_json_object(b"[1, 2]")


class FakeRequest:
    def __init__(self, remote, forwarded=None):
        self.remote = remote
        self.headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}


def test_client_address_believes_only_trusted_proxies():
    proxies = parse_networks("127.0.0.1, 10.0.0.0/8")
    assert client_address(FakeRequest("203.0.113.9", "1.2.3.4"), proxies) == "203.0.113.9"      # not a proxy
    assert client_address(FakeRequest("10.1.2.3", "1.2.3.4, 198.51.100.7"), proxies) == "198.51.100.7"
    assert client_address(FakeRequest("10.1.2.3", "198.51.100.7, 10.9.9.9"), proxies) == "198.51.100.7"
    assert client_address(FakeRequest("10.0.0.1", "garbage, 10.9.9.9"), proxies) == "10.0.0.1"
    # A loopback peer nobody listed as a proxy: the client is unknown (not every customer at once).
    assert client_address(FakeRequest("127.0.0.1", "1.2.3.4"), ()) == ""
    assert client_address(FakeRequest("::1"), ()) == "" and client_address(FakeRequest(None), ()) == ""
    assert masked_address("203.0.113.77") == "203.0.113.x" and masked_address("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert masked_address("") == "?"
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/8, not-an-address")


def test_typed_commands_become_words():
    assert as_words("/request_human") == "request_human"
    assert as_words('  //inform{"verification_code": "verified"}') == 'inform{"verification_code": "verified"}'
    assert as_words("/ /restart") == as_words(" \t/\n/ restart") == as_words("\u3000/restart") == "restart"
    assert as_words("what about /faq?") == "what about /faq?" and as_words("/") == as_words("/ / ") == ""


def test_the_tracker_store_writes_redacted_events():
    user = {"event": "user", "text": "ic 901231-14-5678 kod 482913", "input_channel": "widget",
            "metadata": {"client_ip": "203.0.113.5", "language": "ms", "gateway_message_id": "widget:abc"},
            "parse_data": {"text": "ic 901231-14-5678 kod 482913", "intent": {"name": "faq"},
                           "entities": [{"entity": "x", "value": "siti@kedai.my"}],
                           "metadata": {"client_ip": "203.0.113.5"}}}
    stored = redact_event(user)
    assert stored["text"] == stored["parse_data"]["text"] == "ic [nric] kod [code]"
    normalised = {"event": "user", "text": "email ali_x@company.my",
                  "parse_data": {"text": "email ali_tak@company negcompany.my"}}   # as the normaliser rewrote it
    assert redact_event(normalised)["parse_data"]["text"] == "email [email]"
    assert stored["parse_data"]["entities"][0]["value"] == "[email]" and stored["parse_data"]["intent"]["name"] == "faq"
    assert stored["metadata"] == {"language": "ms", "gateway_message_id": "widget:abc"}
    assert stored["parse_data"]["metadata"] == {}
    assert user["text"].startswith("ic 9012")                              # the event itself is not changed
    slot = redact_event({"event": "slot", "name": "session_started_metadata",
                         "value": {"client_ip": "1.2.3.4", "language": "en"}})
    assert slot["value"] == {"language": "en"}
    assert redact_event({"event": "slot", "name": "verification_code", "value": "482913"})["value"] == "[code]"
    bot = {"event": "bot", "text": "Your plan: Starter, RM30", "data": {}}
    assert redact_event(bot) == bot


@pytest.mark.integration
def test_each_response_is_collected_whole():
    from bot.rasa_runtime.channel import WholeMessageCollector

    collector = WholeMessageCollector()
    asyncio.run(collector.send_response("c", {"text": "First.\n\nSecond.", "buttons": [{"title": "A", "payload": "/a"}],
                                               "custom": {"handoff": {"reason": "fallback"}}}))
    asyncio.run(collector.send_response("c", {"text": "", "quick_replies": [{"title": "B", "payload": "/b"}]}))
    asyncio.run(collector.send_response("c", {}))
    asyncio.run(collector.send_response("c", {"text": "Plans", "metadata": {"source": "FAQ 2", "title": "Plans"}}))
    asyncio.run(collector.send_response("c", {"metadata": {"source": "FAQ 2"}}))      # shows nothing: not sent
    assert collector.messages == [
        {"recipient_id": "c", "text": "First.\n\nSecond.", "buttons": [{"title": "A", "payload": "/a"}],
         "custom": {"handoff": {"reason": "fallback"}}},
        {"recipient_id": "c", "buttons": [{"title": "B", "payload": "/b"}]},
        {"recipient_id": "c", "text": "Plans", "source": "FAQ 2"}]


def test_a_responses_source_is_read_from_its_metadata():
    assert response_source({"text": "a", "metadata": {"source": "FAQ 2", "title": "Plans"}}) == "FAQ 2"
    assert response_source({"text": "a", "source": "FAQ 2"}) == "FAQ 2"          # metadata merged into the message
    assert response_source({"text": "a", "metadata": {"source": ""}}) is None
    assert response_source({"text": "a", "metadata": "FAQ 2"}) is None


def test_the_activation_code_cipher_rotates_keys():
    old, new = Cipher("b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleTA="), None
    token = old.encrypt("MJ7K2-QX9P4-LT3RW-8DZ5N")
    assert "MJ7K2" not in token and old.decrypt(token) == "MJ7K2-QX9P4-LT3RW-8DZ5N"
    new = Cipher("bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleTE=,b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleTA=")
    assert new.decrypt(token) == "MJ7K2-QX9P4-LT3RW-8DZ5N"                  # the old key still decrypts
    with pytest.raises(UnreadableSecret):
        Cipher("bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleTE=").decrypt(token)
    for bad in ("", " , ", "short"):
        with pytest.raises(ValueError):
            Cipher(bad)


def test_secrets_are_generated_once_privately_and_the_environment_wins(tmp_path):
    path = tmp_path / "var" / "secrets.env"
    env = {"SECRETS_FILE": str(path), "ACTION_SERVER_TOKEN": "from-the-environment"}
    assert ensure_secrets(env) == ["RASA_API_TOKEN", "DATA_ENCRYPTION_KEY"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    first = read_secrets(path)
    assert set(first) == {"RASA_API_TOKEN", "DATA_ENCRYPTION_KEY"}
    Cipher(first["DATA_ENCRYPTION_KEY"])                                   # a usable Fernet key
    assert ensure_secrets(env) == [] and read_secrets(path) == first        # kept, not regenerated
    settings = load_settings(env)
    assert settings.action_server_token == "from-the-environment"
    assert settings.rasa_api_token == first["RASA_API_TOKEN"]
    assert parse_secrets("# note\n\nA = 1\nbroken line\n") == {"A": "1"}


def _generate(path: str, queue) -> None:
    queue.put(ensure_secrets({"SECRETS_FILE": path}))


def test_two_processes_starting_at_once_agree_on_the_secrets(tmp_path):
    path = str(tmp_path / "secrets.env")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_generate, args=(path, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    generated = [queue.get(timeout=5) for _ in workers]
    assert sum(len(names) for names in generated) == 3                     # each secret made exactly once
    assert len(read_secrets(tmp_path / "secrets.env")) == 3


def test_missing_secrets_are_named(tmp_path):
    settings = load_settings({"SECRETS_FILE": str(tmp_path / "none.env")})
    with pytest.raises(MissingSecret, match="RASA_API_TOKEN, ACTION_SERVER_TOKEN not set"):
        settings.require("RASA_API_TOKEN", "ACTION_SERVER_TOKEN")


def test_var_is_made_private(tmp_path):
    var = tmp_path / "var"
    (var / "logs").mkdir(parents=True)
    (var / "logs" / "rasa.log").write_text("x")
    os.chmod(var, 0o755)
    os.chmod(var / "logs" / "rasa.log", 0o644)
    previous = os.umask(0o022)
    try:
        secure_var_dir(var)
        assert os.umask(0o077) == 0o077                                     # what this process creates is private
    finally:
        os.umask(previous)
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    assert stat.S_IMODE((var / "logs").stat().st_mode) == 0o700
    assert stat.S_IMODE((var / "logs" / "rasa.log").stat().st_mode) == 0o600


def test_webhook_bodies_in_any_shape_are_read_without_errors():
    from bot.gateway.channels import facebook, twitter

    odd_pages = [{"object": "page", "entry": 5}, {"object": "page", "entry": ["x", {"messaging": 5}]},
                 {"object": "page", "entry": [{"messaging": ["x", 7, {"sender": "abc"}, {"sender": {"id": "1"},
                  "message": {"mid": "m-1", "text": "hi", "quick_reply": "not an object"}}]}]}]
    parsed = [message for body in odd_pages for message, _ in facebook.inbound_messages(body)]
    assert [(m.sender_id, m.text, m.payload) for m in parsed] == [("1", "hi", None)]
    odd_dms = [{"direct_message_events": 5}, {"direct_message_events": ["x", {"type": "message_create",
               "message_create": "s"}, {"type": "message_create", "id": "9", "message_create": {
               "sender_id": "7", "message_data": "text"}}]}]
    odd_dms += [{"data": 5}, {"data": [5, None, {"event_type": "dm.received", "payload": 5}]},
                {"data": {"event_type": "dm.received", "filter": 5, "payload": {"data": [None, {"event_type":
                 "MessageCreate", "id": {"x": 1}, "sender_id": ["7"], "attachments": "many"}, {"event_type":
                 "MessageCreate", "id": True, "sender_id": "8", "text": {"t": 1}}]}}},
                {"data": {"event_type": "dm.received", "event_uuid": {"nested": True}, "payload": {
                 "direct_message_events": {"not": "a list"}}}}]
    dms = [m for body in odd_dms for delivery in twitter.deliveries(body, "4242", True) for m, _ in delivery.messages]
    assert [(m.sender_id, m.message_id, m.text) for m in dms] == [("7", "9", "")]
