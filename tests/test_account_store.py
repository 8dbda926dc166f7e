"""The account store, imports, verification and the outbox, each on SQLite and on the real PostgreSQL."""
import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bot.accounts import models, outbox
from bot.accounts.importer import ImportRejected, import_file
from bot.accounts.verification import (
    CODE_LIFETIME,
    CODES_LIMIT,
    DAY,
    WRONG_CODES_LIMIT,
    CodeCheck,
    Start,
    bind_identity_token,
    check_code,
    forget_verification,
    mark_verified,
    start_challenge,
    verified_account,
)

NOW = datetime(2026, 11, 22, 2, 0, 0)   # UTC
TODAY = date(2026, 11, 22)


def test_demo_snapshot_has_every_situation(demo_store):
    assert demo_store.account_numbers() == [f"100000000{i}" for i in range(1, 6)]
    inside = demo_store.snapshot("1000000001")
    assert inside.status == "active" and inside.subscriptions[0].contract_start == date(2026, 6, 12)
    assert inside.last_payment.amount == Decimal("125.00") and inside.last_payment.channel == "TM Autopay"
    suspended = demo_store.snapshot("1000000003")
    assert suspended.status == "suspended" and suspended.outstanding_amount == Decimal("250.00")
    assert suspended.suspended_since == date(2026, 11, 11)
    several = demo_store.snapshot("1000000004")
    assert [s.plan_name for s in several.subscriptions] == ["Professional", "Starter", "Standard"]
    crowded = demo_store.snapshot("1000000005").subscriptions[0]
    assert sum(d.type == "desktop" for d in crowded.devices) == 8
    assert demo_store.snapshot("9999999999") is None


def test_activation_codes_are_kept_for_resending_encrypted(demo_store):
    email, codes = demo_store.activation_codes("1000000004")
    assert email == "admin@tuisyencemerlang.my" and len(codes) == 3
    assert ("Professional", "PC8R2-N5J7K-D3X9W-Q6T4L") in codes
    assert demo_store.activation_codes("9999999999") == ("", [])
    with demo_store.session() as session:
        stored = session.scalars(select(models.ActivationCode.code_encrypted)).all()
    plain = {code for _, code in codes}
    assert len(stored) >= 3 and all(value.startswith("gAAAAA") and value not in plain for value in stored)
    from bot.accounts.crypto import UnreadableSecret
    from bot.accounts.store import AccountStore

    other_key = AccountStore(demo_store.url, "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMzI=")
    with pytest.raises(UnreadableSecret):
        other_key.activation_codes("1000000004")
    other_key.engine.dispose()


def test_seeding_twice_replaces_instead_of_duplicating(demo_store):
    from bot.accounts.cli import seed_demo

    seed_demo(demo_store, TODAY)
    with demo_store.session() as session:
        assert session.scalar(select(func.count()).select_from(models.Account)) == 5
        assert session.scalar(select(func.count()).select_from(models.Customer)) == 5
        assert session.scalar(select(func.count()).select_from(models.Subscription)) == 7


def test_money_is_exact(store, tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps([_account("1234567890", outstanding_amount="0.10", monthly_fee="0.20")]))
    import_file(store, path, TODAY)
    snapshot = store.snapshot("1234567890")
    assert snapshot.outstanding_amount == Decimal("0.10")
    assert snapshot.subscriptions[0].monthly_fee * 3 == Decimal("0.60")


def _account(number, **overrides):
    subscription = {"plan": "Starter", "start_date": "2026-01-05", "activation_codes": ["AAAAA-BBBBB"]}
    if "monthly_fee" in overrides:
        subscription["monthly_fee"] = overrides.pop("monthly_fee")
    record = {
        "account_number": number, "business_name": "Test Sdn Bhd", "registration_type": "brn",
        "registration_id": f"REG{number}", "email": "owner@test.com.my", "phone": "+6012-345 6789",
        "status": "active", "bill_day": 22, "autopay": False, "subscriptions": [subscription],
    }
    record.update(overrides)
    return record


