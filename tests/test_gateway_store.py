"""The gateway's durable inbox and transcript on SQLite and on the real local PostgreSQL."""
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot.gateway.agents import LoginThrottle
from bot.gateway.messages import Button, InboundMessage, Reply
from bot.gateway.models import WindowEvent
from bot.gateway.ratelimit import SenderRateLimiter
from bot.gateway.shared_windows import DatabaseWindow, shared_rate_limiter
from bot.gateway.store import ANSWERED, DONE, PENDING, RATE_LIMITED, GatewayStore, LeaseLost, widget_session_key
from conftest import postgres_schema

T0 = datetime(2026, 11, 22, 12, 0, 0)


@pytest.fixture
def gateway_store(account_store_url):
    store = GatewayStore(account_store_url)
    yield store
    store.dispose()


def message(message_id, sender="U1", text="hello", channel="facebook", **kwargs):
    return InboundMessage(channel, sender, message_id, text=text, **kwargs)


def test_a_message_is_stored_once_however_often_it_arrives(gateway_store):
    first = gateway_store.record_inbound(message("m1", metadata={"language": "ms"}), now=T0)
    again = gateway_store.record_inbound(message("m1"), now=T0)
    assert not first.duplicate and first.entry["role"] == "customer" and first.entry["text"] == "hello"
    assert again.duplicate and again.inbox_id is None
    assert gateway_store.record_inbound(message("m1", channel="twitter"), now=T0).duplicate is False
    assert gateway_store.inbox_status("facebook", "m1")["status"] == PENDING
    assert len(gateway_store.history("facebook:U1")) == 1


def test_conversations_are_answered_in_order_one_message_at_a_time(gateway_store):
    a1 = gateway_store.record_inbound(message("a1", sender="A"), now=T0).inbox_id
    a2 = gateway_store.record_inbound(message("a2", sender="A"), now=T0).inbox_id
    b1 = gateway_store.record_inbound(message("b1", sender="B"), now=T0).inbox_id
    gateway_store.record_inbound(message("w1", channel="widget"), now=T0)
    assert gateway_store.due_messages(["facebook"], now=T0) == [(a1, "facebook:A"), (b1, "facebook:B")]
    row = gateway_store.claim(a1, now=T0)
    assert row.rasa_text == "hello" and row.sender_id == "A" and row.conversation_id == "facebook:A"
    assert gateway_store.claim(a1, now=T0) is None                 # leased
    assert gateway_store.due_messages(["facebook"], now=T0) == [(b1, "facebook:B")]   # a2 waits for a1
    gateway_store.save_replies(a1, [Reply("Hi!"), Reply("Anything else?", (Button("No", "/deny"),))], now=T0)
    gateway_store.record_delivery(a1, 0, Reply("Hi!"), now=T0)
    assert gateway_store.inbox_status("facebook", "a1") == {"status": ANSWERED, "attempts": 0, "delivered_count": 1}
    entry = gateway_store.record_delivery(a1, 1, Reply("Anything else?", (Button("No", "/deny"),)), now=T0)
    assert entry["buttons"] == [{"title": "No", "payload": "/deny"}]
    assert gateway_store.inbox_status("facebook", "a1")["status"] == DONE
    assert gateway_store.due_messages(["facebook"], now=T0) == [(a2, "facebook:A"), (b1, "facebook:B")]


def test_a_failed_attempt_waits_for_its_retry_time_and_a_restart_frees_claims(gateway_store):
    row_id = gateway_store.record_inbound(message("m1"), now=T0).inbox_id
    assert not gateway_store.claim(row_id, now=T0).rasa_sent      # the first attempt
    assert gateway_store.schedule_retry(row_id, 10, "cannot connect", reached_rasa=False, now=T0) == 1
    assert gateway_store.due_messages(["facebook"], now=T0 + timedelta(seconds=5)) == []
    row = gateway_store.claim(row_id, now=T0 + timedelta(seconds=11))
    assert row.attempts == 1 and not row.rasa_sent            # never reached Rasa: safe to send
    assert gateway_store.release_claims() == 1                # this attempt broke off (the gateway stopped)
    row = gateway_store.claim(row_id, now=T0 + timedelta(seconds=11))
    assert row.rasa_sent                                      # may have reached Rasa: look in the tracker first


def test_hold_notice_once_per_outage(gateway_store):
    row_id = gateway_store.record_inbound(message("m1"), now=T0).inbox_id
    assert gateway_store.take_hold_notice("facebook:U1", now=T0)
    assert not gateway_store.take_hold_notice("facebook:U1", now=T0)
    gateway_store.claim(row_id, now=T0)
    gateway_store.save_replies(row_id, [Reply("Hi")], now=T0)      # Rasa is back
    assert gateway_store.take_hold_notice("facebook:U1", now=T0)


