"""Tables of the account store (SQLAlchemy 1.4, declarative, used with the 2.0-style API)."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import relationship
from sqlalchemy.types import TypeDecorator

from bot.database import Base  # the one metadata of every table of ours

ACCOUNT_STATUSES = ("active", "suspended", "terminated")
SUBSCRIPTION_STATUSES = ("active", "terminated")
BILLING_ARRANGEMENTS = ("with_unifi_biz", "separate")   # FAQ 26–28, 31
REGISTRATION_TYPES = ("brn", "nric", "passport")         # FAQ 4


class Money(TypeDecorator):
    """Ringgit as a Decimal in Python, whole sen in the database: exact on SQLite and PostgreSQL alike."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else int((Decimal(str(value)) * 100).to_integral_value())

    def process_result_value(self, value, dialect):
        return None if value is None else (Decimal(value) / 100).quantize(Decimal("0.01"))


MONEY = Money()


class Customer(Base):
    """The business: SSM-registered (BRN) or registered with a director's NRIC/passport (FAQ 4)."""

    __tablename__ = "customers"
    id = Column(Integer, primary_key=True)
    business_name = Column(String(200), nullable=False)
    registration_type = Column(String(10), nullable=False)
    registration_id = Column(String(40), nullable=False)
    email = Column(String(254), nullable=False)
    phone = Column(String(30), nullable=False)
    accounts = relationship("Account", back_populates="customer")
    __table_args__ = (
        UniqueConstraint("registration_type", "registration_id"),
        CheckConstraint(f"registration_type IN {REGISTRATION_TYPES}", name="registration_type_known"),
    )


