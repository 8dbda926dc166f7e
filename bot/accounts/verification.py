"""Identity verification: signed identity tokens from the website, and one-time codes sent by email.

One-time codes
- A code has 6 digits, expires after 10 minutes and belongs to one conversation; only the newest code of a
  conversation counts. 5 wrong tries use the *code* up (the customer asks for a new one); nobody else's
  verification is affected.
- Per account number: at most one code a minute and 5 codes in 24 hours, and at most 10 wrong codes in 24 hours,
  after which codes for that number are refused until the day has passed. Reaching either cap emails the
  account's owner once a day.
- Per conversation at most 3 and per client address at most 10 codes an hour (the address is kept only as a keyed
  hash).
- The same happens, with the same answers and the same database work, whether or not an account number exists:
  a challenge is recorded and counted for any well-formed number (for an unknown one with a code nobody
  receives), so neither the replies, the limits nor the timing reveal which numbers are customers'.

Verification lasts for VERIFICATION_TTL_MINUTES (30) after it was given, at most; it belongs to one conversation
on one channel and ends on "log out", when the session ends, or when the website withdraws the identity token.

Identity tokens (the website's host page signs its logged-in customer in):
'<account number>.<issued at>.<expires at>.<hex HMAC-SHA256(secret, "ksos-identity.<account>.<iat>.<exp>")>',
times in Unix seconds, at most 10 minutes apart. The gateway checks them (they never reach Rasa) and a token
verifies one conversation only: the same token from another conversation is refused.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Optional

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from bot.accounts import models
from bot.accounts.identifiers import is_account_number
from bot.accounts.store import AccountStore

CODE_LIFETIME = timedelta(minutes=10)
WRONG_CODES_PER_CODE = 5
RESEND_INTERVAL = timedelta(seconds=60)
DAY = timedelta(hours=24)
HOUR = timedelta(hours=1)
CODES_PER_ACCOUNT_PER_DAY = 5
WRONG_CODES_PER_ACCOUNT_PER_DAY = 10
CODES_PER_CONVERSATION_PER_HOUR = 3
CODES_PER_CLIENT_PER_HOUR = 10
# A verification step's reply takes at least this long (actions/account.py), so that the little work an email
# adds for a real account cannot be timed.
RESPONSE_FLOOR_SECONDS = 0.4

IDENTITY_TOKEN_MAX_LIFETIME = 600        # seconds between issue and expiry
CLOCK_SKEW = 60                          # seconds a website's clock may run ahead of ours
MAX_TOKEN_CHARS = 200
TOKEN_CONTEXT = "ksos-identity"

CODES_LIMIT, WRONG_CODES_LIMIT = "codes_limit", "wrong_codes_limit"     # reasons of an owner alert


def generate_code() -> str:
    return f"{secrets.randbelow(10 ** 6):06d}"


# --- Signed identity tokens -------------------------------------------------------------------------------

def _token_signature(account_number: str, issued_at: int, expires_at: int, secret: str) -> str:
    message = f"{TOKEN_CONTEXT}.{account_number}.{issued_at}.{expires_at}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_identity_token(account_number: str, issued_at: int, expires_at: int, secret: str) -> str:
    """What the host page puts in the widget (`data-identity-token` or KSOSWidget.setIdentityToken)."""
    issued_at, expires_at = int(issued_at), int(expires_at)
    signature = _token_signature(account_number, issued_at, expires_at, secret)
    return f"{account_number}.{issued_at}.{expires_at}.{signature}"


def _canonical_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and text == str(int(text))


def verify_identity_token(token: object, secret: str, now_unix: float) -> Optional[str]:
    """The account number of a valid token; None for anything forged, expired, issued in the future, living longer
    than 10 minutes or malformed, and always None when no secret is configured."""
    if not secret or not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 4:
        return None
    account_number, issued, expires, signature = parts
    # One spelling per token (times without leading zeros, the signature in lower-case hex), so that a token seen
    # once is recognised when it comes again (bind_identity_token) however an attacker rewrites it.
    if not is_account_number(account_number) or not _canonical_number(issued) or not _canonical_number(expires):
        return None
    issued_at, expires_at = int(issued), int(expires)
    expected = _token_signature(account_number, issued_at, expires_at, secret)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return None
    if not 0 < expires_at - issued_at <= IDENTITY_TOKEN_MAX_LIFETIME:
        return None
    if issued_at > now_unix + CLOCK_SKEW or expires_at <= now_unix:
        return None
    return account_number


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def bind_identity_token(store: AccountStore, token: str, conversation_id: str, expires_at: datetime,
                        now: datetime) -> bool:
    """Whether `token` may verify `conversation_id`: yes the first time it is seen and again in the same
    conversation (the widget sends it on every reconnect); no from any other conversation (a replayed token)."""
    digest = _digest(token)
    with store.session() as session:
        used = session.get(models.IdentityTokenUse, digest)
        if used is not None:
            return used.conversation_id == conversation_id
    try:
        with store.session() as session:
            session.add(models.IdentityTokenUse(token_hash=digest, conversation_id=conversation_id,
                                                first_used_at=now, expires_at=expires_at))
        return True
    except IntegrityError:           # the same token at the same moment from two conversations: one wins
        with store.session() as session:
            used = session.get(models.IdentityTokenUse, digest)
            return used is not None and used.conversation_id == conversation_id


# --- One-time codes ---------------------------------------------------------------------------------------

class Start(enum.Enum):
    SENT = "sent"                          # a code went out if the account exists (the reply says "if")
    WAIT = "wait"                          # a code went to this account number less than a minute ago
    ACCOUNT_LIMIT = "account_limit"        # 5 codes in 24 h for this account number, or 10 wrong codes
    TOO_MANY = "too_many"                  # this conversation or client asked for too many codes this hour


@dataclass(frozen=True)
class ChallengeResult:
    outcome: Start
    code: Optional[str] = None             # the code to email: only for an existing account and Start.SENT
    retry_at: Optional[datetime] = None    # for TOO_MANY: when a code can be asked for again
    alert: Optional[str] = None            # an owner alert to email now (CODES_LIMIT)
    open_code: bool = False                # for WAIT: this conversation has a code it can still type


class CodeCheck(enum.Enum):
    VERIFIED = "verified"
    WRONG = "wrong"
    USED_UP = "used_up"                    # the 5th wrong try: this code is spent
    EXPIRED = "expired"
    ACCOUNT_LIMIT = "account_limit"        # too many wrong codes for this account number in 24 h
    NO_CODE = "no_code"                    # no code was sent in this conversation (or it was already used)


@dataclass(frozen=True)
class CheckResult:
    outcome: CodeCheck
    account_number: Optional[str] = None
    attempts_left: int = 0
    alert: Optional[str] = None            # WRONG_CODES_LIMIT when this wrong code reached the daily cap


def _hash_code(code: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}${code}".encode()).hexdigest()


def _matches(code: str, stored: str) -> bool:
    salt, _, digest = stored.partition("$")
    return hmac.compare_digest(digest.encode(), _hash_code(code, salt).encode())


def _count(session, *conditions) -> int:
    return session.scalar(select(func.count()).select_from(models.VerificationChallenge).where(*conditions))


def _wrong_codes_today(session, account_number: str, now: datetime) -> int:
    return session.scalar(
        select(func.coalesce(func.sum(models.VerificationChallenge.wrong_attempts), 0))
        .where(models.VerificationChallenge.account_number == account_number,
               models.VerificationChallenge.created_at > now - DAY)) or 0


def _take_alert(session, account_number: str, reason: str, now: datetime) -> Optional[str]:
    """`reason` if the owner has not been alerted for it in the last 24 hours (and remember that now)."""
    recent = session.scalars(select(models.VerificationAlert.id).where(
        models.VerificationAlert.account_number == account_number, models.VerificationAlert.reason == reason,
        models.VerificationAlert.created_at > now - DAY)).first()
    if recent is not None:
        return None
    session.add(models.VerificationAlert(account_number=account_number, reason=reason, created_at=now))
    return reason


def start_challenge(store: AccountStore, account_number: str, conversation_id: str, now: datetime,
                    channel: str = "", client_hash: Optional[str] = None,
                    generate: Callable[[], str] = generate_code) -> ChallengeResult:
    """Record a challenge for `account_number` in this conversation, within the limits above. The result's code
    is the one to email (set only when the account exists); the caller's reply must not depend on it."""
    challenge = models.VerificationChallenge
    with store.session() as session:
        mine = challenge.conversation_id == conversation_id
        hourly = [_count(session, mine, challenge.created_at > now - HOUR)]
        if client_hash:
            hourly.append(_count(session, challenge.client_hash == client_hash, challenge.created_at > now - HOUR))
        limits = [CODES_PER_CONVERSATION_PER_HOUR, CODES_PER_CLIENT_PER_HOUR]
        if any(count >= limit for count, limit in zip(hourly, limits, strict=False)):
            first = session.scalar(select(func.min(challenge.created_at)).where(
                mine if hourly[0] >= limits[0] else challenge.client_hash == client_hash,
                challenge.created_at > now - HOUR))
            return ChallengeResult(Start.TOO_MANY, retry_at=(first or now) + HOUR)
        this_number = challenge.account_number == account_number
        if _count(session, this_number, challenge.created_at > now - DAY) >= CODES_PER_ACCOUNT_PER_DAY:
            return ChallengeResult(Start.ACCOUNT_LIMIT, alert=_take_alert(session, account_number, CODES_LIMIT, now))
        if _wrong_codes_today(session, account_number, now) >= WRONG_CODES_PER_ACCOUNT_PER_DAY:
            return ChallengeResult(Start.ACCOUNT_LIMIT,
                                   alert=_take_alert(session, account_number, WRONG_CODES_LIMIT, now))
        if _count(session, this_number, challenge.created_at > now - RESEND_INTERVAL):
            open_code = _count(session, mine, this_number, challenge.used_at.is_(None), challenge.expires_at > now) > 0
            return ChallengeResult(Start.WAIT, open_code=open_code)
        # Only the newest code of a conversation counts.
        session.execute(update(challenge).where(mine, challenge.used_at.is_(None)).values(used_at=now))
        exists = session.scalars(
            select(models.Account.id).where(models.Account.account_number == account_number)).first() is not None
        code, salt = generate(), secrets.token_hex(8)          # made and hashed for unknown numbers too
        session.add(challenge(
            account_number=account_number, conversation_id=conversation_id, channel=channel,
            client_hash=client_hash, code_hash=f"{salt}${_hash_code(code, salt)}", wrong_attempts=0,
            emailed=exists, created_at=now, expires_at=now + CODE_LIFETIME,
        ))
        session.flush()
        alert = None
        if _count(session, this_number, challenge.created_at > now - DAY) >= CODES_PER_ACCOUNT_PER_DAY:
            alert = _take_alert(session, account_number, CODES_LIMIT, now)
        return ChallengeResult(Start.SENT, code=code if exists else None, alert=alert)


