"""Handoffs, agents, console sessions, the agents' audit log and suggestion outcomes in the gateway's store, on SQLite
and PostgreSQL."""
from datetime import datetime, timedelta

import pytest

from bot.dialogue.handoff import (
    REQUEST_HUMAN,
    events_since_last_handoff,
    handoff_language,
    handoff_marker,
    handoff_reason,
    handoff_response,
)
from bot.gateway.agent_audit import AgentAuditLog
from bot.gateway.agent_directory import AgentDirectory
from bot.gateway.agents import LoginThrottle, check_password, hash_password, password_problem
from bot.gateway.handoffs import DUPLICATE, NOT_FOUND, NOT_OWNER, QUEUED, RESOLVED, HandoffStore
from bot.gateway.messages import InboundMessage, Reply
from bot.gateway.models import EDITED, IGNORED, SHOWN, USED, SuggestionSet
from bot.gateway.store import ANSWERED, DONE, TO_AGENT, GatewayStore, open_handoff
from bot.gateway.suggestion_log import SuggestionLog

T0 = datetime(2026, 11, 22, 12, 0, 0)
CONVERSATION = "widget:S1"
FAST_HASH = {"n": 2 ** 10}        # the stored format is the same; the production cost is tested once below


@pytest.fixture
def stores(account_store_url):
    store = GatewayStore(account_store_url)
    yield store, HandoffStore(store)
    store.dispose()


def customer(store, message_id, text="hello", now=T0, language="en"):
    return store.record_inbound(InboundMessage("widget", "S1", message_id, text=text), language=language,
                                now=now).inbox_id


def answer(store, row_id, text="Here you are", now=T0):
    """The assistant answers a customer's message and the answer is delivered."""
    assert store.claim(row_id, now=now) is not None
    store.save_replies(row_id, [Reply(text)], now=now)
    store.record_delivery(row_id, 0, Reply(text), now=now)


def hand_over(store, now=T0):
    """The customer asks for a person and the assistant's answer hands the conversation over."""
    row_id = customer(store, "m-human", "I want a human", now=now)
    store.claim(row_id, now=now)
    store.save_replies(row_id, [Reply("An agent will join")], handoff_reason=REQUEST_HUMAN, now=now)
    store.record_delivery(row_id, 0, Reply("An agent will join"), now=now)


def agents(store):
    directory = AgentDirectory(store)
    return (directory.add_agent("aisyah.r", hash_password("x" * 12, **FAST_HASH), now=T0, display_name="Aisyah"),
            directory.add_agent("ben", hash_password("y" * 12, **FAST_HASH), now=T0))


def outbound(store):
    """The rows waiting for delivery (agent replies, console notices), oldest first, as (role, text)."""
    due = store.due_messages(["widget"], now=T0 + timedelta(hours=1))
    found = []
    while due:
        row = store.claim(due[0][0], now=T0 + timedelta(hours=1))
        if row is not None and row.status == ANSWERED:
            for index, reply in enumerate(row.replies):
                store.record_delivery(row.id, index, Reply.from_json(reply), now=T0)
                found.append((reply["role"], reply["text"]))
        elif row is not None:
            raise AssertionError(f"a customer message for Rasa while the agents have the conversation: {row}")
        due = store.due_messages(["widget"], now=T0 + timedelta(hours=1))
    return found


def test_a_handoff_holds_the_customers_messages_for_the_agents_until_resolved(stores):
    store, handoffs = stores
    hand_over(store)
    (queued,) = handoffs.queue(agent_id=0, now=T0 + timedelta(minutes=4))
    assert queued["state"] == "waiting" and queued["waiting_seconds"] == 240 and queued["reason"] == REQUEST_HUMAN
    assert queued["last_customer_text"] == "I want a human" and queued["channel"] == "widget"

    held = customer(store, "m2", "are you there?", now=T0 + timedelta(minutes=1))
    assert store.claim(held, now=T0 + timedelta(minutes=1)) is None         # not for Rasa
    assert store.inbox_status("widget", "m2")["status"] == TO_AGENT
    assert [e["text"] for e in store.history(CONVERSATION)][-1] == "are you there?"   # but recorded

    aisyah, _ben = agents(store)
    handoffs.take(CONVERSATION, aisyah, now=T0)
    assert handoffs.resolve(CONVERSATION, aisyah, now=T0) == RESOLVED
    assert handoffs.queue(agent_id=aisyah.id) == []
    assert [role for role, _text in outbound(store)] == ["notice", "notice"]     # joined, handed back
    after = customer(store, "m3", "what plans are there?", now=T0 + timedelta(minutes=2))
    assert store.claim(after, now=T0 + timedelta(minutes=2)).rasa_text == "what plans are there?"


