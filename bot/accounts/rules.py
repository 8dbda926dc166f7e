"""Business rules of the FAQ applied to one customer's account. Plain functions of dates and amounts: no I/O.

Where the FAQ states a rule but not how to compute it (a started contract month, proration, which devices a
downgrade keeps), the computation is the operator policy of resources/accounts/policy.yml (bot/accounts/policy.py),
passed in by name; answers present such figures as estimates.

Dates are calendar dates (Malaysia time); amounts are Decimal ringgit rounded to the sen.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

SEN = Decimal("0.01")


def to_ringgit(amount) -> Decimal:
    return Decimal(str(amount)).quantize(SEN, rounding=ROUND_HALF_UP)


def add_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier); a day the month lacks becomes its last day (31 Jan + 1 = 28/29 Feb)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def contract_end(contract_start: date, months: int) -> date:
    """The day the minimum contract is over (FAQ 20: 12 months from the start or from the last plan change)."""
    return add_months(contract_start, months)


def months_elapsed(start: date, on: date) -> int:
    """Whole months from `start` to `on` (0 before or on the start day)."""
    if on <= start:
        return 0
    months = (on.year - start.year) * 12 + (on.month - start.month)
    while months > 0 and add_months(start, months) > on:
        months -= 1
    return months


def remaining_contract_months(contract_start: date, on: date, months: int, part_month: str = "round_up") -> int:
    """Months of the minimum contract left on `on` (FAQ 33's "remaining contract period"). How a started month
    counts is operator policy: `round_up` counts it as a full month, `whole_months` counts only whole months left.

    Terminating on the start day leaves all 12; on or after the contract end, none (FAQ 32).
    """
    if on >= contract_end(contract_start, months):
        return 0
    elapsed = months_elapsed(contract_start, on)
    if part_month == "round_up":
        return months - elapsed
    if part_month == "whole_months":
        started = add_months(contract_start, elapsed) < on
        return months - elapsed - (1 if started else 0)
    raise ValueError(f"unknown part-month rule {part_month!r}")


@dataclass(frozen=True)
class Penalty:
    contract_end: date
    months_remaining: int
    monthly_fee: Decimal
    amount: Decimal

    @property
    def applies(self) -> bool:
        return self.amount > 0


def termination_penalty(monthly_fee, contract_start: date, on: date, months: int,
                        part_month: str = "round_up") -> Penalty:
    """Early-termination penalty of one subscription terminated on `on`: the full monthly subscription fee times
    the remaining contract months (FAQ 33; a started month counted by the `part_month` policy); nothing once the
    minimum contract is over (FAQ 32)."""
    fee = to_ringgit(monthly_fee)
    remaining = remaining_contract_months(contract_start, on, months, part_month)
    return Penalty(contract_end(contract_start, months), remaining, fee, to_ringgit(fee * remaining))


def bill_date_in_month(year: int, month: int, bill_day: int) -> date:
    return date(year, month, min(bill_day, calendar.monthrange(year, month)[1]))


def billing_period(on: date, bill_day: int) -> Tuple[date, date]:
    """The billing period containing `on`: [the last bill date on or before it, the next bill date)."""
    this_month = bill_date_in_month(on.year, on.month, bill_day)
    if this_month <= on:
        start = this_month
    else:
        previous = add_months(date(on.year, on.month, 1), -1)
        start = bill_date_in_month(previous.year, previous.month, bill_day)
    following = add_months(date(start.year, start.month, 1), 1)
    return start, bill_date_in_month(following.year, following.month, bill_day)


def next_bill_date(today: date, bill_day: int) -> date:
    """The next bill date from today (today itself when today is the bill day)."""
    this_month = bill_date_in_month(today.year, today.month, bill_day)
    if this_month >= today:
        return this_month
    following = add_months(date(today.year, today.month, 1), 1)
    return bill_date_in_month(following.year, following.month, bill_day)


@dataclass(frozen=True)
class Proration:
    period_start: date
    period_end: date
    days_charged: int
    days_in_period: int
    amount: Decimal


def prorated_charge(monthly_fee, start: date, bill_day: int) -> Proration:
    """Charge for a subscription starting part-way through a billing period. FAQ 30 says only that it is
    prorated; by the operator policy (`by_days`, the one implemented) it is the monthly fee times the days from the
    start day (inclusive) to the next bill date (exclusive), over the days of that period."""
    period_start, period_end = billing_period(start, bill_day)
    days_in_period = (period_end - period_start).days
    days_charged = (period_end - start).days
    amount = to_ringgit(Decimal(str(monthly_fee)) * days_charged / days_in_period)
    return Proration(period_start, period_end, days_charged, days_in_period, amount)


@dataclass(frozen=True)
class Device:
    type: str
    name: str
    first_connected_at: object  # datetime or date: only the order matters


@dataclass(frozen=True)
class DeviceImpact:
    type: str
    allowance: int
    kept: Tuple[Device, ...]
    losing_protection: Tuple[Device, ...]


def downgrade_impact(devices: Iterable[Device], allowances: Dict[str, int],
                     device_types: Sequence[str]) -> List[DeviceImpact]:
    """Which devices keep protection after a change to a plan with `allowances`. FAQ 19 (Standard → Starter):
    the devices first connected to the KSOS portal remain; counting them per device type, and applying the same
    rule to any other downgrade, is the operator policy (`first_connected_per_type`). The others lose premium
    protection."""
    impacts = []
    devices = list(devices)
    for device_type in device_types:
        ordered = sorted((d for d in devices if d.type == device_type), key=lambda d: (d.first_connected_at, d.name))
        allowance = int(allowances.get(device_type, 0))
        impacts.append(DeviceImpact(device_type, allowance, tuple(ordered[:allowance]), tuple(ordered[allowance:])))
    return impacts


def devices_losing_protection(impacts: Iterable[DeviceImpact]) -> List[Device]:
    return [device for impact in impacts for device in impact.losing_protection]


@dataclass(frozen=True)
class PlanChangeCheck:
    allowed: bool
    reason: Optional[str]          # None, 'suspended' or 'terminated'
    amount_to_settle: Decimal


def plan_change_check(status: str, outstanding_amount) -> PlanChangeCheck:
    """FAQ 18: no upgrade or downgrade while the account is suspended; settle the outstanding charges first."""
    owed = to_ringgit(outstanding_amount or 0)
    if status == "suspended":
        return PlanChangeCheck(False, "suspended", owed)
    if status == "terminated":
        return PlanChangeCheck(False, "terminated", owed)
    return PlanChangeCheck(True, None, owed)
