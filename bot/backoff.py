"""Exponential backoff, the one formula behind every wait that grows: the inbox's retries (bot/gateway/worker.py),
a platform POST's retries (bot/gateway/adapter.py), the console's login delays (bot/gateway/agents.py) and
the supervisor's restarts (bot/services.py)."""
from __future__ import annotations

import random


def exponential_delay(step: int, base: float, cap: float = float("inf"), jitter: float = 0.0) -> float:
    """base * 2^step seconds, at most `cap`, spread by ±`jitter` (0.1: ±10 %) so that retries do not align."""
    delay = min(cap, base * 2 ** max(0, step))
    return delay * random.uniform(1 - jitter, 1 + jitter) if jitter else delay