def test_one_open_handoff_per_conversation(stores):
    store, handoffs = stores
    hand_over(store)
    with store.session() as session:            # asked again while one is open: nothing new opens
        assert open_handoff(session, CONVERSATION, REQUEST_HUMAN, T0) is None
    held = customer(store, "m-again", "human please")
    assert store.claim(held, now=T0) is None       # held: the conversation is with the agents already
    assert store.inbox_status("widget", "m-again")["status"] == TO_AGENT
    assert len(handoffs.queue(agent_id=0)) == 1


def test_two_agents_open_the_same_conversation_the_first_takes_it(stores):
    store, handoffs = stores
    hand_over(store)
    aisyah, ben = agents(store)
    view, taken = handoffs.take(CONVERSATION, aisyah, now=T0)
    assert taken and view["state"] == "assigned" and view["mine"] and view["agent"] == "aisyah.r"
    view, taken = handoffs.take(CONVERSATION, ben, now=T0)
    assert not taken and not view["mine"] and view["agent"] == "aisyah.r"
    assert handoffs.reply(CONVERSATION, ben, "Hi, Ben here", "c-ben", now=T0) == NOT_OWNER
    assert handoffs.resolve(CONVERSATION, ben, now=T0) == NOT_OWNER
    assert outbound(store) == [("notice", "Aisyah from Unifi has joined the chat.")]


def test_agent_replies_are_delivered_once_in_order_and_refused_after_resolve(stores):
    store, handoffs = stores
    hand_over(store)
    aisyah, _ben = agents(store)
    handoffs.take(CONVERSATION, aisyah, now=T0)
    assert handoffs.reply(CONVERSATION, aisyah, "Hello, I'm Aisyah.", "c1", now=T0) == QUEUED
    assert handoffs.reply(CONVERSATION, aisyah, "Hello, I'm Aisyah.", "c1", now=T0) == DUPLICATE   # double click
    assert handoffs.reply(CONVERSATION, aisyah, "How can I help?", "c2", now=T0) == QUEUED
    assert handoffs.reply("widget:nobody", aisyah, "?", "c3", now=T0) == NOT_FOUND
    assert outbound(store) == [("notice", "Aisyah from Unifi has joined the chat."),
                               ("agent", "Hello, I'm Aisyah."), ("agent", "How can I help?")]
    agent_entries = [e for e in store.history(CONVERSATION) if e["role"] == "agent"]
    assert [e["client_id"] for e in agent_entries] == ["c1", "c2"]
    assert handoffs.resolve(CONVERSATION, aisyah, now=T0) == RESOLVED
    assert handoffs.resolve(CONVERSATION, aisyah, now=T0) == "already"
    assert handoffs.reply(CONVERSATION, aisyah, "one more thing", "c4", now=T0) == RESOLVED
    assert outbound(store)[-1][0] == "notice"            # "You're back with the Unifi assistant"
    assert handoffs.view(CONVERSATION, aisyah.id)["state"] == "resolved"


def test_malay_conversations_get_malay_notices(stores):
    store, handoffs = stores
    # The widget's UI said English; the assistant answered in Malay: its language wins.
    row_id = store.record_inbound(InboundMessage("widget", "S1", "m-ms", text="saya nak cakap dengan orang"),
                                  language_hint="en", now=T0).inbox_id
    assert store.conversation_language(CONVERSATION) == "en"
    store.claim(row_id, now=T0)
    store.save_replies(row_id, [Reply("Ejen akan menyertai")], handoff_reason="fallback", handoff_language="ms",
                       now=T0)
    assert store.conversation_language(CONVERSATION) == "ms"
    assert handoffs.queue(agent_id=0)[0]["language"] == "ms"
    store.record_delivery(row_id, 0, Reply("Ejen akan menyertai"), now=T0)
    assert store.claim(customer(store, "m-ok", "ok", now=T0, language=None), now=T0) is None     # held
    assert store.conversation_language(CONVERSATION) == "ms"
    aisyah, _ben = agents(store)
    handoffs.take(CONVERSATION, aisyah, now=T0)
    handoffs.resolve(CONVERSATION, aisyah, now=T0)
    texts = [text for _role, text in outbound(store)]
    assert texts[0] == "Aisyah daripada Unifi telah menyertai perbualan ini."
    assert texts[1].startswith("Ejen Unifi telah menutup perbualan ini.")