def test_done_messages_drop_their_metadata(gateway_store):
    row_id = gateway_store.record_inbound(message("m1", metadata={"identity_token": "1000000001.9.abc"}),
                                          now=T0).inbox_id
    assert gateway_store.claim(row_id, now=T0).metadata == {"identity_token": "1000000001.9.abc"}
    gateway_store.save_replies(row_id, [], now=T0)
    gateway_store.finish(row_id, now=T0)
    from bot.gateway.store import InboxMessage

    with gateway_store.session() as session:
        assert session.get(InboxMessage, row_id).message_metadata == {}


def test_rate_limited_messages_are_recorded_but_never_due(gateway_store):
    gateway_store.record_inbound(message("m1"), status=RATE_LIMITED, now=T0)
    assert gateway_store.due_messages(["facebook"], now=T0) == []
    assert [e["text"] for e in gateway_store.history("facebook:U1")] == ["hello"]


def test_widget_sessions_are_issued_by_the_gateway_and_history_pages_by_seq(gateway_store):
    secret, session = gateway_store.widget_session(None, now=T0)
    assert len(secret) >= 32 and session == widget_session_key(secret) != secret
    assert gateway_store.widget_session(secret, now=T0) == (secret, session)
    assert gateway_store.widget_session(session, now=T0)[1] != session      # the key is no secret: it opens nothing
    made_up = gateway_store.widget_session("made-up-session", now=T0)
    assert made_up[0] != "made-up-session" and made_up[1] not in (session, widget_session_key("made-up-session"))
    first = gateway_store.record_inbound(message("c1", sender=session, channel="widget", text="hai"), now=T0)
    gateway_store.record_notice(f"widget:{session}", Reply("Sila tunggu", role="notice"), now=T0)
    history = gateway_store.history(f"widget:{session}")
    assert [(e["role"], e["text"]) for e in history] == [("customer", "hai"), ("notice", "Sila tunggu")]
    assert history[0]["client_id"] == "c1" and history[0]["at"].endswith("Z")
    assert gateway_store.history(f"widget:{session}", after=first.entry["seq"]) == history[1:]


def test_personal_data_is_redacted_in_what_is_kept(gateway_store):
    from bot.gateway.models import InboxMessage

    text = "my ic 901231-14-5678, call +6012-345 6789"
    row_id = gateway_store.record_inbound(message("p1", text=text), now=T0).inbox_id
    (entry,) = gateway_store.history("facebook:U1")
    assert entry["text"] == "my ic [nric], call [phone]"
    assert gateway_store.claim(row_id, now=T0).rasa_text == text          # Rasa still reads the customer's words
    gateway_store.save_replies(row_id, [Reply("Your code 482913 was sent to j***@example.com.my")], now=T0)
    gateway_store.record_delivery(row_id, 0, Reply("Your code 482913 was sent to j***@example.com.my"), now=T0)
    with gateway_store.session() as session:
        assert session.get(InboxMessage, row_id).text == "my ic [nric], call [phone]"
    assert gateway_store.history("facebook:U1")[-1]["text"].startswith("Your code [code] was sent")
    rejected = gateway_store.record_inbound(message("p2", text="x" * 10 + " akaun 1012345678"), status=RATE_LIMITED,
                                            now=T0).inbox_id
    with gateway_store.session() as session:
        assert session.get(InboxMessage, rejected).text.endswith("akaun [account number]")


# --- several gateway replicas on one database: claims are leases ------------------------------------------------

@pytest.fixture
def replicas(account_store_url):
    lease = timedelta(seconds=30)
    first, second = GatewayStore(account_store_url, "r1", lease), GatewayStore(account_store_url, "r2", lease)
    yield first, second
    first.dispose()
    second.dispose()


def test_a_claim_is_a_lease_another_replica_takes_over_once_it_runs_out(replicas):
    r1, r2 = replicas
    row_id = r1.record_inbound(message("m1"), now=T0).inbox_id
    assert r1.claim(row_id, now=T0) is not None
    assert r2.claim(row_id, now=T0 + timedelta(seconds=29)) is None           # r1's lease
    assert r1.renew_leases([row_id], now=T0 + timedelta(seconds=20)) == {row_id}
    assert r2.claim(row_id, now=T0 + timedelta(seconds=49)) is None           # renewed until T0 + 50 s
    taken = r2.claim(row_id, now=T0 + timedelta(seconds=51))                  # r1 stalled: r2 takes over
    assert taken is not None and taken.rasa_sent                              # and looks in Rasa's tracker first
    assert r1.renew_leases([row_id], now=T0 + timedelta(seconds=52)) == set()
    with pytest.raises(LeaseLost):                                            # r1 wakes up: it writes nothing
        r1.save_replies(row_id, [Reply("late")], now=T0 + timedelta(seconds=52))
    with pytest.raises(LeaseLost):
        r1.schedule_retry(row_id, 5, "late", now=T0 + timedelta(seconds=52))
    r2.save_replies(row_id, [Reply("Hi")], now=T0 + timedelta(seconds=52))
    with pytest.raises(LeaseLost):
        r1.record_delivery(row_id, 0, Reply("Hi"), now=T0 + timedelta(seconds=53))
    r2.record_delivery(row_id, 0, Reply("Hi"), now=T0 + timedelta(seconds=53))
    assert r1.inbox_status("facebook", "m1") == {"status": DONE, "attempts": 0, "delivered_count": 1}
    assert [entry["text"] for entry in r1.history("facebook:U1")] == ["hello", "Hi"]


