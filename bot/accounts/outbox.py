"""The email outbox: messages are written to the `outbox` table in the same transaction as the change that
needs them, then delivered by SMTP when SMTP_URL is set. In development (no SMTP_URL) they are written to
var/logs/outbox.log instead (mode 0600), so one-time codes can be read there.

Once an email is sent its body (which may hold a one-time or activation code) is blanked: the row keeps only
what it was, to whom and when. Logs show addresses masked."""
from __future__ import annotations

import functools
import logging
import os
import smtplib
import ssl
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Dict, Optional
from urllib.parse import parse_qs, unquote, urlparse

import yaml
from sqlalchemy import or_, select, update

from bot.accounts import models
from bot.accounts.identifiers import mask_email
from bot.accounts.store import AccountStore
from bot.clock import now_utc
from bot.paths import RESOURCES_DIR, VAR_DIR

logger = logging.getLogger(__name__)
EMAILS_FILE = RESOURCES_DIR / "accounts" / "emails.yml"
DEVELOPMENT_LOG = VAR_DIR / "logs" / "outbox.log"
MAX_ATTEMPTS = 5


@functools.lru_cache(maxsize=1)
def email_templates() -> Dict[str, Dict[str, str]]:
    with open(EMAILS_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def enqueue(session, kind: str, to_address: str, now: Optional[datetime] = None, *, sender: str,
            **values) -> models.OutboxEmail:
    """Add an email from the template `kind` to the outbox inside the caller's transaction. `sender`: the address
    it will come from (SMTP_FROM's), which the text names so that the customer can check it."""
    template = email_templates()[kind]
    email = models.OutboxEmail(
        kind=kind, to_address=to_address, subject=template["subject"].format(sender=sender, **values),
        body=template["body"].format(sender=sender, **values), created_at=now or now_utc(), attempts=0,
    )
    session.add(email)
    return email


def sent_since(session, kind: str, to_address: str, since: datetime) -> bool:
    """Whether an email of `kind` to `to_address` was queued after `since` (sent or still to be sent)."""
    return session.scalars(select(models.OutboxEmail.id).where(
        models.OutboxEmail.kind == kind, models.OutboxEmail.to_address == to_address,
        models.OutboxEmail.created_at > since).limit(1)).first() is not None


class SmtpTarget:
    """SMTP_URL: smtp://user:password@host:587?starttls=true, or smtps://user:password@host:465."""

    def __init__(self, url: str):
        parsed = urlparse(url)
        if parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:password@host:port or smtps://...")
        self.ssl = parsed.scheme == "smtps"
        self.host = parsed.hostname
        self.port = parsed.port or (465 if self.ssl else 25)
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        query = parse_qs(parsed.query)
        self.starttls = query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")

    def send(self, message: EmailMessage, timeout: float = 20.0) -> None:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if self.ssl:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=timeout)
        with client:
            if self.starttls:
                client.starttls(context=context)
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)


def _message(email: models.OutboxEmail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to_address
    message["Subject"] = email.subject
    message.set_content(email.body)
    return message


def _write_development_log(email: models.OutboxEmail, log_path: Path) -> None:
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a", encoding="utf-8") as handle:
        handle.write(f"--- {email.created_at.isoformat()}Z to {email.to_address}: {email.subject}\n{email.body}\n")


CLAIM_SECONDS = 120


def _claim_pending(store: AccountStore) -> list:
    """Mark the emails this sender will deliver, in a short transaction: a second sender (the action server and
    the retry loop of `python -m bot serve`) skips them, so no email goes out twice."""
    now = now_utc()
    claimed = []
    with store.session() as session:
        candidates = session.scalars(
            select(models.OutboxEmail.id)
            .where(models.OutboxEmail.sent_at.is_(None), models.OutboxEmail.attempts < MAX_ATTEMPTS,
                   or_(models.OutboxEmail.claimed_until.is_(None), models.OutboxEmail.claimed_until < now))
            .order_by(models.OutboxEmail.id)
        ).all()
        for email_id in candidates:
            result = session.execute(
                update(models.OutboxEmail)
                .where(models.OutboxEmail.id == email_id, models.OutboxEmail.sent_at.is_(None),
                       or_(models.OutboxEmail.claimed_until.is_(None), models.OutboxEmail.claimed_until < now))
                .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                        attempts=models.OutboxEmail.attempts + 1)
            )
            if result.rowcount == 1:
                claimed.append(session.get(models.OutboxEmail, email_id))
    return claimed


def deliver_pending(store: AccountStore, smtp_url: str, sender: str,
                    log_path: Path = DEVELOPMENT_LOG) -> int:
    """Deliver every email not yet sent (oldest first). The mail server is contacted outside any database
    transaction; failures stay queued with their error, up to MAX_ATTEMPTS tries. Returns how many were sent."""
    target = SmtpTarget(smtp_url) if smtp_url else None
    delivered = 0
    for email in _claim_pending(store):
        error_text = None
        try:
            if target is None:
                _write_development_log(email, log_path)
                logger.info("SMTP_URL not set: email %s to %s written to %s", email.id, mask_email(email.to_address),
                            log_path)
            else:
                target.send(_message(email, sender))
        except (OSError, smtplib.SMTPException) as error:
            error_text = f"{type(error).__name__}: {error}"[:500]
            logger.warning("email %s to %s not sent (try %s): %s", email.id, mask_email(email.to_address),
                           email.attempts, error_text)
        sent: Dict[str, Any] = ({"last_error": error_text} if error_text
                                else {"last_error": None, "sent_at": now_utc(), "body": ""})
        with store.session() as session:
            session.execute(
                update(models.OutboxEmail).where(models.OutboxEmail.id == email.id).values(claimed_until=None, **sent)
            )
        delivered += error_text is None
    return delivered
