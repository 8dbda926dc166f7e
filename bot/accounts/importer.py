"""Import accounts from CSV or JSON: every row is validated first; if any row is bad, nothing is imported and
each problem is reported with its line number. The format is in docs/account-import.md."""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

import yaml
from sqlalchemy import select

from bot.accounts import models
from bot.accounts.catalogue import Catalogue, catalogue
from bot.accounts.identifiers import is_account_number
from bot.accounts.rules import add_months, billing_period
from bot.accounts.store import AccountStore

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9][0-9 \-]{6,18}[0-9]$")
CSV_COLUMNS = (
    "account_number", "business_name", "registration_type", "registration_id", "email", "phone", "status",
    "suspended_since", "outstanding_amount", "bill_day", "billing_arrangement", "autopay",
    "plan", "monthly_fee", "start_date", "contract_start", "subscription_status", "activation_code",
)
ACCOUNT_FIELDS = CSV_COLUMNS[:12]
TRUE_WORDS, FALSE_WORDS = {"true", "yes", "1", "y"}, {"false", "no", "0", "n", ""}


class ImportRejected(Exception):
    """Raised with every problem found; nothing was written."""

    def __init__(self, problems: List[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Record:
    """One account as read from the file, with the line it starts on."""

    line: int
    data: dict
    lines: List[int] = field(default_factory=list)   # CSV: every row that contributed


# --- Reading ----------------------------------------------------------------------------------------------

def read_json_records(text: str) -> List[Record]:
    """A JSON array of account objects; each record remembers the line where its object starts."""
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if position >= len(text) or text[position] != "[":
        raise ImportRejected(["line 1: a JSON import file is an array of accounts: [ {...}, {...} ]"])
    position = _skip_space(text, position + 1)
    records: List[Record] = []
    while position < len(text) and text[position] != "]":
        line = text.count("\n", 0, position) + 1
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise ImportRejected([f"line {error.lineno}: invalid JSON: {error.msg}"]) from None
        records.append(Record(line, value, [line]))
        position = _skip_space(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
    if position >= len(text):
        raise ImportRejected([f"line {text.count(chr(10)) + 1}: the JSON array is not closed with ]"])
    return records


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def read_csv_records(text: str) -> List[Record]:
    """One row per subscription; rows with the same account number form one account (their account columns
    must agree). Line 1 is the header."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ImportRejected([f"line 1: missing column(s): {', '.join(missing)}"])
    records: Dict[str, Record] = {}
    problems = []
    for row in reader:
        line = reader.line_num
        row = {k: (v or "").strip() for k, v in row.items() if k}
        account = {k: row[k] for k in ACCOUNT_FIELDS}
        subscription = {
            "plan": row["plan"], "monthly_fee": row["monthly_fee"] or None, "start_date": row["start_date"],
            "contract_start": row["contract_start"], "status": row["subscription_status"] or "active",
            "activation_codes": [row["activation_code"]] if row["activation_code"] else [],
        }
        key = row["account_number"]
        if key in records:
            first = records[key]
            differing = [k for k in ACCOUNT_FIELDS if first.data[k] != account[k]]
            if differing:
                problems.append(f"line {line}: account {key} has different {', '.join(differing)} than on line "
                                f"{first.line}")
            first.data["subscriptions"].append(subscription)
            first.lines.append(line)
        else:
            records[key] = Record(line, {**account, "subscriptions": [subscription]}, [line])
    if problems:
        raise ImportRejected(problems)
    return list(records.values())


def read_records(path: Path) -> List[Record]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        return read_json_records(text)
    if path.suffix.lower() == ".csv":
        return read_csv_records(text)
    raise ImportRejected([f"{path.name}: unsupported file type; use .csv or .json"])


# --- Validation -------------------------------------------------------------------------------------------

@dataclass
class Checker:
    line: int
    problems: List[str]

    def add(self, message: str) -> None:
        self.problems.append(f"line {self.line}: {message}")

    def text(self, data: dict, key: str, max_length: int = 200, required: bool = True) -> Optional[str]:
        value = data.get(key)
        value = "" if value is None else str(value).strip()
        if not value:
            if required:
                self.add(f"{key} is missing")
            return None
        if len(value) > max_length:
            self.add(f"{key} is longer than {max_length} characters")
            return None
        return value

    def day(self, data: dict, key: str, required: bool = True) -> Optional[date]:
        value = data.get(key)
        if value in (None, ""):
            if required:
                self.add(f"{key} is missing")
            return None
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.add(f"{key} {value!r} is not a date (YYYY-MM-DD)")
            return None

    def moment(self, data: dict, key: str) -> Optional[datetime]:
        value = data.get(key)
        try:
            return datetime.fromisoformat(str(value))
        except (TypeError, ValueError):
            self.add(f"{key} {value!r} is not a date-time (YYYY-MM-DDTHH:MM:SS)")
            return None

    def money(self, data: dict, key: str, required: bool = True) -> Optional[Decimal]:
        value = data.get(key)
        if value in (None, ""):
            if required:
                self.add(f"{key} is missing")
            return None
        try:
            amount = Decimal(str(value).replace("RM", "").replace(",", "").strip())
        except InvalidOperation:
            self.add(f"{key} {value!r} is not an amount in RM")
            return None
        if amount < 0 or amount != amount.quantize(Decimal("0.01")) or amount > Decimal("10000000"):
            self.add(f"{key} {value!r} must be between 0 and 10,000,000 with at most 2 decimals")
            return None
        return amount

    def choice(self, data: dict, key: str, choices: Iterable[str], default: Optional[str] = None) -> Optional[str]:
        value = str(data.get(key) or default or "").strip().lower()
        if value not in choices:
            self.add(f"{key} {data.get(key)!r} must be one of {', '.join(choices)}")
            return None
        return value

    def flag(self, data: dict, key: str) -> Optional[bool]:
        value = data.get(key)
        if isinstance(value, bool):
            return value
        word = str(value if value is not None else "").strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        self.add(f"{key} {value!r} must be true or false")
        return None


def validate_record(record: Record, plans: Catalogue, problems: List[str]) -> Optional[dict]:
    """The record as clean values ready to store, or None (with its problems added)."""
    before = len(problems)
    check = Checker(record.line, problems)
    data = record.data
    if not isinstance(data, dict):
        check.add("each account must be a JSON object")
        return None
    number = check.text(data, "account_number", 20)
    if number is not None and not is_account_number(number):
        check.add(f"account_number {number!r} must be exactly 10 digits")
    clean: Dict[str, Any] = {
        "account_number": number,
        "business_name": check.text(data, "business_name", 200),
        "registration_type": check.choice(data, "registration_type", models.REGISTRATION_TYPES),
        "registration_id": check.text(data, "registration_id", 40),
        "email": check.text(data, "email", 254),
        "phone": check.text(data, "phone", 30),
        "status": check.choice(data, "status", models.ACCOUNT_STATUSES, default="active"),
        "suspended_since": check.day(data, "suspended_since", required=False),
        "outstanding_amount": check.money(data, "outstanding_amount", required=False) or Decimal("0.00"),
        "billing_arrangement": check.choice(data, "billing_arrangement", models.BILLING_ARRANGEMENTS,
                                            default="with_unifi_biz"),
        "autopay": check.flag(data, "autopay") if data.get("autopay") not in (None, "") else False,
    }
    if clean["email"] and not EMAIL.match(clean["email"]):
        check.add(f"email {clean['email']!r} is not an email address")
    if clean["phone"] and not PHONE.match(clean["phone"]):
        check.add(f"phone {clean['phone']!r} is not a phone number")
    bill_day: Any = data.get("bill_day") if data.get("bill_day") not in (None, "") else plans.default_bill_day
    if not str(bill_day).isdigit() or not 1 <= int(bill_day) <= 31:
        check.add(f"bill_day {bill_day!r} must be a day of the month (1-31)")
    else:
        clean["bill_day"] = int(bill_day)
    if clean["status"] == "suspended" and clean["suspended_since"] is None:
        check.add("a suspended account needs suspended_since")
    if clean["status"] != "suspended" and clean["suspended_since"] is not None:
        check.add("suspended_since is only for suspended accounts")
    subscriptions = data.get("subscriptions") or []
    if not isinstance(subscriptions, list) or not subscriptions:
        check.add("an account needs at least one subscription")
        subscriptions = []
    clean["subscriptions"] = [_validate_subscription(s, plans, check) for s in subscriptions]
    clean["bills"] = [
        {"bill_date": check.day(b, "bill_date"), "amount": check.money(b, "amount")}
        for b in _list(data, "bills", check)
    ]
    clean["payments"] = [
        {"paid_on": check.day(p, "paid_on"), "amount": check.money(p, "amount"),
         "channel": check.text(p, "channel", 60)}
        for p in _list(data, "payments", check)
    ]
    return clean if len(problems) == before else None


def _list(data: dict, key: str, check: Checker) -> List[dict]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        check.add(f"{key} must be a list of objects")
        return []
    return value


def _validate_subscription(data: dict, plans: Catalogue, check: Checker) -> dict:
    if not isinstance(data, dict):
        check.add("each subscription must be an object")
        return {}
    plan_name = check.text(data, "plan", 20)
    plan = None
    if plan_name:
        try:
            plan = plans.plan(plan_name)
        except KeyError:
            check.add(f"plan {plan_name!r} must be one of {', '.join(plans.plan_names())}")
    fee = check.money(data, "monthly_fee", required=False)
    start = check.day(data, "start_date")
    contract_start = check.day(data, "contract_start", required=False) or start
    if start and contract_start and contract_start < start:
        check.add("contract_start cannot be before start_date")
    codes = data.get("activation_codes") or []
    if not isinstance(codes, list) or not all(isinstance(c, str) and 5 <= len(c.strip()) <= 64 for c in codes):
        check.add("activation_codes must be a list of codes (5-64 characters)")
        codes = []
    devices = []
    for device in _list(data, "devices", check):
        device_type = check.choice(device, "type", plans.device_types)
        devices.append({"type": device_type, "name": check.text(device, "name", 100),
                        "first_connected_at": check.moment(device, "first_connected_at")})
    return {
        "plan": plan.key if plan else None,
        "monthly_fee": fee if fee is not None else (plan.monthly_fee if plan else None),
        "start_date": start,
        "contract_start": contract_start,
        "status": check.choice(data, "status", models.SUBSCRIPTION_STATUSES, default="active"),
        "activation_codes": [c.strip() for c in codes],
        "devices": devices,
    }


def validate_records(records: List[Record], plans: Optional[Catalogue] = None) -> List[dict]:
    plans = plans or catalogue()
    problems: List[str] = []
    clean: List[Dict[str, Any]] = []
    seen: Dict[str, int] = {}
    for record in records:
        value = validate_record(record, plans, problems)
        number = record.data.get("account_number") if isinstance(record.data, dict) else None
        if number in seen:
            problems.append(f"line {record.line}: account_number {number} already appears on line {seen[number]}")
        elif number:
            seen[number] = record.line
        if value is not None:
            clean.append(value)
    if problems:
        raise ImportRejected(problems)
    return clean


# --- Writing ----------------------------------------------------------------------------------------------

def write_accounts(store: AccountStore, accounts: List[dict], issued_on: date,
                   progress: Optional[Callable[[int, int], None]] = None) -> int:
    """Insert or replace the accounts (an account number already stored is replaced) in one transaction."""
    with store.session() as session:
        for index, clean in enumerate(accounts, start=1):
            customer = session.scalars(
                select(models.Customer).where(models.Customer.registration_type == clean["registration_type"],
                                              models.Customer.registration_id == clean["registration_id"])
            ).one_or_none()
            if customer is None:
                customer = models.Customer(registration_type=clean["registration_type"],
                                           registration_id=clean["registration_id"])
                session.add(customer)
            customer.business_name, customer.email, customer.phone = (
                clean["business_name"], clean["email"], clean["phone"])
            existing = session.scalars(
                select(models.Account).where(models.Account.account_number == clean["account_number"])
            ).one_or_none()
            if existing is not None:
                session.delete(existing)
                session.flush()
            account = models.Account(
                account_number=clean["account_number"], customer=customer, status=clean["status"],
                suspended_since=clean["suspended_since"], outstanding_amount=clean["outstanding_amount"],
                bill_day=clean["bill_day"], billing_arrangement=clean["billing_arrangement"],
                autopay=clean["autopay"],
            )
            for s in clean["subscriptions"]:
                account.subscriptions.append(models.Subscription(
                    plan=s["plan"], monthly_fee=s["monthly_fee"], start_date=s["start_date"],
                    contract_start=s["contract_start"], status=s["status"],
                    devices=[models.Device(**d) for d in s["devices"]],
                    activation_codes=[models.ActivationCode(code_encrypted=store.cipher.encrypt(c),
                                                            issued_on=s["start_date"] or issued_on)
                                      for c in s["activation_codes"]],
                ))
            account.bills = [models.Bill(**b) for b in clean["bills"]]
            account.payments = [models.Payment(**p) for p in clean["payments"]]
            session.add(account)
            if index % 500 == 0:
                session.flush()
            if progress:
                progress(index, len(accounts))
    return len(accounts)


def import_file(store: AccountStore, path: Path, issued_on: date,
                progress: Optional[Callable[[int, int], None]] = None) -> int:
    return write_accounts(store, validate_records(read_records(path)), issued_on, progress)


# --- Demo data --------------------------------------------------------------------------------------------

RELATIVE_DATE = re.compile(
    r"^(today|bill(\d\d))(?:([+-]\d+)y)?(?:([+-]\d+)m)?(?:([+-]\d+)d)?(?:T(\d\d:\d\d))?$")


def resolve_relative_dates(value, today: date):
    """Demo data dates are written relative to the day of seeding, so the demo stays meaningful whenever it is
    seeded: 'today-5m-10d'; 'bill22' is the latest 22nd on or before today ('bill22-1m+3d' a month before, plus
    3 days); 'today-1yT09:30' is a date-time."""
    if isinstance(value, dict):
        return {k: resolve_relative_dates(v, today) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_relative_dates(v, today) for v in value]
    if isinstance(value, str):
        match = RELATIVE_DATE.match(value)
        if match:
            _, bill_day, years, months, days, clock = match.groups()
            anchor = billing_period(today, int(bill_day))[0] if bill_day else today
            day = add_months(anchor, int(years or 0) * 12 + int(months or 0)) + timedelta(days=int(days or 0))
            return f"{day.isoformat()}T{clock}:00" if clock else day.isoformat()
    return value


def demo_records(path: Path, today: date) -> List[Record]:
    """The demo accounts of resources/accounts/demo.yml with their dates resolved against `today`."""
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    return [Record(index + 1, resolve_relative_dates(account, today), [index + 1])
            for index, account in enumerate(raw["accounts"])]
