"""Reading account numbers and one-time codes out of what customers type, and masking what we show back."""
from __future__ import annotations

import re
from typing import List, Optional

ACCOUNT_NUMBER_DIGITS = 10   # Unifi business account number as printed on the bill
CODE_DIGITS = 6              # one-time verification code

# Digit groups a person might type: "1012345678", "101 234 5678", "101-234-5678", "482 913".
_DIGIT_RUN = re.compile(r"[0-9](?:[ \-]?[0-9])*")
_ALNUM_RUN = re.compile(r"[0-9A-Za-z](?:[ \-]?[0-9A-Za-z])*")


def digit_groups(text: str) -> List[str]:
    """Every run of digits in `text`, with the spaces and dashes inside it removed."""
    return [re.sub(r"[ \-]", "", match) for match in _DIGIT_RUN.findall(text or "")]


def has_digits(text: str) -> bool:
    return any("0" <= ch <= "9" for ch in text or "")


def _exactly_one(candidates: List[str], length: int) -> Optional[str]:
    fitting = [c for c in candidates if len(c) == length]
    return fitting[0] if len(set(fitting)) == 1 else None


def parse_account_number(text: str) -> Optional[str]:
    """The 10-digit account number in a message ("my acc no 101-234 5678"), or None if there isn't exactly one."""
    return _exactly_one(digit_groups(text), ACCOUNT_NUMBER_DIGITS)


def is_account_number(value: str) -> bool:
    return bool(value) and value.isascii() and value.isdigit() and len(value) == ACCOUNT_NUMBER_DIGITS


def parse_code(text: str) -> Optional[str]:
    """The 6-digit code in a message ("123456", "123 456", "kod 123-456"). None when the code has letters mixed
    in ("12a456"), has the wrong length, or the message holds more than one candidate."""
    for token in _ALNUM_RUN.findall(text or ""):
        compact = re.sub(r"[ \-]", "", token)
        if any(ch.isdigit() for ch in compact) and any(ch.isalpha() for ch in compact) and len(compact) <= 8:
            # "12a456", "I23456": a mistyped code, not a word with a number in it; refuse rather than guess
            if sum(ch.isdigit() for ch in compact) >= 4:
                return None
    return _exactly_one(digit_groups(text), CODE_DIGITS)


def mask_account_number(number: str) -> str:
    """'1012345678' -> '******5678'."""
    return "*" * max(len(number) - 4, 0) + number[-4:]


def mask_email(address: str) -> str:
    """'john@company.com.my' -> 'j***@company.com.my'."""
    local, _, domain = (address or "").partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"
