"""The account actions run directly with Tracker fixtures against a real (SQLite) account store."""
import asyncio
import time
from datetime import date, datetime, timedelta, timezone

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.account import (
    ActionAccountAnswer,
    ActionCancelVerification,
    ActionLogOut,
    ActionSessionStart,
    ActionVerificationFinished,
    ValidateVerifyAccountForm,
)
from bot.accounts import models, verification
from bot.accounts import service as service_module
from bot.accounts.cli import seed_demo
from bot.accounts.service import AccountService
from bot.accounts.store import AccountStore
from bot.accounts.verification import RESPONSE_FLOOR_SECONDS
from bot.paths import REPO_ROOT
from bot.settings import load_settings
from conftest import DATA_ENCRYPTION_KEY, TEST_SECRETS

TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 2, 0)
SECRET = "action-test-secret"
DOMAIN = yaml.safe_load((REPO_ROOT / "domain.yml").read_text())


def mark_verified(store, conversation, number, method, now, channel="widget"):
    verification.mark_verified(store, conversation, number, method, now, channel)


@pytest.fixture
def service(tmp_path, monkeypatch):
    store = AccountStore(f"sqlite:///{tmp_path / 'accounts.db'}", DATA_ENCRYPTION_KEY)
    seed_demo(store, TODAY)
    settings = load_settings({**TEST_SECRETS, "IDENTITY_TOKEN_SECRET": SECRET, "DATABASE_URL": store.url,
                              "SECRETS_FILE": str(tmp_path / "none.env")})
    account_service = AccountService(settings, store, clock=lambda: TODAY, now=lambda: NOW)
    account_service.deliver_emails = lambda: None          # delivery is tested in test_account_store
    monkeypatch.setattr(service_module, "_service", account_service)
    return account_service


def tracker(text="", intent=None, language="en", sender="conv-1", slots=None, metadata=None, active_loop=None,
            channel="widget"):
    message = {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": []}
    all_slots = {"language": language, "requested_slot": None, "account_number": None, "verification_code": None,
                 "pending_account_intent": None, "verification_offered": False, **(slots or {})}
    return Tracker(sender, all_slots, message,
                   [{"event": "user", "text": text, "parse_data": message, "metadata": metadata or {},
                     "input_channel": channel}],
                   False, None, {"name": active_loop} if active_loop else {}, "action_listen")


def run(action, current):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, current, DOMAIN))
    return dispatcher.messages, {e["name"]: e["value"] for e in events if e.get("event") == "slot"}, events


def texts(messages):
    return "\n".join(m.get("text") or "" for m in messages)


def test_unverified_gets_the_general_answer_and_an_offer(service):
    messages, slots, _ = run(ActionAccountAnswer(), tracker("berapa penalti saya?", "ask_termination_penalty", "ms"))
    assert [m["response"] for m in messages] == ["utter_ask_termination_penalty", "utter_offer_verification"]
    assert slots == {"verification_offered": True, "pending_account_intent": "ask_termination_penalty"}


def test_penalty_for_a_verified_customer_in_english_and_malay(service):
    mark_verified(service.store, "conv-1", "1000000001", "code", NOW)
    messages, slots, _ = run(ActionAccountAnswer(), tracker("penalty if i cancel?", "ask_termination_penalty"))
    text = texts(messages)
    assert "******0001" in text and "Standard (RM125.00 a month)" in text
    assert "12 June 2026 to 12 June 2027, 7 month(s) left" in text and "RM125.00 × 7 = RM875.00" in text
    assert "TMpoint/Unifi Store" in text and slots["verification_offered"] is False
    messages, _, _ = run(ActionAccountAnswer(), tracker("penalti?", "ask_termination_penalty", "ms"))
    assert "12 Jun 2026 hingga 12 Jun 2027, baki 7 bulan" in texts(messages) and "RM875.00" in texts(messages)


