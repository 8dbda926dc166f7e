"""Reading account numbers and codes from messages, masking, and signed identity tokens."""
import pytest

from bot.accounts.identifiers import mask_account_number, mask_email, parse_account_number, parse_code
from bot.accounts.verification import sign_identity_token, verify_identity_token

SECRET = "s3cret-for-tests"


@pytest.mark.parametrize("text, number", [
    ("1000000001", "1000000001"),
    ("my acc no is 1000-000-001", "1000000001"),
    ("no akaun saya 100 000 0001 ya", "1000000001"),
    ("12345", None),
    ("10000000011", None),                   # 11 digits
    ("1000000001 or 1000000002", None),      # two different numbers: don't guess
    ("1000000001, sekali lagi 1000000001", "1000000001"),
    ("'; DROP TABLE accounts; --", None),
    ("", None),
    ("١٠٠٠٠٠٠٠٠١", None),                    # Arabic-Indic digits are not an account number
])
def test_parse_account_number(text, number):
    assert parse_account_number(text) == number


@pytest.mark.parametrize("text, code", [
    ("482913", "482913"),
    ("482 913", "482913"),
    ("kod saya 482-913", "482913"),
    ("the code is 482913 thanks", "482913"),
    ("48291", None),
    ("4829133", None),
    ("48a913", None),
    ("I82913", None),
    ("482913 482914", None),
    ("' OR 1=1 --", None),
])
def test_parse_code(text, code):
    assert parse_code(text) == code


def test_masks():
    assert mask_account_number("1000000001") == "******0001"
    assert mask_email("john@company.com.my") == "j***@company.com.my"
    assert mask_email("broken") == "***"


NOW = 1_900_000_000


def test_identity_token_round_trip_and_forgeries():
    token = sign_identity_token("1000000001", NOW, NOW + 600, SECRET)
    assert verify_identity_token(token, SECRET, now_unix=NOW + 1) == "1000000001"
    number, issued, expiry, signature = token.split(".")
    assert verify_identity_token(f"1000000002.{issued}.{expiry}.{signature}", SECRET, NOW) is None  # other account
    assert verify_identity_token(f"{number}.{issued}.{int(expiry) + 60}.{signature}", SECRET, NOW) is None  # longer
    assert verify_identity_token(f"{number}.{int(issued) - 60}.{expiry}.{signature}", SECRET, NOW) is None  # earlier
    assert verify_identity_token(token, "another-secret", NOW) is None
    assert verify_identity_token(token, SECRET, now_unix=NOW + 600) is None                 # expired
    assert verify_identity_token(token, "", NOW) is None                                    # no secret
    # One spelling per token: a rewritten one (capital hex, a leading zero) is refused, so a token used once
    # cannot come back disguised to verify another conversation.
    assert verify_identity_token(f"{number}.{issued}.{expiry}.{signature.upper()}", SECRET, NOW) is None
    assert verify_identity_token(f"{number}.0{issued}.{expiry}.{signature}", SECRET, NOW) is None
    assert verify_identity_token(f"{number}.{issued}.+{expiry}.{signature}", SECRET, NOW) is None
    for garbage in (None, 12, "", "a.b.c.d", "x" * 500, f"{number}.{issued}.{expiry}", token + ".", token + "é",
                    f"{number}.{issued}.{expiry}.{signature}.{signature}", "\x00" * 20, f"{number}.-1.{expiry}.x"):
        assert verify_identity_token(garbage, SECRET, NOW) is None


def test_identity_tokens_live_ten_minutes_at_most():
    """A token is refused, however well signed, if it was made to live longer than 10 minutes or was issued in
    the future (beyond a minute of clock skew): a leaked long-lived token is worth nothing."""
    assert verify_identity_token(sign_identity_token("1000000001", NOW, NOW + 601, SECRET), SECRET, NOW) is None
    assert verify_identity_token(sign_identity_token("1000000001", NOW, NOW + 10 ** 9, SECRET), SECRET, NOW) is None
    assert verify_identity_token(sign_identity_token("1000000001", NOW, NOW, SECRET), SECRET, NOW - 1) is None
    future = sign_identity_token("1000000001", NOW + 120, NOW + 300, SECRET)
    assert verify_identity_token(future, SECRET, NOW) is None
    assert verify_identity_token(future, SECRET, NOW + 60) == "1000000001"              # within the skew
