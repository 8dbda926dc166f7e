"""Counting events in a sliding window (SlidingWindow), and the per-sender rate limit built on it: at most `limit`
messages in any `window` seconds. Beyond it, messages are recorded but not answered, and the sender gets one
polite notice per window. The console's login throttle (bot/gateway/agents.py) counts failures the same way."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, Optional, Tuple


class SlidingWindow:
    """For each key, the times of its events in the last `window` seconds (older ones are dropped as they are
    looked at; a key with none left is forgotten)."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic):
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
    limit: int = 20
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _hits: SlidingWindow = field(init=False)
    _notified_at: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._hits = SlidingWindow(self.window, self.clock)

    def check(self, sender: str) -> Tuple[bool, bool]:
        """(allowed, send_notice) for one more message of `sender`."""
        now = self.clock()
        if self.limit <= 0 or len(self._hits.recent(sender, now)) < self.limit:
            self._hits.add(sender, now)
            self._hits.forget_idle(now)
            if len(self._notified_at) > 10_000:
                self._notified_at = {s: at for s, at in self._notified_at.items() if at > now - self.window}
            return True, False
        notified = self._notified_at.get(sender)
        if notified is not None and notified > now - self.window:
            return False, False
        self._notified_at[sender] = now
        return False, True
