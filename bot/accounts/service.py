"""What the Rasa actions and the gateway ask of the account side, in a few calls: who is this conversation
verified as, start and check a one-time code, verify with a website identity token, re-send activation codes, and
compose an account answer. Emails go through the outbox and are delivered right away in a background thread."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import threading
from datetime import date, datetime, timedelta, timezone
from email.utils import parseaddr
from typing import Callable, Mapping, Optional, Tuple

from bot.accounts import outbox, verification
from bot.accounts.answers import ANSWERS, activation_codes_answer, renderer
from bot.accounts.identifiers import mask_account_number
from bot.accounts.store import AccountStore, account_store
from bot.accounts.verification import (
    CODE_LIFETIME,
    CODES_PER_ACCOUNT_PER_DAY,
    WRONG_CODES_PER_ACCOUNT_PER_DAY,
    ChallengeResult,
    CheckResult,
    CodeCheck,
)
from bot.clock import now_utc, today
from bot.settings import Settings, load_settings

logger = logging.getLogger(__name__)

ACTIVATION_CODES_INTERVAL = timedelta(hours=1)   # re-sent activation codes: one email an hour at most
ALERT_LIMITS = {verification.CODES_LIMIT: CODES_PER_ACCOUNT_PER_DAY,
                verification.WRONG_CODES_LIMIT: WRONG_CODES_PER_ACCOUNT_PER_DAY}


class AccountService:
    def __init__(self, settings: Settings, store: Optional[AccountStore] = None,
                 clock: Callable[[], date] = today, now: Callable[[], datetime] = now_utc):
        self.settings = settings
        self.store = store or account_store(settings.database_url, settings.data_encryption_key)
        self.today, self.now = clock, now
        self.verification_lifetime = timedelta(minutes=settings.verification_ttl_minutes)
        self._delivery_lock = threading.Lock()

    @property
    def sender_address(self) -> str:
        """The address the assistant's emails come from (SMTP_FROM without its display name): the chat names it
        whenever it sends a code, and the emails repeat it."""
        return parseaddr(self.settings.smtp_from)[1] or self.settings.smtp_from

    # -- identity ---------------------------------------------------------------------------------------
    def verified_account(self, conversation_id: str, channel: str) -> Optional[str]:
        """The account this conversation is verified for on `channel` (within the verification lifetime)."""
        return verification.verified_account(self.store, conversation_id, channel, self.now(),
                                             self.verification_lifetime)

    def verify_with_token(self, conversation_id: str, channel: str, token: object) -> bool:
        """The website's identity token for this conversation: a valid one, never used by another conversation,
        verifies it; anything else (forged, expired, too long-lived, replayed) leaves it unverified — and logs out
        a conversation the website had signed in before."""
        now = self.now()
        number = verification.verify_identity_token(token, self.settings.identity_token_secret,
                                                    now.replace(tzinfo=timezone.utc).timestamp())
        if number is not None:
            expires = datetime.fromtimestamp(int(str(token).split(".")[2]), timezone.utc).replace(tzinfo=None)
            if verification.bind_identity_token(self.store, str(token), conversation_id, expires, now):
                verification.mark_verified(self.store, conversation_id, number, "token", now, channel)
                return True
            logger.warning("identity token already used by another conversation: refused for %s", conversation_id)
        else:
            logger.info("identity token rejected for conversation %s", conversation_id)
        self.log_out(conversation_id)
        return False

    def client_hash(self, address: Optional[str]) -> Optional[str]:
        """A keyed hash of the client's address, for counting codes per client without keeping the address. An
        IPv6 client counts by its /64 network (one subscriber's line), which it can otherwise roam freely."""
        if not address:
            return None
        try:
            parsed = ipaddress.ip_address(address)
            if parsed.version == 6:
                address = str(ipaddress.ip_network(f"{parsed}/64", strict=False))
        except ValueError:
            pass
        key = hmac.new(self.settings.data_encryption_key.encode(), b"client-address", hashlib.sha256).digest()
        return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()

    def request_code(self, account_number: str, conversation_id: str, channel: str = "",
                     client_address: Optional[str] = None) -> ChallengeResult:
        now = self.now()
        result = verification.start_challenge(self.store, account_number, conversation_id, now, channel,
                                              self.client_hash(client_address))
        # The same queries whether or not the account exists (the reply floor hides what an email adds).
        email = self.store.registered_email(account_number)
        if result.code and email:
            with self.store.session() as session:
                outbox.enqueue(session, "verification_code", email, now, sender=self.sender_address,
                               code=result.code, minutes=int(CODE_LIFETIME.total_seconds() // 60))
        self._alert_owner(account_number, result.alert)
        self.deliver_emails()
        return result

    def check_code(self, conversation_id: str, code: str, channel: str = "") -> CheckResult:
        now = self.now()
        result = verification.check_code(self.store, conversation_id, code, now)
        if result.outcome is CodeCheck.VERIFIED and result.account_number:
            verification.mark_verified(self.store, conversation_id, result.account_number, "code", now, channel)
        if result.alert and result.account_number:
            self._alert_owner(result.account_number, result.alert)
            self.deliver_emails()
        return result

    def _alert_owner(self, account_number: str, reason: Optional[str]) -> None:
        """Email the owner that a verification limit was reached for their account number (if it exists)."""
        if not reason:
            return
        snapshot = self.store.snapshot(account_number)
        if snapshot is None:
            return
        with self.store.session() as session:
            outbox.enqueue(session, reason, snapshot.email, self.now(), sender=self.sender_address,
                           business_name=snapshot.business_name,
                           account=mask_account_number(account_number), count=ALERT_LIMITS[reason])
        logger.warning("verification limit %s reached for account %s; owner alerted", reason,
                       mask_account_number(account_number))

    def log_out(self, conversation_id: str, verified_before: Optional[datetime] = None) -> bool:
        """Forget the conversation's verification (only one given before `verified_before`, when set)."""
        return verification.forget_verification(self.store, conversation_id, verified_before)

    # -- answers ----------------------------------------------------------------------------------------
    def answer(self, intent: str, account_number: str, responses: Mapping, language: str) -> str:
        """The account-aware answer to `intent` for the verified `account_number`."""
        render = renderer(responses, language)
        snapshot = self.store.snapshot(account_number)
        if snapshot is None:      # account removed since verification
            return render("utter_account_unavailable")
        if intent == "lost_activation_code":
            return activation_codes_answer(snapshot, *self.resend_activation_codes(account_number), render,
                                           sender=self.sender_address)
        return ANSWERS[intent](snapshot, self.today(), render, language)

    def resend_activation_codes(self, account_number: str) -> Tuple[int, bool]:
        """Email the active subscriptions' activation codes to the registered email, at most once an hour:
        (how many codes are on record, whether they already went out within the hour and so were not sent)."""
        email, codes = self.store.activation_codes(account_number)
        if not codes:
            return 0, False
        now = self.now()
        snapshot = self.store.snapshot(account_number)
        if snapshot is None:
            return 0, False
        with self.store.session() as session:
            if outbox.sent_since(session, "activation_codes", email, now - ACTIVATION_CODES_INTERVAL):
                return len(codes), True
            outbox.enqueue(session, "activation_codes", email, now, sender=self.sender_address,
                           business_name=snapshot.business_name,
                           codes="\n".join(f"  {plan}: {code}" for plan, code in codes))
        self.deliver_emails()
        return len(codes), False

    def deliver_emails(self) -> None:
        """Deliver the outbox in the background: the chat reply doesn't wait for the mail server."""
        def deliver():
            with self._delivery_lock:
                try:
                    outbox.deliver_pending(self.store, self.settings.smtp_url, self.settings.smtp_from)
                except Exception:  # noqa: BLE001 - a mail problem must not break the conversation
                    logger.exception("email delivery failed; emails stay in the outbox")
        threading.Thread(target=deliver, name="outbox-delivery", daemon=True).start()


_service: Optional[AccountService] = None


def account_service() -> AccountService:
    global _service
    if _service is None:
        _service = AccountService(load_settings())
    return _service