def test_suggestion_outcomes_used_edited_ignored(stores):
    store, handoffs = stores
    hand_over(store)
    aisyah, _ben = agents(store)
    handoffs.take(CONVERSATION, aisyah, now=T0)
    shown = [{"key": "faq/plans", "source": "FAQ 1", "confidence": 0.8, "answer": "There are 3 plans.",
              "title": "Plans"}]
    first = SuggestionLog(store).record(CONVERSATION, aisyah, "en", 1, shown, now=T0)
    second = SuggestionLog(store).record(CONVERSATION, aisyah, "en", 2, shown, now=T0)     # first -> ignored
    handoffs.reply(CONVERSATION, aisyah, "There are 3 plans.\n", "r1", suggestion=(second, 0), now=T0)
    third = SuggestionLog(store).record(CONVERSATION, aisyah, "en", 3, shown, now=T0)
    handoffs.reply(CONVERSATION, aisyah, "There are three plans, see FAQ 1.", "r2", suggestion=(third, 0), now=T0)
    fourth = SuggestionLog(store).record(CONVERSATION, aisyah, "en", 4, shown, now=T0)
    fifth = SuggestionLog(store).record(CONVERSATION, aisyah, "en", 5, shown, now=T0)
    handoffs.reply(CONVERSATION, aisyah, "My own words", "r3", suggestion=(fifth, 7), now=T0)   # bad index
    sixth = SuggestionLog(store).record(CONVERSATION, aisyah, "en", 6, shown, now=T0)
    handoffs.resolve(CONVERSATION, aisyah, now=T0)
    assert SuggestionLog(store).record("widget:nobody", aisyah, "en", None, shown, now=T0) is None
    with store.session() as session:
        outcomes = {row.id: row.outcome for row in session.query(SuggestionSet)}
    assert outcomes == {first: IGNORED, second: USED, third: EDITED, fourth: IGNORED, fifth: IGNORED,
                        sixth: IGNORED}
    assert SHOWN not in outcomes.values()


def test_agents_sessions_expire_and_end(stores):
    store, _handoffs = stores
    directory = AgentDirectory(store)
    aisyah, ben = agents(store)
    with pytest.raises(ValueError):
        directory.add_agent("aisyah.r", hash_password("z" * 12, **FAST_HASH))
    found, stored = directory.password_hash("aisyah.r")
    assert found == aisyah and check_password("x" * 12, stored) and not check_password("y" * 12, stored)
    token, csrf = directory.create_session(aisyah, now=T0)
    session = directory.session_for(token, now=T0 + timedelta(hours=7))
    assert session.agent == aisyah and session.csrf_token == csrf
    assert directory.session_for(token, now=T0 + timedelta(hours=14, minutes=59)) is not None   # kept alive
    assert directory.session_for(token, now=T0 + timedelta(hours=25)) is None                   # 24 h at most
    assert directory.session_for("forged", now=T0) is None and directory.session_for(None) is None
    token, _csrf = directory.create_session(aisyah, now=T0)
    assert directory.session_for(token, now=T0 + timedelta(hours=9)) is None                    # idle 8 h
    token, _csrf = directory.create_session(aisyah, now=T0)
    directory.end_session(token)
    assert directory.session_for(token, now=T0) is None
    token, _csrf = directory.create_session(ben, now=T0)
    assert directory.disable_agent("ben", now=T0)
    assert directory.session_for(token, now=T0) is None and directory.password_hash("ben") is None
    token, _csrf = directory.create_session(aisyah, now=T0)
    assert directory.set_password("aisyah.r", hash_password("w" * 12, **FAST_HASH))
    assert directory.session_for(token, now=T0) is None              # a new password ends the sessions
    assert [(a["name"], a["display_name"]) for a in directory.list_agents()] == [("aisyah.r", "Aisyah"), ("ben", "")]
    assert directory.set_display_name("ben", "Ben") and not directory.set_display_name("nobody", "X")


def test_password_hashes_use_a_slow_salted_kdf():
    stored = hash_password("correct horse battery")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", 2 ** 15, 8, 1)
    assert hash_password("correct horse battery") != stored                    # salted
    assert check_password("correct horse battery", stored)
    assert not check_password("correct horse batterY", stored)
    assert not check_password("anything", None) and not check_password("anything", "md5$abc")
    assert password_problem("short") and password_problem(" padded password ") and not password_problem("a" * 10)