def check_code(store: AccountStore, conversation_id: str, code: str, now: datetime) -> CheckResult:
    """Check a code typed in `conversation_id` against the conversation's newest code."""
    with store.session() as session:
        challenge = session.scalars(
            select(models.VerificationChallenge)
            .where(models.VerificationChallenge.conversation_id == conversation_id,
                   models.VerificationChallenge.used_at.is_(None))
            .order_by(models.VerificationChallenge.created_at.desc(), models.VerificationChallenge.id.desc())
            .with_for_update()
        ).first()
        if challenge is None:
            return CheckResult(CodeCheck.NO_CODE)
        number = challenge.account_number
        if challenge.expires_at <= now:
            challenge.used_at = now
            return CheckResult(CodeCheck.EXPIRED, number)
        if _wrong_codes_today(session, number, now) >= WRONG_CODES_PER_ACCOUNT_PER_DAY:
            challenge.used_at = now
            return CheckResult(CodeCheck.ACCOUNT_LIMIT, number)
        if _matches(code, challenge.code_hash) and challenge.emailed:
            challenge.used_at = now
            return CheckResult(CodeCheck.VERIFIED, number)
        challenge.wrong_attempts += 1
        session.flush()
        alert = None
        if _wrong_codes_today(session, number, now) >= WRONG_CODES_PER_ACCOUNT_PER_DAY:
            alert = _take_alert(session, number, WRONG_CODES_LIMIT, now)
        if challenge.wrong_attempts >= WRONG_CODES_PER_CODE:
            challenge.used_at = now
            return CheckResult(CodeCheck.USED_UP, number, alert=alert)
        return CheckResult(CodeCheck.WRONG, number, WRONG_CODES_PER_CODE - challenge.wrong_attempts, alert)