def test_one_conversation_is_worked_on_by_one_replica_at_a_time_in_order(replicas):
    r1, r2 = replicas
    first = r1.record_inbound(message("a1", sender="A"), now=T0).inbox_id
    second = r1.record_inbound(message("a2", sender="A"), now=T0).inbox_id
    other = r1.record_inbound(message("b1", sender="B"), now=T0).inbox_id
    assert r2.claim(second, now=T0) is None                 # a1 comes first, whoever asks
    assert r1.claim(first, now=T0) is not None
    assert r2.claim(second, now=T0) is None                 # ... and is being answered by r1
    assert r2.claim(other, now=T0) is not None              # another conversation goes on meanwhile
    r1.save_replies(first, [Reply("one")], now=T0)
    r1.record_delivery(first, 0, Reply("one"), now=T0)
    assert r2.claim(second, now=T0) is not None             # a1 done: a2 is next, for any replica


def test_a_restarted_replica_frees_only_its_own_claims(replicas, account_store_url):
    r1, r2 = replicas
    mine = r1.record_inbound(message("a1", sender="A"), now=T0).inbox_id
    theirs = r1.record_inbound(message("b1", sender="B"), now=T0).inbox_id
    r1.claim(mine, now=T0)
    r2.claim(theirs, now=T0)
    if r1.postgres:
        assert r1.release_claims() == 1                     # r2 is alive: its claim stays
        assert r2.claim(theirs, now=T0) is None and r1.claim(mine, now=T0) is not None
    else:                                                   # SQLite: one gateway process, every claim its own
        assert r1.release_claims() == 2


def test_a_replica_name_is_held_by_one_live_process(replicas, account_store_url):
    r1, r2 = replicas
    assert r1.hold_replica_name() and r2.hold_replica_name()
    twin = GatewayStore(account_store_url, "r1")
    try:
        assert twin.hold_replica_name() is (not r1.postgres)    # PostgreSQL: r1 is taken while r1 lives
        r1.dispose()
        assert twin.hold_replica_name()                         # let go at once when r1 closes, not a moment later
    finally:
        twin.dispose()


def test_a_replica_name_in_another_schema_is_another_name(account_store_url):
    if not account_store_url.startswith("postgresql"):
        pytest.skip("SQLite: one gateway process per database file")
    with postgres_schema() as elsewhere:
        here, there = GatewayStore(account_store_url, "r1"), GatewayStore(elsewhere, "r1")
        try:
            assert here.hold_replica_name() and there.hold_replica_name()
        finally:
            here.dispose()
            there.dispose()