def test_penalty_with_several_subscriptions_and_none_after_twelve_months(service):
    mark_verified(service.store, "conv-1", "1000000004", "code", NOW)
    text = texts(run(ActionAccountAnswer(), tracker("penalty", "ask_termination_penalty"))[0])
    assert "RM200.00 × 9 = RM1,800.00" in text                       # Professional, 3 months in
    assert "Starter: the 12-month minimum contract ended on 22 October 2026" in text
    assert "contract 7 September 2026 to 7 September 2027, 10 month(s) left" in text   # renewed by a plan change
    assert "Estimated total if you terminate all of them today: RM3,050.00." in text
    # The part-month rule is the operator's, spelled out and labelled so; no FAQ number reaches the customer.
    assert "a month of the contract that has started counts as a full month. That is our operator policy" in text
    assert "Unifi confirms the final amount" in text and "FAQ 3" not in text


def test_suspended_account_status_and_balance(service):
    mark_verified(service.store, "conv-1", "1000000003", "code", NOW)
    status = texts(run(ActionAccountAnswer(), tracker("why suspended", "ask_account_status"))[0])
    assert "suspended since 11 November 2026" in status and "Amount to settle: RM250.00" in status
    assert "can't upgrade or downgrade your plan: settle the outstanding RM250.00" in status and "JomPAY" in status
    balance = texts(run(ActionAccountAnswer(), tracker("berapa hutang", "ask_outstanding_balance", "ms"))[0])
    assert "jumlah tertunggak RM250.00" in balance
    assert "Bayaran terakhir: RM125.00 pada 24 September 2026 melalui Boost eWallet" in balance
    assert "Tarikh bil seterusnya: 22 November 2026" in balance
    assert "jelaskan caj tertunggak dan aktifkan semula akaun" in balance      # FAQ 18: settle AND resume
    assert "bank tempatan sahaja" in balance                                  # TM Autopay: Local Issued Bank only


def test_my_subscription_shows_usage_and_the_downgrade_warning(service):
    mark_verified(service.store, "conv-1", "1000000005", "code", NOW)
    text = texts(run(ActionAccountAnswer(), tracker("my plan?", "ask_my_subscription"))[0])
    assert "desktops 8/25, mobile devices 6/25, password managers 1/25, file servers 2/2, VPN connections 25" in text
    assert "downgrade this Standard plan to Starter, limit the devices with the solution to Starter's licences (5 " \
           "desktops, 5 mobile devices, 5 password managers, 1 file server)" in text       # FAQ 19, as it says it
    assert "the system keeps only the devices first connected to the Kaspersky Small Office Security portal" in text
    assert "5 device(s) would lose it: ADMIN-LAPTOP, SURGERY-3-PC, SPARE-LAPTOP, Nurse Tablet, IMAGING-ARCHIVE" in text
    assert "counting each type of device (for each type of device, the devices first connected" in text


def test_lost_code_is_emailed_never_shown(service):
    mark_verified(service.store, "conv-1", "1000000004", "code", NOW)
    text = texts(run(ActionAccountAnswer(), tracker("lost my code", "lost_activation_code"))[0])
    assert "a***@tuisyencemerlang.my" in text and "3 active plan(s)" in text
    with service.store.session() as session:
        email = session.scalars(select(models.OutboxEmail)).one()
    codes = ["PC8R2-N5J7K-D3X9W-Q6T4L", "PC2H6-V9M3B-K7W5R-T8N4Z", "PC5L9-X4D8Q-R2J6M-W7B3K"]
    assert email.to_address == "admin@tuisyencemerlang.my" and all(code in email.body for code in codes)
    assert not any(code in text for code in codes)
    # The chat names the address the email comes from, and the email repeats it (a phishing copy cannot match).
    sender = service.sender_address
    assert sender and "<" not in sender and f"from {sender}" in text and f"comes from {sender}" in email.body
    assert "Unifi never asks for your password or a code by phone or chat" in text
    assert "Unifi never asks for your password or your activation code by phone or chat" in email.body


