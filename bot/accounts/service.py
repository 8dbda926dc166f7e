"""What the Rasa actions ask of the account side, in a few calls: who is this conversation verified as, start
and check a one-time code, re-send activation codes, and compose an account answer. Emails go through the
outbox and are delivered right away in a background thread."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from datetime import date
from typing import Callable, Mapping, Optional

from bot.accounts import outbox, verification
from bot.accounts.answers import ANSWERS, activation_codes_answer, renderer
from bot.accounts.store import AccountStore, account_store
from bot.accounts.verification import CODE_LIFETIME, ChallengeResult, CheckResult, CodeCheck
from bot.clock import now_utc, today
from bot.settings import Settings, load_settings

logger = logging.getLogger(__name__)


class AccountService:
    def __init__(self, settings: Settings, store: Optional[AccountStore] = None,
                 clock: Callable[[], date] = today, now: Callable[[], datetime] = now_utc):
        self.settings = settings
        self.store = store or account_store(settings.database_url)
        self.today, self.now = clock, now
        self._delivery_lock = threading.Lock()

    # -- identity ---------------------------------------------------------------------------------------
    def verified_account(self, conversation_id: str, metadata: Optional[Mapping] = None) -> Optional[str]:
        """The account this conversation is verified for. A valid identity token in the message metadata
        verifies it (and is remembered for the session); a forged or expired token grants nothing."""
        token = verification.token_from_metadata(metadata)
        if token:
            number = verification.verify_identity_token(token, self.settings.identity_token_secret,
                                                        self.now().replace(tzinfo=timezone.utc).timestamp())
            if number is not None:
                verification.mark_verified(self.store, conversation_id, number, "token", self.now())
                return number
            logger.info("identity token rejected for conversation %s", conversation_id)
        return verification.verified_account(self.store, conversation_id)

    def request_code(self, account_number: str, conversation_id: str) -> ChallengeResult:
        now = self.now()
        result = verification.start_challenge(self.store, account_number, conversation_id, now)
        if result.code:
            email = self.store.registered_email(account_number)
            with self.store.session() as session:
                outbox.enqueue(session, "verification_code", email, now, code=result.code,
                               minutes=int(CODE_LIFETIME.total_seconds() // 60))
            self.deliver_emails()
        return result

    def check_code(self, account_number: str, conversation_id: str, code: str) -> CheckResult:
        now = self.now()
        result = verification.check_code(self.store, account_number, conversation_id, code, now)
        if result.outcome is CodeCheck.VERIFIED:
            verification.mark_verified(self.store, conversation_id, account_number, "code", now)
        return result

    def log_out(self, conversation_id: str) -> bool:
        return verification.forget_verification(self.store, conversation_id)

    # -- answers ----------------------------------------------------------------------------------------
    def answer(self, intent: str, account_number: str, responses: Mapping, language: str) -> str:
        """The account-aware answer to `intent` for the verified `account_number`."""
        render = renderer(responses, language)
        snapshot = self.store.snapshot(account_number)
        if snapshot is None:      # account removed since verification
            return render("utter_account_unavailable")
        if intent == "lost_activation_code":
            return activation_codes_answer(snapshot, self.resend_activation_codes(account_number), render)
        return ANSWERS[intent](snapshot, self.today(), render, language)

    def resend_activation_codes(self, account_number: str) -> int:
        """Email the active subscriptions' activation codes to the registered email; how many were sent."""
        email, codes = self.store.activation_codes(account_number)
        if not codes:
            return 0
        snapshot = self.store.snapshot(account_number)
        with self.store.session() as session:
            outbox.enqueue(session, "activation_codes", email, self.now(), business_name=snapshot.business_name,
                           codes="\n".join(f"  {plan}: {code}" for plan, code in codes))
        self.deliver_emails()
        return len(codes)

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
