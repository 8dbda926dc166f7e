"""Sliding windows in the shared database (gateway_window_events), so that every gateway replica counts the same
events: the per-sender rate limit, the widget's per-address limits and the console's login throttle. The calls
block: the gateway runs them in the store's thread pool (bot/gateway/ratelimit.py, counted)."""
from __future__ import annotations

import time
from typing import Callable, List, Optional

from sqlalchemy import delete, select

from bot.gateway.models import WindowEvent
from bot.gateway.ratelimit import SenderRateLimiter, SlidingWindow, Window
from bot.gateway.store import GatewayStore


class DatabaseWindow:
    """A sliding window whose events are rows of gateway_window_events, shared by every replica; `prefix` keeps
    one limiter's keys apart from another's."""
    blocking = True

    def __init__(self, store: GatewayStore, window: float, prefix: str, clock: Callable[[], float] = time.time):
        self.store, self.window, self.prefix, self.clock = store, window, prefix, clock
        self._swept = 0.0

    def _now(self, now: Optional[float]) -> float:
        return self.clock() if now is None else now

    def recent(self, key: str, now: Optional[float] = None) -> List[float]:
        now = self._now(now)
        with self.store.session() as session:
            return list(session.scalars(select(WindowEvent.at).where(
                WindowEvent.key == self.prefix + key, WindowEvent.at > now - self.window).order_by(WindowEvent.at)))

    def add(self, key: str, now: Optional[float] = None) -> float:
        now = self._now(now)
        with self.store.session() as session:
            session.add(WindowEvent(key=self.prefix + key, at=now))
        return now

    def remove(self, key: str, moment: float) -> None:
        with self.store.session() as session:
            row = session.scalars(select(WindowEvent).where(WindowEvent.key == self.prefix + key,
                                                            WindowEvent.at == moment).limit(1)).first()
            if row is not None:
                session.delete(row)

    def clear(self, key: str) -> None:
        with self.store.session() as session:
            session.execute(delete(WindowEvent).where(WindowEvent.key == self.prefix + key))

    def forget_idle(self, now: Optional[float] = None) -> None:
        """Delete this limiter's events older than its window (at most once a minute per process)."""
        now = self._now(now)
        if now - self._swept < 60:
            return
        self._swept = now
        with self.store.session() as session:
            session.execute(delete(WindowEvent).where(WindowEvent.key.startswith(self.prefix, autoescape=True),
                                                      WindowEvent.at <= now - self.window)
                            .execution_options(synchronize_session=False))


def window_for(store: GatewayStore, window: float, prefix: str) -> Window:
    """Shared through the database when replicas can share one (PostgreSQL), in memory otherwise (SQLite)."""
    return DatabaseWindow(store, window, prefix) if store.postgres else SlidingWindow(window)


def shared_rate_limiter(store: GatewayStore, name: str, limit: int, window: float) -> SenderRateLimiter:
    """A rate limit counted with the other replicas (PostgreSQL), or in memory (SQLite)."""
    return SenderRateLimiter(limit=limit, window=window, hits=window_for(store, window, f"{name}:"),
                             notices=window_for(store, window, f"{name}-notice:"))