def test_activation_codes_are_emailed_at_most_once_an_hour(service):
    mark_verified(service.store, "conv-1", "1000000004", "code", NOW)
    first = texts(run(ActionAccountAnswer(), tracker("lost my code", "lost_activation_code"))[0])
    again = texts(run(ActionAccountAnswer(), tracker("lost my code again", "lost_activation_code"))[0])
    assert "3 active plan(s)" in first and "less than an hour ago" in again and "a***@tuisyencemerlang.my" in again
    service.now = lambda: NOW + timedelta(minutes=61)
    mark_verified(service.store, "conv-1", "1000000004", "code", NOW + timedelta(minutes=61))   # verified again
    assert "3 active plan(s)" in texts(run(ActionAccountAnswer(), tracker("and again", "lost_activation_code"))[0])
    with service.store.session() as session:
        assert len(session.scalars(select(models.OutboxEmail).where(
            models.OutboxEmail.kind == "activation_codes")).all()) == 2


def test_a_token_in_the_metadata_verifies_nothing(service):
    """Identity tokens are checked by the gateway and never reach Rasa; one smuggled into the metadata of a
    message is ignored by the actions."""
    now_unix = int(NOW.replace(tzinfo=timezone.utc).timestamp())
    good = verification.sign_identity_token("1000000002", now_unix, now_unix + 600, SECRET)
    messages, _, _ = run(ActionAccountAnswer(), tracker("penalty?", "ask_termination_penalty", sender="web-1",
                                                        metadata={"identity_token": good}))
    assert messages[0]["response"] == "utter_ask_termination_penalty"


def test_verification_holds_on_its_own_channel_and_for_thirty_minutes(service):
    mark_verified(service.store, "conv-1", "1000000001", "code", NOW, channel="widget")
    assert "RM875.00" in texts(run(ActionAccountAnswer(), tracker("penalty?", "ask_termination_penalty"))[0])
    other_channel = run(ActionAccountAnswer(), tracker("penalty?", "ask_termination_penalty", channel="twitter"))[0]
    assert other_channel[0]["response"] == "utter_ask_termination_penalty"
    service.now = lambda: NOW + timedelta(minutes=30)
    expired = run(ActionAccountAnswer(), tracker("penalty?", "ask_termination_penalty"))[0]
    assert expired[0]["response"] == "utter_ask_termination_penalty"


def test_verified_customer_asking_about_another_account_gets_nothing(service):
    mark_verified(service.store, "conv-1", "1000000001", "code", NOW)
    messages, _, _ = run(ActionAccountAnswer(), tracker("balance for account 1000000003?", "ask_outstanding_balance"))
    assert [m["response"] for m in messages] == ["utter_account_other_account"]
    assert "RM250" not in texts(messages)


def test_question_during_verification_waits(service):
    messages, slots, _ = run(ActionAccountAnswer(), tracker("my balance?", "ask_outstanding_balance",
                                                            active_loop="verify_account_form"))
    assert messages[0]["response"] == "utter_verification_waiting_question"
    assert slots == {"pending_account_intent": "ask_outstanding_balance"}


def validate(method, value, current):
    dispatcher = CollectingDispatcher()
    result = asyncio.run(getattr(ValidateVerifyAccountForm(), method)(value, dispatcher, current, DOMAIN))
    return [m.get("response") for m in dispatcher.messages], result


@pytest.mark.parametrize("number", ["1000000001", "5555555555"])
def test_account_number_step_says_the_same_for_existing_and_unknown(service, number):
    started = time.monotonic()
    responses, result = validate("validate_account_number", f"my account is {number}",
                                 tracker("x", sender=f"c-{number}"))
    assert time.monotonic() - started >= RESPONSE_FLOOR_SECONDS      # the reply time does not tell them apart
    assert responses == ["utter_verification_code_sent"] and result == {"account_number": "******" + number[-4:]}
    with service.store.session() as session:
        emails = session.scalars(select(models.OutboxEmail)).all()
    assert len(emails) == (1 if number == "1000000001" else 0)
    for email in emails:
        assert f"This email comes from {service.sender_address}, the address the chat named" in email.body
        assert "Unifi never asks for your password or this code by phone or chat" in email.body