def test_login_throttle_slows_guessing_without_locking_anyone_out():
    throttle = LoginThrottle()
    for second in range(3):                                    # three free tries
        assert throttle.wait("aisyah", "10.0.0.1", now=second) == 0
        throttle.failed("aisyah", "10.0.0.1", now=second)
    assert throttle.wait("Aisyah", "10.0.0.1", now=2) == 1      # then 1 s, 2 s, 4 s ... for that guesser
    throttle.failed("aisyah", "10.0.0.1", now=3)
    assert throttle.wait("aisyah", "10.0.0.1", now=3) == 2
    for second in range(4, 20):
        throttle.failed("aisyah", "10.0.0.1", now=second)
    assert throttle.wait("aisyah", "10.0.0.1", now=19) == 300          # capped at five minutes
    # The agent from her own address waits at most 30 s however much someone guesses at her name.
    assert throttle.wait("aisyah", "10.0.0.9", now=19) == 30
    assert throttle.wait("aisyah", "10.0.0.9", now=49) == 0
    throttle.succeeded("aisyah", "10.0.0.9")
    assert throttle.wait("aisyah", "10.0.0.9", now=20) == 0
    assert throttle.wait("ben", "10.0.0.2", now=19) == 0                 # others are not affected


def test_a_right_password_forgives_its_own_attempt():
    throttle = LoginThrottle()
    for second in range(9):
        throttle.failed(f"agent{second}", "10.0.0.7", now=second)
    attempt = throttle.failed("aisyah", "10.0.0.7", now=9)          # counted before the password is checked
    throttle.succeeded("aisyah", "10.0.0.7", attempt)
    assert throttle.wait("somebody", "10.0.0.7", now=9.5) == 0      # 9 failures from the address, not 10


def test_without_a_known_address_only_the_name_counts():
    throttle = LoginThrottle()
    for second in range(20):
        throttle.failed("aisyah", "", now=second)
    assert throttle.wait("aisyah", "", now=19) == 30          # the name's cap, never the 5 minutes of a pair
    assert throttle.wait("ben", "", now=19) == 0


def test_login_throttle_per_address_and_window():
    throttle = LoginThrottle()
    for number in range(10):                                   # one address trying ten names
        throttle.failed(f"agent{number}", "10.0.0.5", now=number)
    assert throttle.wait("somebody", "10.0.0.5", now=9.5) == 0.5
    assert throttle.wait("somebody", "10.0.0.6", now=9.5) == 0
    assert throttle.wait("somebody", "10.0.0.5", now=10 + 900) == 0    # the window passed


def test_the_joined_notice_never_shows_the_login_name(stores):
    store, handoffs = stores
    hand_over(store)
    anonymous = AgentDirectory(store).add_agent("ops.agent7", hash_password("z" * 12, **FAST_HASH), now=T0)
    handoffs.take(CONVERSATION, anonymous, now=T0)
    assert outbound(store) == [("notice", "A Unifi agent has joined the chat.")]