def test_json_import_reports_every_bad_row_with_its_line_and_imports_nothing(store, tmp_path):
    good = _account("1234567890")
    bad_plan = _account("1234567891", subscriptions=[{"plan": "Gold", "start_date": "2026-01-05"}])
    bad_number = _account("12345")
    bad_email = _account("1234567892", email="not-an-email", status="suspended")
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps([good, bad_plan, bad_number, bad_email], indent=2))
    with pytest.raises(ImportRejected) as rejected:
        import_file(store, path, TODAY)
    text = "\n".join(rejected.value.problems)
    starts = [number for number, line in enumerate(path.read_text().splitlines(), 1) if line == "  {"]
    assert f"line {starts[1]}: plan 'Gold' must be one of Starter, Standard, Professional" in text
    assert f"line {starts[2]}: account_number '12345' must be exactly 10 digits" in text
    assert f"line {starts[3]}: email 'not-an-email' is not an email address" in text
    assert f"line {starts[3]}: a suspended account needs suspended_since" in text
    assert store.account_count() == 0


def test_json_import_rejects_broken_json_and_duplicates(store, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"account_number": "1234567890",\n  "business_name": }\n]')
    with pytest.raises(ImportRejected, match="line 3: invalid JSON"):
        import_file(store, path, TODAY)
    path.write_text(json.dumps([_account("1234567890"), _account("1234567890")], indent=1))
    with pytest.raises(ImportRejected, match="already appears on line 2"):
        import_file(store, path, TODAY)
    assert store.account_count() == 0


CSV_HEADER = ("account_number,business_name,registration_type,registration_id,email,phone,status,"
              "suspended_since,outstanding_amount,bill_day,billing_arrangement,autopay,plan,monthly_fee,"
              "start_date,contract_start,subscription_status,activation_code\n")