@pytest.mark.parametrize("value", ["12345", "abc", "'; DROP TABLE accounts;--", "1000000001 1000000002"])
def test_malformed_account_number(service, value):
    responses, result = validate("validate_account_number", value, tracker(value))
    assert responses == ["utter_account_number_invalid"] and result == {"account_number": None}


def test_code_step_wrong_then_right(service):
    codes = iter(["777777"])
    verification.start_challenge(service.store, "1000000001", "conv-1", NOW, "widget", generate=lambda: next(codes))
    current = tracker("x", slots={"account_number": "******0001"})
    assert validate("validate_verification_code", "12 34", current) == (
        ["utter_verification_code_invalid"], {"verification_code": None})
    assert validate("validate_verification_code", "77777a", current) == (
        ["utter_verification_code_invalid"], {"verification_code": None})
    assert validate("validate_verification_code", "111111", current) == (
        ["utter_verification_code_wrong"], {"verification_code": None})
    assert validate("validate_verification_code", "777 777", current) == ([], {"verification_code": "verified"})
    assert service.verified_account("conv-1", "widget") == "1000000001"


def test_five_wrong_tries_use_the_code_up(service):
    verification.start_challenge(service.store, "1000000003", "conv-1", NOW, generate=lambda: "101010")
    current = tracker("x", slots={"account_number": "******0003"})
    for _ in range(4):
        assert validate("validate_verification_code", "999999", current)[0] == ["utter_verification_code_wrong"]
    assert validate("validate_verification_code", "999999", current) == (
        ["utter_verification_code_used_up"], {"verification_code": "expired"})
    # Another conversation is not locked out: it gets a code of its own (after the minute between emails).
    service.now = lambda: NOW + timedelta(minutes=2)
    assert validate("validate_account_number", "1000000003", tracker("x", sender="conv-9")) == (
        ["utter_verification_code_sent"], {"account_number": "******0003"})


def test_limits_through_the_form(service):
    for i in range(3):
        service.now = lambda i=i: NOW + timedelta(minutes=2 * i)
        assert validate("validate_account_number", f"100000000{i + 1}", tracker("x"))[0] == [
            "utter_verification_code_sent"]
    service.now = lambda: NOW + timedelta(minutes=7)
    responses, result = validate("validate_account_number", "1000000004", tracker("x"))
    assert responses == ["utter_verification_too_many"] and result["verification_code"] == "locked"
    assert validate("validate_account_number", "1000000005", tracker("x", sender="other"))[0] == [
        "utter_verification_code_sent"]
    assert validate("validate_account_number", "1000000005", tracker("x", sender="third"))[0] == [
        "utter_verification_code_recent_new"]


def test_finished_confirms_and_answers_the_waiting_question(service):
    mark_verified(service.store, "conv-1", "1000000003", "code", NOW)
    messages, slots, _ = run(ActionVerificationFinished(), tracker(
        "123456", slots={"verification_code": "verified", "pending_account_intent": "ask_account_status"}))
    assert messages[0]["response"] == "utter_verified" and messages[0]["business"] == "Restoran Selera Kampung"
    assert "suspended since" in messages[1]["text"]
    assert slots["account_number"] is None and slots["pending_account_intent"] is None


def test_finished_after_a_lockout_says_nothing_more(service):
    messages, slots, _ = run(ActionVerificationFinished(), tracker("1", slots={"verification_code": "locked"}))
    assert messages == [] and slots["verification_code"] is None