def test_agents_read_only_conversations_handed_over_to_them_and_every_read_is_logged(stores):
    store, handoffs = stores
    aisyah, ben = agents(store)
    answer(store, customer(store, "m-plain", "what plans are there?"))    # never handed over
    assert handoffs.view(CONVERSATION, aisyah.id) is None
    hand_over(store)
    assert handoffs.view(CONVERSATION, ben.id)["state"] == "waiting"     # open: any agent may look
    handoffs.take(CONVERSATION, aisyah, now=T0)
    handoffs.resolve(CONVERSATION, aisyah, now=T0 + timedelta(minutes=5))
    closed = handoffs.view(CONVERSATION, aisyah.id, now=T0 + timedelta(minutes=6))
    assert closed["state"] == "resolved" and closed["readable_until"] == "2026-11-22T12:05:00Z"
    assert closed["hand_back_seq"] is None                               # the notice is not delivered yet
    delivered = T0 + timedelta(minutes=5, seconds=2)                     # the worker delivers it just after
    while store.due_messages(["widget"], now=delivered):               # the joined notice, then the hand-back
        row = store.claim(store.due_messages(["widget"], now=delivered)[0][0], now=delivered)
        for index, reply in enumerate(row.replies or []):
            store.record_delivery(row.id, index, Reply.from_json(reply), now=delivered)
        if not row.replies:                                              # "what plans are there?" (no reply here)
            store.finish(row.id, now=delivered)
    closed = handoffs.view(CONVERSATION, aisyah.id, now=T0 + timedelta(minutes=6))
    notice_seq = closed["hand_back_seq"]
    assert [e["role"] for e in store.history(CONVERSATION) if e["seq"] == notice_seq] == ["notice"]
    assert handoffs.view(CONVERSATION, ben.id) is None                  # closed, and not his
    # What the customer says to the assistant after the hand-back is not the agent's to read.
    customer(store, "m-later", "my ic is 901231-14-5678", now=T0 + timedelta(minutes=6))
    until = T0 + timedelta(minutes=5)
    agent_view = store.history(CONVERSATION, until=until, also=notice_seq)
    assert "m-later" not in [e["client_id"] for e in agent_view]
    assert agent_view[-1]["seq"] == notice_seq                           # their hand-back notice is theirs to see
    assert "m-later" in [e["client_id"] for e in store.history(CONVERSATION)]
    for second in range(5):                                              # the console polls
        handoffs.view(CONVERSATION, aisyah.id, now=T0 + timedelta(minutes=7, seconds=second))
    log = AgentAuditLog(store).entries(CONVERSATION)
    assert [(e["agent"], e["action"]) for e in reversed(log)] == [
        ("ben", "view"), ("aisyah.r", "open"), ("aisyah.r", "resolve"), ("aisyah.r", "view"), ("aisyah.r", "view")]
    assert log[0]["count"] == 5


def test_handoff_messages_and_markers():
    assert handoff_response(REQUEST_HUMAN, "widget") == "utter_handoff"
    assert handoff_response(REQUEST_HUMAN, "rest") == "utter_request_human"
    assert handoff_response("fallback", "facebook") == "utter_handoff_after_fallback"
    assert handoff_response("fallback", None) == "utter_fallback_contact"
    assert handoff_reason(handoff_marker("fallback", "ms")) == "fallback"
    assert handoff_language(handoff_marker("fallback", "ms")) == "ms"
    assert handoff_language(handoff_marker("fallback", "xx")) is None and handoff_language({"other": 1}) is None
    assert handoff_reason({"handoff": {"reason": "made up"}}) is None and handoff_reason("x") is None
    user = {"event": "user", "text": "zorg"}
    marker = {"event": "bot", "text": "An agent will join", "data": {"custom": handoff_marker("fallback", "en")}}
    events = [user, {"event": "bot", "text": "did you mean"}, user, marker, user]
    assert events_since_last_handoff(events) == [user]
    assert events_since_last_handoff(events[:3]) == events[:3]


def test_done_rows_keep_their_status(stores):
    store, _handoffs = stores
    row_id = customer(store, "m1")
    store.claim(row_id, now=T0)
    store.save_replies(row_id, [], now=T0)
    store.finish(row_id, now=T0)
    assert store.inbox_status("widget", "m1")["status"] == DONE


def test_a_handoff_nobody_takes_goes_back_to_the_assistant_with_the_contact_channels(stores):
    store, handoffs = stores
    hand_over(store)
    assert handoffs.expire_waiting(timedelta(minutes=15), now=T0 + timedelta(minutes=14)) == []
    assert handoffs.expire_waiting(timedelta(minutes=15), now=T0 + timedelta(minutes=15)) == [CONVERSATION]
    assert handoffs.queue(agent_id=0) == []
    (notice_text,) = [text for _role, text in outbound(store)]
    assert notice_text.startswith("Sorry, no Unifi agent is free") and "help@tm.com.my" in notice_text
    row_id = customer(store, "m-after", "what plans are there?", now=T0 + timedelta(minutes=16))
    answer(store, row_id, now=T0 + timedelta(minutes=16))                        # the assistant answers again
    aisyah, _ben = agents(store)
    hand_over_taken = customer(store, "m-human-2", "human please", now=T0 + timedelta(minutes=17))
    store.claim(hand_over_taken, now=T0 + timedelta(minutes=17))
    store.save_replies(hand_over_taken, [], handoff_reason=REQUEST_HUMAN, now=T0 + timedelta(minutes=17))
    handoffs.take(CONVERSATION, aisyah, now=T0 + timedelta(minutes=18))
    assert handoffs.expire_waiting(timedelta(minutes=15), now=T0 + timedelta(hours=5)) == []   # an agent has it
