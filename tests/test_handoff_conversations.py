"""The assistant's side of the handoff, on the real trained model: on the gateway's channels a request for a
person (or a second miss in a row) is answered with the handoff message and its marker for the gateway; asked
directly (Rasa's gateway channel without a customer channel: no agents behind it) with the FAQ 11 contact
channels."""
import uuid

import pytest

pytestmark = pytest.mark.model

HANDOFF = {"handoff": {"reason": "request_human", "language": "en"}}


def turn(assistant, sender, text, channel=None, language=None):
    messages = assistant.send(sender, text, {"language": language} if language else {}, channel=channel)
    texts = "\n".join(m.get("text", "") for m in messages if m.get("text"))
    custom = [m["custom"] for m in messages if m.get("custom")]
    return texts, custom


def sender(channel="widget"):
    return f"{channel}:{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("channel", ["widget", "facebook", "twitter"])
def test_asking_for_a_person_hands_over_on_every_gateway_channel(assistant, channel):
    texts, custom = turn(assistant, sender(channel), "I want to talk to a human agent please", channel)
    assert custom == [HANDOFF]
    assert "agent" in texts and "join" in texts and "help@tm.com.my" in texts and "100" in texts


def test_malay_handoff_message(assistant):
    conversation = sender()
    turn(assistant, conversation, "hai, saya nak tanya pasal ksos", "widget", language="ms")
    texts, custom = turn(assistant, conversation, "saya nak bercakap dengan pegawai khidmat pelanggan", "widget")
    assert custom == [{"handoff": {"reason": "request_human", "language": "ms"}}]
    assert "ejen Unifi" in texts and "Pusat Hubungan Unifi" in texts


def test_without_the_gateway_the_contact_channels_are_given(assistant):
    texts, custom = turn(assistant, f"rest-{uuid.uuid4().hex[:8]}", "I want to talk to a human agent please")
    assert custom == []
    assert "help@tm.com.my" in texts and "join" not in texts


def test_a_second_miss_hands_over_and_the_count_starts_again_after(assistant):
    conversation = sender("facebook")
    first, custom = turn(assistant, conversation, "blip blop zorg", "facebook")
    assert custom == []
    second, custom = turn(assistant, conversation, "zorg blop blip again", "facebook")
    assert custom == [{"handoff": {"reason": "fallback", "language": "en"}}] and "couldn't understand" in second
    # After the agents hand the conversation back, the next miss is a first miss again ("did you mean…?").
    third, custom = turn(assistant, conversation, "flibber jabber", "facebook")
    assert custom == [] and "couldn't understand" not in third
