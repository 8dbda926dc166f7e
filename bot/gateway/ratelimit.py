"""Counting events in a sliding window, and the per-sender rate limit built on it: at most `limit` messages in any
`window` seconds. Beyond it, messages are recorded but not answered, and the sender gets one polite notice per
window. The console's login throttle (bot/gateway/agents.py) counts failures the same way.

Two kinds of window: SlidingWindow in this process's memory (one gateway process: SQLite, the embedded default),
and DatabaseWindow (bot/gateway/shared_windows.py) in the shared PostgreSQL database, so that several gateway
replicas count together (a sender or a password guesser who lands on another replica is counted there too).
DatabaseWindow's calls block: run them in the store's thread pool. Two replicas checking the same key at the
same instant may each let one more through; the counts stay shared."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Optional, Protocol, Sequence, Tuple, TypeVar

from bot.gateway.calls import DatabaseCalls

T = TypeVar("T")


class Window(Protocol):
    """What the limiters need of a sliding window of event times (seconds since the epoch)."""
    window: float
    blocking: bool            # its calls wait for the database: run them in the store's thread pool

    def recent(self, key: str, now: Optional[float] = None) -> Sequence[float]: ...
    def add(self, key: str, now: Optional[float] = None) -> float: ...
    def remove(self, key: str, moment: float) -> None: ...
    def clear(self, key: str) -> None: ...
    def forget_idle(self, now: Optional[float] = None) -> None: ...


class SlidingWindow:
    """For each key, the times of its events in the last `window` seconds (older ones are dropped as they are
    looked at; a key with none left is forgotten)."""
    blocking = False

    def __init__(self, window: float, clock: Callable[[], float] = time.time):
        self.window, self.clock = window, clock
        self._events: Dict[str, Deque[float]] = {}

    def _now(self, now: Optional[float]) -> float:
        return self.clock() if now is None else now

    def recent(self, key: str, now: Optional[float] = None) -> Deque[float]:
        """The key's event times in the window, oldest first (a copy-free view: do not change it)."""
        now = self._now(now)
        events = self._events.get(key)
        if events is None:
            return deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
        return events

    def add(self, key: str, now: Optional[float] = None) -> float:
        now = self._now(now)
        self.recent(key, now)
        self._events.setdefault(key, deque()).append(now)
        return now

    def remove(self, key: str, moment: float) -> None:
        """Take back one event (the one at `moment`), if it is still counted."""
        events = self._events.get(key)
        if events is not None and moment in events:
            events.remove(moment)
            if not events:
                del self._events[key]

    def clear(self, key: str) -> None:
        self._events.pop(key, None)

    def forget_idle(self, now: Optional[float] = None, above: int = 10_000) -> None:
        """Drop the keys with nothing in the window, once more than `above` keys are held."""
        if len(self._events) <= above:
            return
        now = self._now(now)
        for key in [k for k, events in self._events.items() if not events or events[-1] <= now - self.window]:
            del self._events[key]

    def __len__(self) -> int:
        return len(self._events)


@dataclass
class SenderRateLimiter:
    """`check` blocks when its windows are in the database: the gateway calls it in the store's thread pool."""
    limit: int = 20
    window: float = 60.0
    clock: Callable[[], float] = time.time
    hits: Optional[Window] = None          # default: in this process's memory
    notices: Optional[Window] = None       # when the sender was last told (one notice per window)
    _hits: Window = field(init=False)
    _notices: Window = field(init=False)

    def __post_init__(self) -> None:
        self._hits = self.hits or SlidingWindow(self.window, self.clock)
        self._notices = self.notices or SlidingWindow(self.window, self.clock)

    @property
    def shared(self) -> bool:
        return self._hits.blocking

    def check(self, sender: str) -> Tuple[bool, bool]:
        """(allowed, send_notice) for one more message of `sender`."""
        if self.limit <= 0:                   # no limit: nothing to count (no write per message)
            return True, False
        now = self.clock()
        if len(self._hits.recent(sender, now)) < self.limit:
            self._hits.add(sender, now)
            self._hits.forget_idle(now)
            self._notices.forget_idle(now)
            return True, False
        if self._notices.recent(sender, now):
            return False, False
        self._notices.add(sender, now)
        return False, True


async def counted(db: DatabaseCalls, shared: bool, function: Callable[..., T], *args: Any) -> T:
    """A limiter's call: in the store's thread pool when its counts are in the database, right here otherwise
    (memory: no blocking, and no two threads on one window)."""
    return await db(function, *args) if shared else function(*args)
