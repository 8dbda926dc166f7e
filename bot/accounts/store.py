"""The account store: engine and sessions for DATABASE_URL, and read-only snapshots of one account.

Callers get plain dataclasses (no ORM objects escape a session), so the rules and the replies stay pure.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Iterator, List, Optional, Tuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bot.accounts import models
from bot.accounts.catalogue import catalogue
from bot.accounts.crypto import Cipher
from bot.accounts.rules import Device
from bot.database import make_engine
from bot.schema import SchemaGuard
from bot.settings import MissingSecret


@dataclass(frozen=True)
class SubscriptionSnapshot:
    id: int
    plan_key: str
    plan_name: str
    monthly_fee: Decimal
    start_date: date
    contract_start: date
    status: str
    devices: Tuple[Device, ...]
    activation_codes: int

    @property
    def allowances(self):
        return catalogue().plan(self.plan_key).allowances


@dataclass(frozen=True)
class PaymentSnapshot:
    paid_on: date
    amount: Decimal
    channel: str


@dataclass(frozen=True)
class AccountSnapshot:
    account_number: str
    business_name: str
    email: str
    status: str
    suspended_since: Optional[date]
    outstanding_amount: Decimal
    bill_day: int
    billing_arrangement: str
    autopay: bool
    subscriptions: Tuple[SubscriptionSnapshot, ...]
    last_payment: Optional[PaymentSnapshot]
    last_bill_date: Optional[date]
    last_bill_amount: Optional[Decimal] = field(default=None)

    @property
    def active_subscriptions(self) -> List[SubscriptionSnapshot]:
        return [s for s in self.subscriptions if s.status == "active"]


class AccountStore:
    """One database: the account tables, the verification tables and the email outbox."""

    def __init__(self, url: str, encryption_key: str = ""):
        self.url = url
        self.engine = make_engine(url)
        self._encryption_key = encryption_key
        self._schema = SchemaGuard(self.engine)

    @functools.cached_property
    def cipher(self) -> Cipher:
        """Encrypts and decrypts the activation codes (DATA_ENCRYPTION_KEY)."""
        if not self._encryption_key:
            raise MissingSecret("DATA_ENCRYPTION_KEY not set: the account store keeps activation codes encrypted")
        return Cipher(self._encryption_key)

    def create_schema(self) -> None:
        """Bring the database to the newest migration (once per store)."""
        self._schema.ensure()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        self.create_schema()
        with Session(self.engine, future=True, expire_on_commit=False) as session:
            with session.begin():
                yield session

    def account_count(self) -> int:
        with self.session() as session:
            return session.scalar(select(func.count()).select_from(models.Account))

    def account_numbers(self) -> List[str]:
        with self.session() as session:
            return list(session.scalars(select(models.Account.account_number).order_by(models.Account.account_number)))

    def snapshot(self, account_number: str) -> Optional[AccountSnapshot]:
        """Everything the assistant may tell the verified owner of `account_number`, or None."""
        with self.session() as session:
            account = session.scalars(
                select(models.Account)
                .where(models.Account.account_number == account_number)
                .options(
                    selectinload(models.Account.customer),
                    selectinload(models.Account.subscriptions).selectinload(models.Subscription.devices),
                    selectinload(models.Account.subscriptions).selectinload(models.Subscription.activation_codes),
                    selectinload(models.Account.bills),
                    selectinload(models.Account.payments),
                )
            ).one_or_none()
            if account is None:
                return None
            plans = catalogue()
            subscriptions = tuple(
                SubscriptionSnapshot(
                    id=s.id, plan_key=s.plan, plan_name=plans.plan(s.plan).name,
                    monthly_fee=Decimal(s.monthly_fee), start_date=s.start_date, contract_start=s.contract_start,
                    status=s.status,
                    devices=tuple(Device(d.type, d.name, d.first_connected_at) for d in s.devices),
                    activation_codes=len(s.activation_codes),
                )
                for s in account.subscriptions
            )
            payment = account.payments[-1] if account.payments else None
            bill = account.bills[-1] if account.bills else None
            return AccountSnapshot(
                account_number=account.account_number,
                business_name=account.customer.business_name,
                email=account.customer.email,
                status=account.status,
                suspended_since=account.suspended_since,
                outstanding_amount=Decimal(account.outstanding_amount),
                bill_day=account.bill_day,
                billing_arrangement=account.billing_arrangement,
                autopay=account.autopay,
                subscriptions=subscriptions,
                last_payment=PaymentSnapshot(payment.paid_on, Decimal(payment.amount), payment.channel)
                if payment else None,
                last_bill_date=bill.bill_date if bill else None,
                last_bill_amount=Decimal(bill.amount) if bill else None,
            )

    def activation_codes(self, account_number: str) -> Tuple[str, List[Tuple[str, str]]]:
        """(registered email, [(plan name, code)]) of the active subscriptions: for re-sending by email only."""
        with self.session() as session:
            account = session.scalars(
                select(models.Account).where(models.Account.account_number == account_number)
            ).one_or_none()
            if account is None:
                return "", []
            codes = [
                (catalogue().plan(s.plan).name, self.cipher.decrypt(code.code_encrypted))
                for s in account.subscriptions if s.status == "active"
                for code in s.activation_codes
            ]
            return account.customer.email, codes

    def registered_email(self, account_number: str) -> Optional[str]:
        with self.session() as session:
            return session.scalars(
                select(models.Customer.email)
                .join(models.Account, models.Account.customer_id == models.Customer.id)
                .where(models.Account.account_number == account_number)
            ).one_or_none()


@functools.lru_cache(maxsize=8)
def account_store(url: str, encryption_key: str = "") -> AccountStore:
    """One store (engine and pool) per database URL (and key) and process."""
    return AccountStore(url, encryption_key)
