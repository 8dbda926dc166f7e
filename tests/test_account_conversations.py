"""Account conversations through Rasa's REST channel with the real Rasa and action servers and the demo
accounts: verification by one-time code and by identity token, each account answer, in English and Malay."""
import re
import time
import uuid

import pytest
from sqlalchemy import select

from bot.accounts import models
from bot.accounts.store import AccountStore
from bot.accounts.verification import sign_identity_token
from tests.conftest import IDENTITY_TOKEN_SECRET


@pytest.fixture(scope="module")
def accounts(test_settings, assistant):
    return AccountStore(test_settings.database_url)


def sender(name):
    return f"{name}-{uuid.uuid4().hex[:8]}"


def latest_code(accounts, email):
    """The one-time code the assistant emailed to `email` (read from the outbox, as the customer would)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with accounts.session() as session:
            mail = session.scalars(select(models.OutboxEmail).where(
                models.OutboxEmail.to_address == email, models.OutboxEmail.kind == "verification_code")
                .order_by(models.OutboxEmail.id.desc())).first()
            if mail is not None:
                return re.search(r"\b(\d{6})\b", mail.body).group(1)
        time.sleep(0.2)
    raise AssertionError(f"no code emailed to {email}")


def token(account_number, seconds=600, secret=IDENTITY_TOKEN_SECRET):
    return sign_identity_token(account_number, int(time.time()) + seconds, secret)


def test_english_penalty_with_verification_by_code(assistant, accounts):
    me = sender("en-penalty")
    reply = assistant.text(me, "how much is my penalty if I cancel now?")
    assert "full subscription fee multiplied by the remaining contract period" in reply   # FAQ 33, general
    assert "Shall we do that now?" in reply
    assert "account number (10 digits" in assistant.text(me, "yes")
    reply = assistant.text(me, "1000000001")
    assert "If this account exists, we've sent a 6-digit verification code" in reply
    reply = assistant.text(me, latest_code(accounts, "aminah@majujaya.com.my"))
    assert "you're verified for account ******0001 (Kedai Runcit Maju Jaya Sdn Bhd)" in reply
    assert "7 month(s) left, so the penalty is RM125.00 × 7 = RM875.00" in reply
    # Verification lasts for the session: the next account question is answered straight away.
    reply = assistant.text(me, "what plan am I on?")
    assert "Standard, RM125.00 a month" in reply and "desktops 3/25" in reply


def test_malay_suspension_with_verification_by_code(assistant, accounts):
    me = sender("ms-status")
    reply = assistant.text(me, "kenapa akaun saya kena gantung?")
    assert "Mahu lakukannya sekarang?" in reply
    assert "nombor akaun perniagaan Unifi anda" in assistant.text(me, "ya")
    assert "Jika akaun ini wujud" in assistant.text(me, "no akaun saya 100 000 0003")
    reply = assistant.text(me, latest_code(accounts, "selerakampung@restoran.com.my"))
    assert "identiti anda telah disahkan bagi akaun ******0003" in reply
    assert "telah digantung sejak" in reply and "RM250.00" in reply and "(FAQ 18)" in reply
    reply = assistant.text(me, "berapa bil tertunggak saya?")
    assert "jumlah tertunggak RM250.00" in reply and "Tarikh bil seterusnya" in reply


def test_wrong_codes_then_lockout(assistant, accounts):
    me = sender("lockout")
    assistant.text(me, "I want to verify my account")
    assert "If this account exists" in assistant.text(me, "1000000005")
    assert "A verification code has exactly 6 digits" in assistant.text(me, "12a 456")
    for left in (4, 3, 2, 1):
        assert f"Attempts left before verification is locked: {left}." in assistant.text(me, "000000")
    reply = assistant.text(me, "000000")
    assert "locked after too many wrong codes" in reply
    # Locked for another conversation too, even with the right code now in the mailbox.
    other = sender("lockout-2")
    assistant.text(other, "verify me")
    assert "locked after too many wrong codes" in assistant.text(other, "1000000005")


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


def test_identity_token_verifies_and_lost_code_is_emailed_in_malay(assistant, accounts):
    me = sender("web-token")
    reply = assistant.send(me, "saya hilang kod pengaktifan", {"identity_token": token("1000000002")})
    text = "\n".join(m.get("text", "") for m in reply)
    assert "ke e-mel berdaftar anda h***@gmail.com" in text
    assert "TH4W8-Z2K6M-P9R3X-C7V5B" not in text
    with accounts.session() as session:
        mail = session.scalars(select(models.OutboxEmail).where(
            models.OutboxEmail.kind == "activation_codes",
            models.OutboxEmail.to_address == "harmoni.teknik@gmail.com")).first()
    assert mail is not None and "TH4W8-Z2K6M-P9R3X-C7V5B" in mail.body


def test_forged_and_expired_tokens_stay_anonymous(assistant):
    good = token("1000000002")
    for bad in (good[:-2] + "00", token("1000000002", seconds=-5), token("1000000002", secret="guess")):
        me = sender("forged")
        reply = assistant.send(me, "what is my outstanding balance?", {"identity_token": bad})
        text = "\n".join(m.get("text", "") for m in reply)
        assert "RM30.00" not in text and "Shall we do that now?" in text


def test_balance_by_token_then_other_account_then_log_out(assistant):
    me = sender("web-balance")
    text = "\n".join(m.get("text", "") for m in assistant.send(
        me, "how much do I owe?", {"identity_token": token("1000000002")}))
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
    ("ms", "berapa penalti kalau saya tamatkan langganan sekarang?", "baki 7 bulan, jadi penaltinya RM125.00 × 7 = RM875.00"),
    ("en", "is my account active or suspended?", "Account ******0001 (Kedai Runcit Maju Jaya Sdn Bhd) is active."),
    ("ms", "akaun saya aktif ke atau kena gantung?", "Akaun ******0001 (Kedai Runcit Maju Jaya Sdn Bhd) aktif."),
    ("en", "what is the outstanding balance on my account?", "outstanding amount RM0.00"),
    ("ms", "berapa jumlah bil yang saya belum bayar?", "jumlah tertunggak RM0.00"),
    ("en", "which plan do I have and how many devices are connected?", "desktops 3/25, mobile devices 2/25"),
    ("ms", "saya langgan pelan apa dan berapa peranti yang digunakan?", "desktop 3/25, peranti mudah alih 2/25"),
    ("en", "I can't find my activation code anymore", "to your registered email a***@majujaya.com.my"),
    ("ms", "kod pengaktifan saya dah hilang", "ke e-mel berdaftar anda a***@majujaya.com.my"),
])
def test_every_account_answer_in_both_languages(assistant, language, message, expected):
    me = sender(f"all-{language}")
    reply = assistant.send(me, message, {"identity_token": token("1000000001")})
    text = "\n\n".join(m.get("text", "") for m in reply)
    assert expected in text, text