def test_csv_import_groups_subscriptions_by_account(store, tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text(CSV_HEADER
                    + "1234567890,Kedai A,brn,201901000001,a@kedai.my,+60123456789,active,,0,22,with_unifi_biz,yes,"
                      "Standard,,2026-02-01,2026-02-01,active,CODE1-AAAAA\n"
                    + "1234567890,Kedai A,brn,201901000001,a@kedai.my,+60123456789,active,,0,22,with_unifi_biz,yes,"
                      "Starter,,2025-01-01,2025-06-01,active,CODE2-BBBBB\n"
                    + "1234567891,Kedai B,nric,850101-14-5555,b@kedai.my,+60129876543,suspended,2026-11-01,"
                      "\"RM1,250.00\",8,separate,no,Professional,,2026-03-03,,active,\n")
    assert import_file(store, path, TODAY) == 2
    a = store.snapshot("1234567890")
    assert [s.plan_name for s in a.subscriptions] == ["Standard", "Starter"] and a.autopay
    assert a.subscriptions[1].contract_start == date(2025, 6, 1)
    b = store.snapshot("1234567891")
    assert b.outstanding_amount == Decimal("1250.00") and b.bill_day == 8 and b.status == "suspended"
    assert b.subscriptions[0].monthly_fee == Decimal("200.00")   # from the FAQ 2 catalogue


def test_csv_import_rejects_bad_rows_with_line_numbers(store, tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text(CSV_HEADER
                    + "1234567890,Kedai A,brn,201901000001,a@kedai.my,+60123456789,active,,0,22,with_unifi_biz,yes,"
                      "Standard,,2026-02-01,,active,\n"
                    + "1234567890,Kedai X,brn,201901000001,a@kedai.my,+60123456789,active,,0,22,with_unifi_biz,yes,"
                      "Starter,,2025-01-01,,active,\n"
                    + "1234567891,Kedai B,brn,201901000002,b@kedai.my,+60129876543,active,,-5,40,with_unifi_biz,"
                      "maybe,Standard,,2026-13-01,,active,\n")
    with pytest.raises(ImportRejected) as rejected:
        import_file(store, path, TODAY)
    problems = rejected.value.problems
    assert problems == ["line 3: account 1234567890 has different business_name than on line 2"]
    path.write_text(CSV_HEADER + path.read_text().splitlines()[3] + "\n")
    with pytest.raises(ImportRejected) as rejected:
        import_file(store, path, TODAY)
    text = "\n".join(rejected.value.problems)
    for expected in ("line 2: outstanding_amount '-5'", "line 2: autopay 'maybe' must be true or false",
                     "line 2: bill_day '40' must be a day of the month", "line 2: start_date '2026-13-01'"):
        assert expected in text
    assert store.account_count() == 0


def test_csv_without_required_columns(store, tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text("account_number,plan\n1234567890,Starter\n")
    with pytest.raises(ImportRejected, match="line 1: missing column"):
        import_file(store, path, TODAY)


def test_import_of_many_rows_reports_progress(store, tmp_path):
    path = tmp_path / "many.json"
    path.write_text(json.dumps([_account(f"12{i:08d}", registration_id=f"R{i}") for i in range(300)]))
    seen = []
    assert import_file(store, path, TODAY, progress=lambda done, total: seen.append((done, total))) == 300
    assert seen[-1] == (300, 300) and len(seen) == 300
    assert store.account_count() == 300


def test_code_verifies_once_then_is_used(demo_store):
    codes = iter(["123456"])
    result = start_challenge(demo_store, "1000000001", "conv-1", NOW, generate=lambda: next(codes))
    assert result.outcome is Start.SENT and result.code == "123456"
    check = check_code(demo_store, "conv-1", "123456", NOW + timedelta(minutes=1))
    assert check.outcome is CodeCheck.VERIFIED and check.account_number == "1000000001"
    # Replayed: the code was used; no challenge is pending any more.
    assert check_code(demo_store, "conv-1", "123456", NOW + timedelta(minutes=2)).outcome is CodeCheck.NO_CODE


def test_code_from_another_conversation_does_not_work(demo_store):
    start_challenge(demo_store, "1000000001", "owner", NOW, generate=lambda: "111111")
    start_challenge(demo_store, "1000000002", "attacker", NOW, generate=lambda: "222222")
    result = check_code(demo_store, "attacker", "111111", NOW)
    assert result.outcome is CodeCheck.WRONG and result.attempts_left == 4
    assert check_code(demo_store, "nobody", "111111", NOW).outcome is CodeCheck.NO_CODE


def test_code_expires_after_ten_minutes(demo_store):
    start_challenge(demo_store, "1000000002", "conv", NOW, generate=lambda: "654321")
    late = NOW + CODE_LIFETIME + timedelta(seconds=1)
    assert check_code(demo_store, "conv", "654321", late).outcome is CodeCheck.EXPIRED
    assert check_code(demo_store, "conv", "654321", late).outcome is CodeCheck.NO_CODE


def test_only_the_newest_code_counts_and_one_email_a_minute(demo_store):
    first = start_challenge(demo_store, "1000000002", "conv", NOW, generate=lambda: "100001")
    again = start_challenge(demo_store, "1000000002", "conv", NOW + timedelta(seconds=10), generate=lambda: "100002")
    assert first.code == "100001" and again.outcome is Start.WAIT and again.open_code and again.code is None
    later = start_challenge(demo_store, "1000000002", "conv", NOW + timedelta(minutes=2), generate=lambda: "100003")
    assert later.code == "100003"
    assert check_code(demo_store, "conv", "100001", NOW + timedelta(minutes=3)).outcome is CodeCheck.WRONG
    assert check_code(demo_store, "conv", "100003", NOW + timedelta(minutes=3)).outcome is CodeCheck.VERIFIED


def test_a_new_session_does_not_send_another_email_within_a_minute(demo_store):
    """The minute between emails is per account number, not per conversation: opening new widget sessions
    does not flood the owner's mailbox."""
    assert start_challenge(demo_store, "1000000002", "session-1", NOW).outcome is Start.SENT
    other = start_challenge(demo_store, "1000000002", "session-2", NOW + timedelta(seconds=30))
    assert other.outcome is Start.WAIT and not other.open_code and other.code is None


@pytest.mark.parametrize("number", ["1000000003", "5555555555"])   # existing and unknown: same behaviour
def test_five_wrong_tries_use_the_code_up_not_the_account(demo_store, number):
    start_challenge(demo_store, number, "attacker", NOW, generate=lambda: "999999")
    results = [check_code(demo_store, "attacker", "000000", NOW + timedelta(seconds=i)) for i in range(5)]
    assert [r.outcome for r in results] == [CodeCheck.WRONG] * 4 + [CodeCheck.USED_UP]
    assert [r.attempts_left for r in results[:4]] == [4, 3, 2, 1]
    assert check_code(demo_store, "attacker", "999999", NOW + timedelta(seconds=6)).outcome is CodeCheck.NO_CODE
    # The owner, in their own conversation, is not locked out: a new code works.
    owner = start_challenge(demo_store, number, "owner", NOW + timedelta(minutes=2), generate=lambda: "424242")
    assert owner.outcome is Start.SENT
    expected = CodeCheck.VERIFIED if number == "1000000003" else CodeCheck.WRONG   # an unknown number verifies nothing
    assert check_code(demo_store, "owner", "424242", NOW + timedelta(minutes=3)).outcome is expected


@pytest.mark.parametrize("number", ["1000000001", "5555555555"])
def test_five_codes_a_day_per_account_number_then_one_alert(demo_store, number):
    results = [start_challenge(demo_store, number, f"conv-{i}", NOW + timedelta(minutes=2 * i), client_hash=f"c{i}")
               for i in range(6)]
    assert [r.outcome for r in results] == [Start.SENT] * 5 + [Start.ACCOUNT_LIMIT]
    assert [r.alert for r in results] == [None] * 4 + [CODES_LIMIT, None]      # the owner is told once a day
    assert start_challenge(demo_store, number, "later", NOW + timedelta(minutes=20)).outcome is Start.ACCOUNT_LIMIT
    assert start_challenge(demo_store, number, "tomorrow", NOW + DAY + timedelta(minutes=11)).outcome is Start.SENT


def test_ten_wrong_codes_a_day_pause_the_account_number(demo_store):
    start_challenge(demo_store, "1000000001", "early", NOW - timedelta(minutes=2), client_hash="ip-early",
                    generate=lambda: "864200")             # a code sent before the guessing starts
    alerts = []
    for attempt in range(2):           # two codes, five wrong tries each, from two conversations
        conversation = f"guesser-{attempt}"
        start_challenge(demo_store, "1000000001", conversation, NOW + timedelta(minutes=2 * attempt),
                        client_hash=f"ip-{attempt}", generate=lambda: "135791")
        for i in range(5):
            result = check_code(demo_store, conversation, f"00000{i}", NOW + timedelta(minutes=2 * attempt, seconds=i))
            alerts.append(result.alert)
    assert alerts.count(WRONG_CODES_LIMIT) == 1 and alerts[-1] == WRONG_CODES_LIMIT
    later = NOW + timedelta(minutes=10)
    paused = start_challenge(demo_store, "1000000001", "owner", later)
    assert paused.outcome is Start.ACCOUNT_LIMIT and paused.alert is None      # the owner was told once, rightly
    # A code sent before the pause stops working too; other account numbers are not paused.
    assert check_code(demo_store, "early", "864200", NOW + timedelta(minutes=5)).outcome is CodeCheck.ACCOUNT_LIMIT
    start_challenge(demo_store, "1000000002", "x", NOW, generate=lambda: "246802")
    assert check_code(demo_store, "x", "246802", NOW + timedelta(minutes=1)).outcome is CodeCheck.VERIFIED


def test_codes_per_conversation_and_per_client_an_hour(demo_store):
    numbers = [f"100000000{i}" for i in range(1, 6)]
    session = [start_challenge(demo_store, numbers[i], "one-session", NOW + timedelta(minutes=i), client_hash="a")
               for i in range(4)]
    assert [r.outcome for r in session] == [Start.SENT] * 3 + [Start.TOO_MANY]
    assert session[3].retry_at == NOW + timedelta(hours=1)
    client = [start_challenge(demo_store, f"20000000{i:02d}", f"s-{i}", NOW + timedelta(minutes=i), client_hash="b")
              for i in range(11)]
    assert [r.outcome for r in client] == [Start.SENT] * 10 + [Start.TOO_MANY]
    assert start_challenge(demo_store, "2000000099", "s-new", NOW + timedelta(minutes=12),
                           client_hash="c").outcome is Start.SENT       # another client is not affected


def test_unknown_account_gets_a_challenge_but_no_code(demo_store):
    result = start_challenge(demo_store, "5555555555", "conv", NOW, generate=lambda: "123456")
    assert result.outcome is Start.SENT and result.code is None
    assert check_code(demo_store, "conv", "123456", NOW).outcome is CodeCheck.WRONG     # even the made-up code


def test_verified_conversations_expire_and_stay_on_their_channel(store):
    lifetime = timedelta(minutes=30)
    assert verified_account(store, "c1", "widget", NOW, lifetime) is None
    mark_verified(store, "c1", "1000000001", "code", NOW, channel="widget")
    mark_verified(store, "c1", "1000000002", "token", NOW, channel="widget")
    assert verified_account(store, "c1", "widget", NOW + timedelta(minutes=29), lifetime) == "1000000002"
    assert verified_account(store, "c1", "twitter", NOW, lifetime) is None             # another channel
    assert verified_account(store, "c1", "widget", NOW + lifetime, lifetime) is None    # expired, and forgotten
    assert not forget_verification(store, "c1")
    mark_verified(store, "c1", "1000000001", "code", NOW, channel="widget")
    assert forget_verification(store, "c1") and not forget_verification(store, "c1")
    assert verified_account(store, "c1", "widget", NOW, lifetime) is None


def test_an_identity_token_verifies_one_conversation_only(store):
    expires = NOW + timedelta(minutes=10)
    assert bind_identity_token(store, "tok-1", "widget:a", expires, NOW)
    assert bind_identity_token(store, "tok-1", "widget:a", expires, NOW + timedelta(minutes=1))    # reconnect
    assert not bind_identity_token(store, "tok-1", "widget:b", expires, NOW)                         # replayed
    assert bind_identity_token(store, "tok-2", "widget:b", expires, NOW)


def test_outbox_in_development_writes_a_log(demo_store, tmp_path):
    with demo_store.session() as session:
        outbox.enqueue(session, "verification_code", "aminah@majujaya.com.my", NOW, sender="help@unifi.test",
                       code="246810", minutes=10)
    log = tmp_path / "outbox.log"
    assert outbox.deliver_pending(demo_store, "", "bot@localhost", log_path=log) == 1
    assert "246810" in log.read_text() and "aminah@majujaya.com.my" in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    assert outbox.deliver_pending(demo_store, "", "bot@localhost", log_path=log) == 0
    with demo_store.session() as session:
        sent = session.scalars(select(models.OutboxEmail)).one()
    assert sent.sent_at is not None and sent.body == "" and sent.subject      # the code is gone once sent


def test_outbox_delivers_by_smtp_and_keeps_failures_queued(demo_store, smtp_server):
    with demo_store.session() as session:
        outbox.enqueue(session, "verification_code", "aminah@majujaya.com.my", NOW, sender="help@unifi.test",
                       code="135790", minutes=10)
    assert outbox.deliver_pending(demo_store, "smtp://127.0.0.1:1", "bot@localhost") == 0   # nothing listens
    with demo_store.session() as session:
        email = session.scalars(select(models.OutboxEmail)).one()
        assert email.sent_at is None and email.attempts == 1 and "Error" in email.last_error
    assert outbox.deliver_pending(demo_store, smtp_server.url, "KSOS <bot@localhost>") == 1
    assert len(smtp_server.messages) == 1
    mail_from, recipients, body = smtp_server.messages[0]
    assert recipients == ["aminah@majujaya.com.my"] and "135790" in body


@pytest.fixture
def smtp_server():
    """A real SMTP server on a free local port (the standard library's smtpd, in a thread)."""
    import asyncore
    import smtpd as smtpd_module  # the standard library's SMTP server: deprecated, still in Python 3.10
    import socket
    import threading

    class Recorder(smtpd_module.SMTPServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.messages = []

        def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
            self.messages.append((mailfrom, rcpttos, data.decode() if isinstance(data, bytes) else data))

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = Recorder(("127.0.0.1", port), None, decode_data=False)
    server.url = f"smtp://127.0.0.1:{port}"
    thread = threading.Thread(target=asyncore.loop, kwargs={"timeout": 0.05}, daemon=True)
    thread.start()
    yield server
    server.close()
    thread.join(timeout=2)


def test_two_senders_deliver_each_email_once(demo_store, tmp_path):
    import threading

    with demo_store.session() as session:
        for number in range(20):
            outbox.enqueue(session, "verification_code", f"user{number}@test.my", NOW, sender="help@unifi.test",
                           code=f"{number:06d}", minutes=10)
    log = tmp_path / "outbox.log"
    counts = []
    threads = [threading.Thread(target=lambda: counts.append(outbox.deliver_pending(demo_store, "", "b@l", log)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 20
    assert log.read_text().count("--- ") == 20
    with demo_store.session() as session:
        assert all(e.sent_at and e.attempts == 1 for e in session.scalars(select(models.OutboxEmail)))