class Account(Base):
    """A Unifi business account: what the bill, the status and the outstanding amount belong to."""

    __tablename__ = "accounts"
    id = Column(Integer, primary_key=True)
    account_number = Column(String(20), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    status = Column(String(12), nullable=False, default="active")
    suspended_since = Column(Date)
    outstanding_amount = Column(MONEY, nullable=False, default=0)
    bill_day = Column(Integer, nullable=False, default=22)
    billing_arrangement = Column(String(20), nullable=False, default="with_unifi_biz")
    autopay = Column(Boolean, nullable=False, default=False)
    customer = relationship("Customer", back_populates="accounts")
    subscriptions = relationship("Subscription", back_populates="account", order_by="Subscription.id",
                                 cascade="all, delete-orphan")
    bills = relationship("Bill", back_populates="account", order_by="Bill.bill_date", cascade="all, delete-orphan")
    payments = relationship("Payment", back_populates="account", order_by="Payment.paid_on",
                            cascade="all, delete-orphan")
    __table_args__ = (
        CheckConstraint(f"status IN {ACCOUNT_STATUSES}", name="account_status_known"),
        CheckConstraint(f"billing_arrangement IN {BILLING_ARRANGEMENTS}", name="billing_arrangement_known"),
        CheckConstraint("bill_day BETWEEN 1 AND 31", name="bill_day_in_month"),
        CheckConstraint("outstanding_amount >= 0", name="outstanding_not_negative"),
    )


class Subscription(Base):
    """One KSOS plan on an account. The contract starts again on every upgrade/downgrade (FAQ 20)."""

    __tablename__ = "subscriptions"
    id = Column(Integer, primary_key=True)
    account_id = Column(Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False)
    plan = Column(String(20), nullable=False)
    monthly_fee = Column(MONEY, nullable=False)
    start_date = Column(Date, nullable=False)
    contract_start = Column(Date, nullable=False)
    status = Column(String(12), nullable=False, default="active")
    account = relationship("Account", back_populates="subscriptions")
    devices = relationship("Device", back_populates="subscription", order_by="Device.first_connected_at",
                           cascade="all, delete-orphan")
    activation_codes = relationship("ActivationCode", back_populates="subscription", cascade="all, delete-orphan")
    __table_args__ = (
        CheckConstraint(f"status IN {SUBSCRIPTION_STATUSES}", name="subscription_status_known"),
        CheckConstraint("monthly_fee >= 0", name="fee_not_negative"),
    )


class Device(Base):
    """A device connected to the KSOS portal under a subscription's licence."""

    __tablename__ = "devices"
    id = Column(Integer, primary_key=True)
    subscription_id = Column(Integer, ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False)
    type = Column(String(20), nullable=False)
    name = Column(String(100), nullable=False)
    first_connected_at = Column(DateTime, nullable=False)
    subscription = relationship("Subscription", back_populates="devices")


class ActivationCode(Base):
    """Kept so it can be re-sent to the registered email; never shown in a chat. Encrypted at rest with
    DATA_ENCRYPTION_KEY (bot/accounts/crypto.py): the column holds a Fernet token, never the code."""

    __tablename__ = "activation_codes"
    id = Column(Integer, primary_key=True)
    subscription_id = Column(Integer, ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False)
    code_encrypted = Column(Text, nullable=False)
    issued_on = Column(Date, nullable=False)
    subscription = relationship("Subscription", back_populates="activation_codes")


class Bill(Base):
    __tablename__ = "bills"
    id = Column(Integer, primary_key=True)
    account_id = Column(Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False)
    bill_date = Column(Date, nullable=False)
    amount = Column(MONEY, nullable=False)
    account = relationship("Account", back_populates="bills")


class Payment(Base):
    __tablename__ = "payments"
    id = Column(Integer, primary_key=True)
    account_id = Column(Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False)
    paid_on = Column(Date, nullable=False)
    amount = Column(MONEY, nullable=False)
    channel = Column(String(60), nullable=False)
    account = relationship("Account", back_populates="payments")


class VerificationChallenge(Base):
    """A one-time code asked for an account number in one conversation. Kept for any well-formed number, existing
    or not (for an unknown one with a code nobody receives), so that answers, limits and timing never reveal
    whether an account exists. Only a salted hash of the code is stored; the client address only as a keyed hash.
    The rows also count the limits (codes per conversation, client and account number; wrong codes)."""

    __tablename__ = "verification_challenges"
    id = Column(Integer, primary_key=True)
    account_number = Column(String(20), nullable=False, index=True)
    conversation_id = Column(String(255), nullable=False, index=True)
    channel = Column(String(20), nullable=False, default="")
    client_hash = Column(String(64), index=True)
    code_hash = Column(String(100), nullable=False)     # "salt$sha256"
    emailed = Column(Boolean, nullable=False)           # False: no such account, the code went nowhere
    wrong_attempts = Column(Integer, nullable=False, default=0)
    created_at = Column(DateTime, nullable=False, index=True)
    expires_at = Column(DateTime, nullable=False)
    used_at = Column(DateTime)                          # verified, used up, expired or replaced


class VerificationAlert(Base):
    """An email to an account's owner that someone reached a verification limit for their account number (at
    most one per reason and day). Recorded for unknown numbers too, like the challenges."""

    __tablename__ = "verification_alerts"
    id = Column(Integer, primary_key=True)
    account_number = Column(String(20), nullable=False, index=True)
    reason = Column(String(20), nullable=False)         # codes_limit | wrong_codes_limit
    created_at = Column(DateTime, nullable=False)


class IdentityTokenUse(Base):
    """Which conversation a website identity token verified: the same token from another one is refused."""

    __tablename__ = "identity_token_uses"
    token_hash = Column(String(64), primary_key=True)   # SHA-256 of the token
    conversation_id = Column(String(255), nullable=False)
    first_used_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False)


class OutboxEmail(Base):
    """Emails to send (one-time codes, re-sent activation codes). Delivered by SMTP when SMTP_URL is set."""

    __tablename__ = "outbox"
    id = Column(Integer, primary_key=True)
    kind = Column(String(30), nullable=False)
    to_address = Column(String(254), nullable=False)
    subject = Column(String(200), nullable=False)
    body = Column(Text, nullable=False)
    created_at = Column(DateTime, nullable=False)
    sent_at = Column(DateTime)
    attempts = Column(Integer, nullable=False, default=0)
    claimed_until = Column(DateTime)       # a sender is working on it until then (no double sending)
    last_error = Column(Text)


class VerifiedConversation(Base):
    """A conversation whose customer proved who they are, on one channel. Kept server-side (not in a slot a client
    could set); valid for VERIFICATION_TTL_MINUTES after verified_at, deleted on "log out", when the conversation
    session ends and when the website withdraws its identity token."""

    __tablename__ = "verified_conversations"
    conversation_id = Column(String(255), primary_key=True)
    account_number = Column(String(20), nullable=False)
    method = Column(String(10), nullable=False)        # 'token' or 'code'
    channel = Column(String(20), nullable=False, default="")
    verified_at = Column(DateTime, nullable=False)
