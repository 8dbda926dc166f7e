"""Blocking calls (the SQLAlchemy stores) run in a thread pool, off the gateway's event loop."""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class DatabaseCalls:
    """`await db(store.method, *args)`: the call in one of `workers` threads."""

    def __init__(self, workers: int = 8):
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gateway-db")

    async def __call__(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(function, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=False)