# --- Which account a conversation is verified for ---------------------------------------------------------

def mark_verified(store: AccountStore, conversation_id: str, account_number: str, method: str,
                  now: datetime, channel: str = "") -> None:
    with store.session() as session:
        row = session.get(models.VerifiedConversation, conversation_id)
        if row is None:
            session.add(models.VerifiedConversation(conversation_id=conversation_id, account_number=account_number,
                                                    method=method, channel=channel, verified_at=now))
        else:
            row.account_number, row.method, row.channel, row.verified_at = account_number, method, channel, now


def verified_account(store: AccountStore, conversation_id: str, channel: str, now: datetime,
                     lifetime: timedelta) -> Optional[str]:
    """The account `conversation_id` is verified for on `channel`, if that verification is younger than
    `lifetime`; None otherwise (an expired verification is forgotten)."""
    with store.session() as session:
        row = session.get(models.VerifiedConversation, conversation_id)
        if row is None:
            return None
        if row.verified_at + lifetime <= now:
            session.delete(row)
            return None
        return row.account_number if row.channel == channel else None


def forget_verification(store: AccountStore, conversation_id: str, verified_before: Optional[datetime] = None
                        ) -> bool:
    """Log out (only a verification given before `verified_before`, when set). True when one was forgotten."""
    with store.session() as session:
        if session.get(models.VerifiedConversation, conversation_id) is None:   # the usual case: a read only
            return False
    row = models.VerifiedConversation
    condition = [row.conversation_id == conversation_id]
    if verified_before is not None:
        condition.append(row.verified_at <= verified_before)
    with store.session() as session:
        return bool(session.execute(delete(row).where(*condition)).rowcount)
