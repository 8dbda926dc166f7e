"""Malaysia time (UTC+8, no daylight saving): the calendar the bills and contracts follow."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

MALAYSIA = timezone(timedelta(hours=8), "MYT")


def now_utc() -> datetime:
    """Naive UTC, as stored in the database."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def today() -> date:
    return datetime.now(MALAYSIA).date()


def to_malaysia(moment_utc: datetime) -> datetime:
    return moment_utc.replace(tzinfo=timezone.utc).astimezone(MALAYSIA)
