"""Encryption at rest of what the account store must keep but never show: the activation codes (re-sent only to
the registered email). Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`), keyed by DATA_ENCRYPTION_KEY.
The variable may hold several keys separated by commas: the first encrypts, all of them decrypt, so a key can
be rotated without losing the codes stored under the old one."""
from __future__ import annotations

from typing import List

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class UnreadableSecret(ValueError):
    """Stored ciphertext that none of the keys decrypts (a lost or wrong DATA_ENCRYPTION_KEY)."""


class Cipher:
    def __init__(self, keys: str):
        parsed: List[Fernet] = []
        for key in (part.strip() for part in keys.split(",")):
            if not key:
                continue
            try:
                parsed.append(Fernet(key.encode()))
            except ValueError:
                raise ValueError("DATA_ENCRYPTION_KEY: each key is 32 bytes in URL-safe base64 (44 characters)") \
                    from None
        if not parsed:
            raise ValueError("DATA_ENCRYPTION_KEY is empty")
        self._fernet = MultiFernet(parsed)

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise UnreadableSecret("stored value not readable with DATA_ENCRYPTION_KEY") from None
