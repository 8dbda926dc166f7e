"""Reading account numbers and codes from messages, masking, and signed identity tokens."""
import pytest

from bot.accounts.identifiers import mask_account_number, mask_email, parse_account_number, parse_code
from bot.accounts.verification import sign_identity_token, token_from_metadata, verify_identity_token

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


def test_identity_token_round_trip_and_forgeries():
    token = sign_identity_token("1000000001", 2_000_000_000, SECRET)
    assert verify_identity_token(token, SECRET, now_unix=1_900_000_000) == "1000000001"
    number, expiry, signature = token.split(".")
    assert verify_identity_token(f"1000000002.{expiry}.{signature}", SECRET, 1_900_000_000) is None  # other account
    assert verify_identity_token(f"{number}.2100000000.{signature}", SECRET, 1_900_000_000) is None  # longer expiry
    assert verify_identity_token(token, "another-secret", 1_900_000_000) is None
    assert verify_identity_token(token, SECRET, now_unix=2_000_000_000) is None                      # expired
    assert verify_identity_token(token, "", 1_900_000_000) is None                                   # no secret
    for garbage in (None, 12, "", "a.b.c", "x" * 500, f"{number}.{expiry}"):
        assert verify_identity_token(garbage, SECRET, 1_900_000_000) is None


def test_token_from_metadata():
    assert token_from_metadata({"identity_token": "abc"}) == "abc"
    assert token_from_metadata({"identity_token": {"nested": 1}}) is None
    assert token_from_metadata(None) is None and token_from_metadata("string") is None
