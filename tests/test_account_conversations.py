"""Account conversations through the gateway channel of the real Rasa and action servers with the demo accounts:
verification by one-time code, its limits, each account answer, in English and Malay. (Identity tokens are the
gateway's business: tests/test_gateway_channels.py.)"""
import re
import time
import uuid

import pytest
from sqlalchemy import select

from bot.accounts import models
from bot.accounts.outbox import DEVELOPMENT_LOG
from bot.accounts.store import AccountStore
from bot.accounts.verification import mark_verified, sign_identity_token
from bot.clock import now_utc
from conftest import DATA_ENCRYPTION_KEY, IDENTITY_TOKEN_SECRET
from gateway_helpers import wait_for


@pytest.fixture(scope="module")
def accounts(test_settings, assistant):
    return AccountStore(test_settings.database_url, DATA_ENCRYPTION_KEY)


def sender(name):
    return f"{name}-{uuid.uuid4().hex[:8]}"


def emails_to(address):
    """The bodies of the emails to `address` in the development outbox log, oldest first. (The outbox table
    blanks a body once it is sent, so this log is where a developer, like the customer, reads a code.)"""
    if not DEVELOPMENT_LOG.exists():
        return []
    blocks = re.split(r"^--- ", DEVELOPMENT_LOG.read_text(encoding="utf-8"), flags=re.M)
    return [block.split("\n", 1)[1] for block in blocks if f" to {address}: " in block.split("\n", 1)[0]]


