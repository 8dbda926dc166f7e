"""`make bench-cluster`: the assistant as one and as two replicas of each process (`python -m bot cluster`: HAProxy
in front, on PostgreSQL and Redis), next to one stock `rasa init` server, in one run. Each measures full turns at
10, 50 and 200 concurrent conversations, every conversation sending its messages one after another. For the
assistant a turn is a widget message through HAProxy until the widget has every reply; for the stock bot it is a
POST to its REST channel. Reports turns/s and p50/p99, the machine's cores and load, and writes
var/bench/cluster.json."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

from bot.paths import VAR_DIR
from bot.services import child_environment
from bot.settings import load_settings
from tools.bench import STOCK_MESSAGES, postgres_bench_schema, stock_bot
from tools.bench_gateway import answered_by_the_assistant, conversations, rest_path, widget_path
from tools.bench_measure import RasaEndpoints
from tools.evaluation import load_test_set

CONCURRENCY = (10, 50, 200)
TURNS_PER_CONVERSATION = 3
BENCH_DIR = VAR_DIR / "bench"
PORT_OFFSET = 1000                # beside `make run` and `make cluster`, below the ephemeral ports (32768-)


def healthz(url: str) -> Dict[str, Any]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=3) as response:
            return json.loads(response.read().decode())
    except (OSError, ValueError):
        return {}


def start_cluster(replicas: int, database_url: str, redis_url: str, folder: Path) -> subprocess.Popen:
    env = {**os.environ, "CLUSTER_REPLICAS": str(replicas), "CLUSTER_PORT_OFFSET": str(PORT_OFFSET),
           "CLUSTER_DATABASE_URL": database_url, "CLUSTER_REDIS_URL": redis_url, "CLUSTER_DIR": str(folder),
           "GATEWAY_RATE_LIMIT_PER_MINUTE": "0"}
    folder.mkdir(parents=True, exist_ok=True)
    out = open(folder / "cluster.out", "w")
    return subprocess.Popen([sys.executable, "-m", "bot", "cluster"], env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_until_serving(process: subprocess.Popen, url: str, replicas: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the cluster stopped while starting")
        found = healthz(url)
        services = found.get("services") or {}
        if len(services) == 1 + 3 * replicas and all(s["state"] == "running" for s in services.values()) \
                and found.get("rasa") == "ok":
            return
        time.sleep(0.5)
    raise TimeoutError("the cluster did not come up")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def measure_widget(url: str, rasa: RasaEndpoints, messages: List[str]) -> Dict[str, Dict[str, float]]:
    """Only messages the assistant answers itself: one that hands the conversation over to an agent ends no turn
    (tools/bench_gateway.py, answered_by_the_assistant)."""
    messages = asyncio.run(answered_by_the_assistant(rasa, messages))
    results = {}
    for concurrency in CONCURRENCY:
        lanes = conversations(messages, concurrency * TURNS_PER_CONVERSATION, concurrency)
        print(f"  {concurrency} concurrent conversations ...", flush=True)
        results[f"c{concurrency}"] = asyncio.run(widget_path(url, lanes))
    return results


def measure_stock(messages: List[str]) -> Dict[str, Dict[str, float]]:
    group = stock_bot(5305)
    group.start(child_environment(load_settings({"TRACKER_STORE_URL": "sqlite://"})), BENCH_DIR / "logs-stock")
    try:
        group.wait_ready(timeout=240)
        results = {}
        for concurrency in CONCURRENCY:
            lanes = conversations(messages, concurrency * TURNS_PER_CONVERSATION, concurrency)
            print(f"  {concurrency} concurrent conversations ...", flush=True)
            results[f"c{concurrency}"], _counts = asyncio.run(rest_path(RasaEndpoints("http://127.0.0.1:5305"),
                                                                        lanes))
        return results
    finally:
        group.stop()


def table(report: Dict[str, Any]) -> List[str]:
    lines = ["| system | " + " | ".join(f"{c} conversations: p50 / p99 ms, turns/s" for c in CONCURRENCY) + " |",
             "|---|" + "---|" * len(CONCURRENCY)]
    names = {"replicas_1": "KSOS, 1 of each (widget through HAProxy)",
             "replicas_2": "KSOS, 2 of each (widget through HAProxy)", "stock": "stock `rasa init`, one server (REST)"}
    for key, name in names.items():
        if key in report:
            cells = [f"{r['p50_ms']:.0f} / {r['p99_ms']:.0f}, {r['throughput_per_s']}"
                     for r in (report[key][f"c{c}"] for c in CONCURRENCY)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot bench-cluster")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-stock", action="store_true")
    args = parser.parse_args(argv)
    messages = [example.text for example in load_test_set()]
    report: Dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]},
                              "turns_per_conversation": TURNS_PER_CONVERSATION}
    for replicas in (1, 2):
        print(f"The assistant, {replicas} of each process ...", flush=True)
        database = postgres_bench_schema(args.postgres, f"ksos_bench_cluster_{replicas}")
        process = start_cluster(replicas, database, args.redis, BENCH_DIR / f"cluster-{replicas}")
        url = f"http://127.0.0.1:{8080 + PORT_OFFSET}"
        try:
            wait_until_serving(process, url, replicas)
            rasa = RasaEndpoints(f"http://127.0.0.1:{5005 + PORT_OFFSET}", load_settings().rasa_api_token)
            report[f"replicas_{replicas}"] = measure_widget(url, rasa, messages)
        finally:
            stop(process)
    if not args.no_stock:
        print("A stock `rasa init` server ...", flush=True)
        report["stock"] = measure_stock(STOCK_MESSAGES)
    report["machine"]["load_after"] = os.getloadavg()[0]
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "cluster.json").write_text(json.dumps(report, indent=2))
    print("\n" + "\n".join(table(report)))
    print(f"\n{report['machine']['cpus']} cores; load average {report['machine']['load_before']:.1f} before, "
          f"{report['machine']['load_after']:.1f} after. Report: {BENCH_DIR / 'cluster.json'}")
    return 0
