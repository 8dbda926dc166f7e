"""Per-sender rate limit: at most `limit` messages in any `window` seconds. Beyond it, messages are recorded but
not answered, and the sender gets one polite notice per window."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, Tuple


@dataclass
class SenderRateLimiter:
    limit: int = 20
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _hits: Dict[str, Deque[float]] = field(default_factory=dict)
    _notified_at: Dict[str, float] = field(default_factory=dict)

    def check(self, sender: str) -> Tuple[bool, bool]:
        """(allowed, send_notice) for one more message of `sender`."""
        now = self.clock()
        hits = self._hits.setdefault(sender, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if self.limit <= 0 or len(hits) < self.limit:
            hits.append(now)
            self._forget_idle(now)
            return True, False
        notified = self._notified_at.get(sender)
        if notified is not None and notified > now - self.window:
            return False, False
        self._notified_at[sender] = now
        return False, True

    def _forget_idle(self, now: float) -> None:
        if len(self._hits) < 10_000:
            return
        for sender in [s for s, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]:
            self._hits.pop(sender, None)
            self._notified_at.pop(sender, None)