def latest_code(accounts, email, seen=0):
    """The one-time code the assistant emailed to `email` after the `seen` earlier emails."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        codes = [found.group(1) for body in emails_to(email)[seen:]
                 if (found := re.search(r"verification code is (\d{6})", body))]
        if codes:
            return codes[-1]
        time.sleep(0.2)
    raise AssertionError(f"no code emailed to {email}")


def verify_directly(accounts, conversation, number):
    """Verified as if the customer had typed the emailed code (the gateway channel, as these tests talk)."""
    mark_verified(accounts, conversation, number, "code", now_utc(), channel="gateway")


def test_english_penalty_with_verification_by_code(assistant, accounts):
    me = sender("en-penalty")
    seen = len(emails_to("aminah@majujaya.com.my"))
    reply = assistant.text(me, "how much is my penalty if I cancel now?")
    assert "full subscription fee multiplied by the remaining contract period" in reply   # FAQ 33, general
    assert "Shall we do that now?" in reply
    assert "account number (10 digits" in assistant.text(me, "yes")
    reply = assistant.text(me, "1000000001")
    assert "If this account exists, we've sent a 6-digit verification code" in reply
    reply = assistant.text(me, latest_code(accounts, "aminah@majujaya.com.my", seen))
    assert "you're verified for account ******0001 (Kedai Runcit Maju Jaya Sdn Bhd)" in reply
    assert "7 month(s) left, so the estimated penalty is RM125.00 × 7 = RM875.00" in reply
    # Verification lasts for the session: the next account question is answered straight away.
    reply = assistant.text(me, "what plan am I on?")
    assert "Standard, RM125.00 a month" in reply and "desktops 3/25" in reply


def test_malay_suspension_with_verification_by_code(assistant, accounts):
    me = sender("ms-status")
    seen = len(emails_to("selerakampung@restoran.com.my"))
    reply = assistant.text(me, "kenapa akaun saya kena gantung?")
    assert "Mahu lakukannya sekarang?" in reply
    assert "nombor akaun perniagaan Unifi anda" in assistant.text(me, "ya")
    assert "Jika akaun ini wujud" in assistant.text(me, "no akaun saya 100 000 0003")
    reply = assistant.text(me, latest_code(accounts, "selerakampung@restoran.com.my", seen))
    assert "identiti anda telah disahkan bagi akaun ******0003" in reply
    assert "telah digantung sejak" in reply and "RM250.00" in reply and "aktifkan semula akaun" in reply
    reply = assistant.text(me, "berapa bil tertunggak saya?")
    assert "jumlah tertunggak RM250.00" in reply and "Tarikh bil seterusnya" in reply


def test_wrong_codes_use_the_code_up_and_lock_nobody_out(assistant):
    me = sender("guesser")
    assistant.text(me, "I want to verify my account")
    assert "If this account exists" in assistant.text(me, "1000000005")
    assert "A verification code has exactly 6 digits" in assistant.text(me, "12a 456")
    for left in (4, 3, 2, 1):
        assert f"Tries left for this code: {left}." in assistant.text(me, "000000")
    assert "can no longer be used" in assistant.text(me, "000000")
    # Nothing is locked: the owner's own conversation gets a code of its own once the minute between emails for
    # this number has passed (tests/test_account_store.py follows that through to the owner's verification).
    owner = sender("owner")
    assistant.text(owner, "verify me")
    assert "was asked for less than a minute ago" in assistant.text(owner, "1000000005")


def test_a_new_conversation_gets_no_second_email_within_a_minute(assistant, accounts):
    first, second = sender("first"), sender("second")
    assistant.text(first, "verify me")
    assert "If this account exists" in assistant.text(first, "1000000004")
    assistant.text(second, "verify me")
    assert "Please wait a minute, then type the account number again" in assistant.text(second, "1000000004")


def test_a_token_smuggled_into_the_metadata_verifies_nothing(assistant):
    """Identity tokens are checked and stripped by the gateway; one sent straight to Rasa's channel counts for
    nothing."""
    issued = int(time.time())
    good = sign_identity_token("1000000002", issued, issued + 600, IDENTITY_TOKEN_SECRET)
    text = "\n".join(m.get("text", "") for m in assistant.send(
        sender("smuggled"), "what is my outstanding balance?", {"identity_token": good}, channel="widget"))
    assert "RM30.00" not in text and "Shall we do that now?" in text


def test_unknown_account_gets_the_same_answer(assistant, accounts):
    me = sender("unknown")
    assistant.text(me, "verify my account please")
    assert "If this account exists, we've sent a 6-digit verification code" in assistant.text(me, "9876543210")
    assert "That code isn't right" in assistant.text(me, "123456")


def test_bad_account_numbers_and_questions_during_verification(assistant):
    me = sender("bad-input")
    assistant.text(me, "verify me")
    assert "exactly 10 digits" in assistant.text(me, "12345")
    assert "exactly 10 digits" in assistant.text(me, "1'; DROP TABLE accounts; --")
    reply = assistant.text(me, "how much is the starter plan?")
    assert "RM30" in reply and "account number (10 digits" in reply        # answered, then asked again
    assert "I haven't looked at any account" in assistant.text(me, "cancel")


def test_lost_code_is_emailed_in_malay_never_shown(assistant, accounts):
    me = sender("lost-code")
    verify_directly(accounts, me, "1000000002")
    seen = len(emails_to("harmoni.teknik@gmail.com"))
    text = assistant.text(me, "saya hilang kod pengaktifan")
    assert "ke e-mel berdaftar anda h***@gmail.com" in text
    assert "TH4W8-Z2K6M-P9R3X-C7V5B" not in text
    new = wait_for(lambda: emails_to("harmoni.teknik@gmail.com")[seen:], timeout=10)
    assert "TH4W8-Z2K6M-P9R3X-C7V5B" in new[-1]
    with accounts.session() as session:                  # sent, so the stored copy no longer holds the codes
        mail = session.scalars(select(models.OutboxEmail).where(
            models.OutboxEmail.kind == "activation_codes",
            models.OutboxEmail.to_address == "harmoni.teknik@gmail.com").order_by(models.OutboxEmail.id.desc())).first()
    assert mail.sent_at is not None and "TH4W8" not in mail.body


def test_balance_then_other_account_then_log_out(assistant, accounts):
    me = sender("balance")
    verify_directly(accounts, me, "1000000002")
    text = assistant.text(me, "how much do I owe?")
    assert "outstanding amount RM30.00" in text and "JomPAY" in text
    assert "can't show details of another account" in assistant.text(me, "what is the balance of account 1000000004?")
    assert "You're logged out" in assistant.text(me, "log me out please")
    assert "Shall we do that now?" in assistant.text(me, "how much do I owe?")


def test_decline_the_offer(assistant):
    me = sender("decline")
    assert "Mahu lakukannya sekarang?" in assistant.text(me, "status akaun saya macam mana?")
    assert "saya tidak menyemak sebarang akaun" in assistant.text(me, "tak nak")


@pytest.mark.parametrize("language, message, expected", [
    ("en", "is there a penalty if I terminate today?", "RM125.00 × 7 = RM875.00"),
    ("ms", "berapa penalti kalau saya tamatkan langganan sekarang?",
     "baki 7 bulan, jadi anggaran penaltinya ialah RM125.00 × 7 = RM875.00"),
    ("en", "is my account active or suspended?", "Account ******0001 (Kedai Runcit Maju Jaya Sdn Bhd) is active."),
    ("ms", "akaun saya aktif ke atau kena gantung?", "Akaun ******0001 (Kedai Runcit Maju Jaya Sdn Bhd) aktif."),
    ("en", "what is the outstanding balance on my account?", "outstanding amount RM0.00"),
    ("ms", "berapa jumlah bil yang saya belum bayar?", "jumlah tertunggak RM0.00"),
    ("en", "which plan do I have and how many devices are connected?", "desktops 3/25, mobile devices 2/25"),
    ("ms", "saya langgan pelan apa dan berapa peranti yang digunakan?", "desktop 3/25, peranti mudah alih 2/25"),
    ("en", "I can't find my activation code anymore", "to your registered email a***@majujaya.com.my"),
    ("ms", "kod pengaktifan saya dah hilang", "ke e-mel berdaftar anda a***@majujaya.com.my"),
])
def test_every_account_answer_in_both_languages(assistant, accounts, language, message, expected):
    me = sender(f"all-{language}")
    verify_directly(accounts, me, "1000000001")
    text = assistant.text(me, message)
    assert expected in text, text
