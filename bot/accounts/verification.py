"""Identity verification: signed identity tokens from the website, and one-time codes sent by email.

Rules (issue 3): a code has 6 digits and expires after 10 minutes; 5 wrong codes lock verification for that
account number for 30 minutes; answers never reveal whether an account number exists (a challenge is recorded
for any well-formed number, with no matching code when there is no such account); verification belongs to one
conversation session and is forgotten on "log out" or when the session ends.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Mapping, Optional

from sqlalchemy import delete, select, update

from bot.accounts import models
from bot.accounts.identifiers import is_account_number
from bot.accounts.store import AccountStore

CODE_LIFETIME = timedelta(minutes=10)
MAX_WRONG_CODES = 5
LOCK_DURATION = timedelta(minutes=30)
RESEND_INTERVAL = timedelta(seconds=60)   # no second email for the same account number within a minute
TOKEN_METADATA_KEY = "identity_token"


# --- Signed identity tokens (the host page of the website widget signs them) ------------------------------

def sign_identity_token(account_number: str, expires_at: int, secret: str) -> str:
    """'<account number>.<expiry, Unix seconds>.<hex HMAC-SHA256(secret, "<account number>.<expiry>")>'."""
    message = f"{account_number}.{int(expires_at)}"
    signature = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"{message}.{signature}"


def verify_identity_token(token: object, secret: str, now_unix: float) -> Optional[str]:
    """The account number of a valid, unexpired token; None for anything forged, expired or malformed, and
    always None when no secret is configured."""
    if not secret or not isinstance(token, str) or len(token) > 200:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    account_number, expires, signature = parts
    if not is_account_number(account_number) or not expires.isdigit():
        return None
    expected = sign_identity_token(account_number, int(expires), secret).rsplit(".", 1)[1]
    if not hmac.compare_digest(expected, signature.lower()):
        return None
    if int(expires) <= now_unix:
        return None
    return account_number


def token_from_metadata(metadata: Optional[Mapping]) -> Optional[str]:
    if not isinstance(metadata, Mapping):
        return None
    token = metadata.get(TOKEN_METADATA_KEY)
    return token if isinstance(token, str) else None


# --- One-time codes ---------------------------------------------------------------------------------------

class CodeCheck(enum.Enum):
    VERIFIED = "verified"
    WRONG = "wrong"
    EXPIRED = "expired"
    LOCKED = "locked"
    NO_CODE = "no_code"        # no code was sent in this conversation (or it was already used)


@dataclass(frozen=True)
class ChallengeResult:
    locked_until: Optional[datetime] = None      # set when verification for the number is locked
    code: Optional[str] = None                   # the code to email; None when no email goes out

    @property
    def locked(self) -> bool:
        return self.locked_until is not None


@dataclass(frozen=True)
class CheckResult:
    outcome: CodeCheck
    attempts_left: int = 0
    locked_until: Optional[datetime] = None


def _hash_code(code: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}${code}".encode()).hexdigest()


def _matches(code: str, stored: Optional[str]) -> bool:
    if not stored:
        hmac.compare_digest("0" * 64, _hash_code(code, "none"))  # same work whether or not the account exists
        return False
    salt, _, digest = stored.partition("$")
    return hmac.compare_digest(digest, _hash_code(code, salt))


def _lock_row(session, account_number: str) -> models.VerificationLock:
    row = session.scalars(
        select(models.VerificationLock).where(models.VerificationLock.account_number == account_number)
        .with_for_update()
    ).one_or_none()
    if row is None:
        row = models.VerificationLock(account_number=account_number, failed_attempts=0)
        session.add(row)
        session.flush()
    return row


def locked_until(store: AccountStore, account_number: str, now: datetime) -> Optional[datetime]:
    with store.session() as session:
        row = session.get(models.VerificationLock, account_number)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            return row.locked_until
        return None


def start_challenge(store: AccountStore, account_number: str, conversation_id: str, now: datetime,
                    generate: Callable[[], str] = lambda: f"{secrets.randbelow(10 ** 6):06d}") -> ChallengeResult:
    """Record a challenge for `account_number` in this conversation. Returns the code to email when the account
    exists (and no code went to it within the last minute); the caller says the same thing either way."""
    with store.session() as session:
        lock = _lock_row(session, account_number)
        if lock.locked_until is not None and lock.locked_until > now:
            return ChallengeResult(locked_until=lock.locked_until)
        recent = session.scalars(
            select(models.VerificationChallenge)
            .where(models.VerificationChallenge.account_number == account_number,
                   models.VerificationChallenge.conversation_id == conversation_id,
                   models.VerificationChallenge.used_at.is_(None),
                   models.VerificationChallenge.created_at > now - RESEND_INTERVAL)
        ).first()
        if recent is not None:
            return ChallengeResult()
        # Older unused codes of this conversation stop working: only the newest one counts.
        session.execute(
            update(models.VerificationChallenge)
            .where(models.VerificationChallenge.account_number == account_number,
                   models.VerificationChallenge.conversation_id == conversation_id,
                   models.VerificationChallenge.used_at.is_(None))
            .values(used_at=now)
        )
        exists = session.scalars(
            select(models.Account.id).where(models.Account.account_number == account_number)
        ).first() is not None
        code = generate() if exists else None
        salt = secrets.token_hex(8)
        session.add(models.VerificationChallenge(
            account_number=account_number, conversation_id=conversation_id,
            code_hash=f"{salt}${_hash_code(code, salt)}" if code else None,
            created_at=now, expires_at=now + CODE_LIFETIME,
        ))
        return ChallengeResult(code=code)


def check_code(store: AccountStore, account_number: str, conversation_id: str, code: str,
               now: datetime) -> CheckResult:
    """Check a code typed in `conversation_id` against the newest challenge for `account_number` there.
    A wrong code counts towards the lock whether or not the account exists."""
    with store.session() as session:
        lock = _lock_row(session, account_number)
        if lock.locked_until is not None and lock.locked_until > now:
            return CheckResult(CodeCheck.LOCKED, locked_until=lock.locked_until)
        challenge = session.scalars(
            select(models.VerificationChallenge)
            .where(models.VerificationChallenge.account_number == account_number,
                   models.VerificationChallenge.conversation_id == conversation_id,
                   models.VerificationChallenge.used_at.is_(None))
            .order_by(models.VerificationChallenge.created_at.desc(), models.VerificationChallenge.id.desc())
        ).first()
        if challenge is None:
            return CheckResult(CodeCheck.NO_CODE)
        if challenge.expires_at <= now:
            challenge.used_at = now
            return CheckResult(CodeCheck.EXPIRED)
        if _matches(code, challenge.code_hash):
            challenge.used_at = now
            lock.failed_attempts = 0
            lock.locked_until = None
            return CheckResult(CodeCheck.VERIFIED)
        lock.failed_attempts += 1
        if lock.failed_attempts >= MAX_WRONG_CODES:
            lock.failed_attempts = 0
            lock.locked_until = now + LOCK_DURATION
            challenge.used_at = now
            return CheckResult(CodeCheck.LOCKED, locked_until=lock.locked_until)
        return CheckResult(CodeCheck.WRONG, attempts_left=MAX_WRONG_CODES - lock.failed_attempts)


# --- Which account a conversation is verified for ---------------------------------------------------------

def mark_verified(store: AccountStore, conversation_id: str, account_number: str, method: str,
                  now: datetime) -> None:
    with store.session() as session:
        row = session.get(models.VerifiedConversation, conversation_id)
        if row is None:
            session.add(models.VerifiedConversation(conversation_id=conversation_id, account_number=account_number,
                                                    method=method, verified_at=now))
        else:
            row.account_number, row.method, row.verified_at = account_number, method, now


def verified_account(store: AccountStore, conversation_id: str) -> Optional[str]:
    with store.session() as session:
        row = session.get(models.VerifiedConversation, conversation_id)
        return row.account_number if row else None


def forget_verification(store: AccountStore, conversation_id: str) -> bool:
    """Log out. True when the conversation was verified."""
    if verified_account(store, conversation_id) is None:   # the usual case: a read, no write lock needed
        return False
    with store.session() as session:
        result = session.execute(
            delete(models.VerifiedConversation).where(models.VerifiedConversation.conversation_id == conversation_id)
        )
        return bool(result.rowcount)
