"""What every benchmark measures with (`make bench`: tools/bench.py, bench_gateway.py, bench_assist.py): the two
ways of asking a bot, latency percentiles, timed concurrent POSTs and resident memory."""
from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import aiohttp

from bot.rasa_runtime.api import CHANNEL_PATH, api_url, channel_headers


@dataclass(frozen=True)
class RasaEndpoints:
    """Where a bot parses and answers: ours with its token (the gateway channel), a stock one without (REST)."""
    base_url: str
    token: str = ""

    @property
    def parse_url(self) -> str:
        return api_url(self.base_url, "/model/parse", self.token) if self.token else f"{self.base_url}/model/parse"

    @property
    def turn_url(self) -> str:
        return self.base_url + (CHANNEL_PATH if self.token else "/webhooks/rest/webhook")

    @property
    def headers(self) -> Dict[str, str]:
        return channel_headers(self.token) if self.token else {}


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (from /proc)."""
    total = 0
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(child) for child in children]
    except OSError:
        pass
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def latency_summary(latencies: Sequence[float], elapsed: float) -> Dict[str, float]:
    """Count, p50 and p99 in ms, and completed turns per second over `elapsed` seconds."""
    return {
        "n": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "throughput_per_s": round(len(latencies) / elapsed, 1),
    }


async def timed_posts(url: str, bodies: List[Dict], concurrency: int,
                      headers: Optional[Dict[str, str]] = None) -> Dict[str, float]:
    """POST `bodies` with `concurrency` clients. All messages of one conversation (same "sender") go through the
    same client, in order, as a customer would send them: never two of one conversation at once."""
    latencies: List[float] = []
    lanes: List[List[Dict]] = [[] for _ in range(concurrency)]
    senders: Dict[str, int] = {}
    for index, body in enumerate(bodies):
        lane = senders.setdefault(body.get("sender", str(index)), len(senders) % concurrency)
        lanes[lane].append(body)

    async def worker(session: aiohttp.ClientSession, lane: List[Dict]) -> None:
        for body in lane:
            started = time.perf_counter()
            async with session.post(url, json=body, headers=headers) as response:
                await response.read()
                response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        # warm-up, not measured
        for body in bodies[:5]:
            async with session.post(url, json=body, headers=headers) as response:
                await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session, lane) for lane in lanes))
        elapsed = time.perf_counter() - started
    return latency_summary(latencies, elapsed)