def test_log_out_and_session_start_forget_verification(service):
    mark_verified(service.store, "conv-1", "1000000001", "code", NOW)
    assert run(ActionLogOut(), tracker("log out"))[0][0]["response"] == "utter_logged_out"
    assert run(ActionLogOut(), tracker("log out"))[0][0]["response"] == "utter_not_logged_in"
    mark_verified(service.store, "conv-1", "1000000001", "code", NOW)
    previous_session = tracker("hi", language="ms")
    previous_session.events[0]["timestamp"] = (NOW + timedelta(minutes=5)).replace(tzinfo=timezone.utc).timestamp()
    _, slots, events = run(ActionSessionStart(), previous_session)
    assert [e["event"] for e in events] == ["session_started", "slot", "action"] and slots == {"language": "ms"}
    assert service.verified_account("conv-1", "widget") is None


def test_a_new_conversation_keeps_the_verification_the_website_just_gave(service):
    """The gateway checks the website's identity token before the conversation's first message reaches Rasa;
    the session that message starts must not forget it."""
    mark_verified(service.store, "widget:new", "1000000001", "token", NOW)
    run(ActionSessionStart(), Tracker("widget:new", {"language": "en"}, {}, [], False, None, {}, "action_listen"))
    assert service.verified_account("widget:new", "widget") == "1000000001"


def test_session_start_takes_the_channels_language_hint_only_for_a_new_conversation(service):
    def session_start(events, hint, language="en"):
        current = Tracker("conv-hint", {"language": language, "session_started_metadata": {"language": hint}},
                          {}, events, False, None, {}, "action_listen")
        return run(ActionSessionStart(), current)[1]

    assert session_start([], "ms") == {"language": "ms"}                       # the widget is set to BM
    assert session_start([], "klingon") == {"language": "en"}                   # unknown hints are ignored
    earlier = [{"event": "user", "text": "how much is starter?", "metadata": {}}]
    assert session_start(earlier, "en", language="ms") == {"language": "ms"}   # the customer's own language stays


def test_cancel_closes_the_form(service):
    messages, slots, events = run(ActionCancelVerification(),
                                  tracker("cancel", "deny", active_loop="verify_account_form"))
    assert messages[0]["response"] == "utter_verification_cancelled"
    assert events[0] == {"event": "active_loop", "timestamp": None, "name": None}


def test_store_down_gives_a_polite_answer(service, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def broken(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("database is down"))

    monkeypatch.setattr(service, "verified_account", broken)
    messages, _, _ = run(ActionAccountAnswer(), tracker("balance", "ask_outstanding_balance"))
    assert [m["response"] for m in messages] == ["utter_account_unavailable"]


def test_my_subscription_shows_a_prorated_first_charge(service, tmp_path):
    import json

    from bot.accounts.importer import import_file

    path = tmp_path / "new.json"
    path.write_text(json.dumps([{
        "account_number": "1000000099", "business_name": "Butik Baru", "registration_type": "brn",
        "registration_id": "202601099999", "email": "owner@butikbaru.my", "phone": "+6012-000 1111",
        "subscriptions": [{"plan": "Standard", "start_date": "2026-12-02"}]}]))
    import_file(service.store, path, TODAY)
    service.today = lambda: date(2026, 12, 10)
    mark_verified(service.store, "conv-1", "1000000099", "code", NOW)
    text = texts(run(ActionAccountAnswer(), tracker("my plan?", "ask_my_subscription"))[0])
    assert ("Started on 2 December 2026, part-way through the billing period 22 November 2026 to 22 December 2026, "
            "so the first charge is prorated. Estimated first charge: RM83.33 for 20 of 30 days (the monthly fee is "
            "divided by the days of the billing period and multiplied by the days you had the plan: our operator "
            "policy, not a rule the FAQ states). Unifi confirms the final amount on your bill.") in text


def test_the_code_limit_counts_an_ipv6_client_by_its_line(service):
    line = service.client_hash("2001:db8:1:2::5")
    assert line == service.client_hash("2001:db8:1:2:ffff::1") != service.client_hash("2001:db8:1:3::1")
    assert service.client_hash("203.0.113.5") != service.client_hash("203.0.113.6") and service.client_hash("") is None
