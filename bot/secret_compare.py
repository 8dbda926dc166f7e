"""Comparing secrets: in constant time, on bytes, and safe on anything a client may send (missing, empty, huge,
non-ASCII headers are simply "not equal" instead of an exception)."""
from __future__ import annotations

import hmac
from typing import Optional, Union

MAX_SECRET_CHARS = 4096


def as_bytes(value: Union[str, bytes, None]) -> Optional[bytes]:
    """The bytes of a header or token as received; None for a missing value. Header values that were not valid
    UTF-8 arrive with surrogate escapes, which are kept as the original bytes."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8", "surrogateescape")


def same_secret(given: Union[str, bytes, None], expected: Union[str, bytes, None]) -> bool:
    """True only when both are present, non-empty and equal. The time taken does not depend on where they
    differ."""
    given_bytes, expected_bytes = as_bytes(given), as_bytes(expected)
    if not given_bytes or not expected_bytes or len(given_bytes) > MAX_SECRET_CHARS:
        return False
    return hmac.compare_digest(given_bytes, expected_bytes)


def bearer(header: Optional[str]) -> Optional[str]:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