def test_replicas_claiming_at_once_take_each_message_exactly_once(replicas):
    import threading

    r1, r2 = replicas
    ids = [r1.record_inbound(message(f"m{i}", sender=f"S{i}"), now=T0).inbox_id for i in range(40)]
    won = {"r1": [], "r2": []}
    start = threading.Barrier(2)

    def take_all(store):
        start.wait()
        for row_id in ids:
            if store.claim(row_id, now=T0) is not None:
                won[store.replica].append(row_id)

    threads = [threading.Thread(target=take_all, args=(store,)) for store in (r1, r2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(won["r1"] + won["r2"]) == ids


# --- rate limits and the login throttle, counted together by the replicas -------------------------------------

def test_a_database_window_is_one_count_for_every_replica(replicas):
    r1, r2 = replicas
    first, second = DatabaseWindow(r1, 60, "test:"), DatabaseWindow(r2, 60, "test:")
    other = DatabaseWindow(r2, 60, "other:")
    first.add("sender", now=1000.0)
    second.add("sender", now=1010.0)
    assert first.recent("sender", now=1020.0) == second.recent("sender", now=1020.0) == [1000.0, 1010.0]
    assert other.recent("sender", now=1020.0) == []                     # another limiter's keys are apart
    assert second.recent("sender", now=1065.0) == [1010.0]               # the first one left the window
    second.remove("sender", 1010.0)
    assert first.recent("sender", now=1065.0) == []
    first.add("sender", now=1100.0)
    first.clear("sender")
    assert second.recent("sender", now=1100.0) == []
    other.add("old", now=0.0)
    other.forget_idle(now=1000.0)
    with r1.session() as session:
        assert session.scalars(select(WindowEvent.key)).all() == []


def test_a_sender_is_limited_across_replicas_and_told_once(replicas):
    r1, r2 = replicas
    now = [1000.0]
    on_r1, on_r2 = (SenderRateLimiter(limit=3, window=60, clock=lambda: now[0],
                                      hits=DatabaseWindow(store, 60, "sender:", lambda: now[0]),
                                      notices=DatabaseWindow(store, 60, "sender-notice:", lambda: now[0]))
                    for store in (r1, r2))
    assert [on_r1.check("facebook:A"), on_r2.check("facebook:A"), on_r1.check("facebook:A")] == [(True, False)] * 3
    assert on_r2.check("facebook:A") == (False, True)                   # the 4th, wherever it lands: one notice
    assert on_r1.check("facebook:A") == (False, False)
    assert on_r1.check("facebook:B") == (True, False)
    now[0] += 61
    assert on_r2.check("facebook:A") == (True, False)
    assert shared_rate_limiter(r1, "sender", 3, 60).shared is r1.postgres


def test_password_guesses_on_one_replica_slow_logins_on_the_other(replicas):
    r1, r2 = replicas
    one = LoginThrottle(failures=DatabaseWindow(r1, 900, "login:"))
    two = LoginThrottle(failures=DatabaseWindow(r2, 900, "login:"))
    for i in range(3):
        one.failed("aisyah.r", "10.0.0.9", now=1000.0 + i)
    assert two.wait("aisyah.r", "10.0.0.9", now=1002.5) > 0             # a 4th guess waits, on either replica
    attempt = two.failed("aisyah.r", "10.0.0.9", now=1010.0)
    two.succeeded("aisyah.r", "10.0.0.9", attempt)                     # the agent's own login clears it
    assert one.wait("aisyah.r", "10.0.0.9", now=1011.0) == 0


def test_a_message_is_claimed_as_it_is_recorded_only_when_it_is_its_conversations_only_open_one(replicas):
    r1, r2 = replicas
    first = r1.record_inbound(message("c1", sender="A"), now=T0, claim=True)
    assert first.claimed is not None and first.claimed.id == first.inbox_id and first.claimed.text == "hello"
    assert r2.claim(first.inbox_id, now=T0) is None                   # r1's lease, as if r1 had claimed it
    assert r2.due_messages(["facebook"], now=T0) == []
    second = r2.record_inbound(message("c2", sender="A"), now=T0, claim=True)
    assert second.claimed is None                                     # c1 is still open: c2 waits its turn
    assert r1.record_inbound(message("c3", sender="B"), status=RATE_LIMITED, now=T0, claim=True).claimed is None
    r1.save_replies(first.inbox_id, [Reply("one")], "request_human", now=T0)   # the answer hands over
    r1.record_delivery(first.inbox_id, 0, Reply("one"), now=T0)
    assert r2.claim(second.inbox_id, now=T0) is None                  # the agents have it (kept for them)
    third = r1.record_inbound(message("c4", sender="A"), now=T0, claim=True)
    assert third.claimed is None                                      # still the agents'


def test_a_claim_made_as_the_message_is_recorded_is_a_lease_like_any_other(replicas):
    r1, r2 = replicas
    recorded = r1.record_inbound(message("m1"), now=T0, claim=True)
    assert r1.renew_leases([recorded.inbox_id], now=T0) == {recorded.inbox_id}
    assert r2.claim(recorded.inbox_id, now=T0 + timedelta(seconds=31)) is not None   # r1 died: taken over
    with pytest.raises(LeaseLost):
        r1.save_replies(recorded.inbox_id, [Reply("late")], now=T0 + timedelta(seconds=32))


def test_first_messages_of_a_new_conversation_recorded_at_once_are_all_kept(replicas):
    """Two replicas (or two threads) recording the first messages of one conversation at the same moment: the
    conversation is made once and no message is taken for a duplicate (and lost)."""
    import threading

    r1, r2 = replicas
    start = threading.Barrier(8)
    results = []

    def record(store, number):
        start.wait()
        results.append(store.record_inbound(message(f"m{number}", sender="NEW"), now=T0, claim=True))

    threads = [threading.Thread(target=record, args=(r1 if n % 2 else r2, n)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and not any(r.duplicate for r in results)
    assert sum(r.claimed is not None for r in results) == 1            # one at a time per conversation
