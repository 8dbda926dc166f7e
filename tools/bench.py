"""`make bench`: latency and throughput of our assistant next to a stock `rasa init` bot on this machine.

Measures, for each bot: time until ready, `/model/parse` latency, one turn (the full message -> NLU -> policies
-> actions -> response path) sequentially and with concurrent conversations, and resident memory of its
processes. Ours is asked as the gateway asks it: the private channel and the HTTP API with the token; the stock
bot through Rasa's REST channel, as `rasa init` makes it. Our model's last training time comes from
var/train_time.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from bot.paths import VAR_DIR
from bot.services import Service, ServiceGroup, assistant_services, child_environment, rasa_command
from bot.settings import load_settings
from tools.bench_measure import RasaEndpoints, rss_mb, timed_posts
from tools.evaluation import load_test_set

BENCH_DIR = VAR_DIR / "bench"
STOCK_DIR = BENCH_DIR / "stock-rasa-init"
STOCK_MESSAGES = ["hello", "I am sad", "great", "no", "bye", "are you a bot?", "yes", "very good"]


def measure(bot: RasaEndpoints, messages: List[str], requests: int) -> Dict[str, Dict[str, float]]:
    texts = [messages[i % len(messages)] for i in range(requests)]
    parse = asyncio.run(timed_posts(bot.parse_url, [{"text": t} for t in texts], 1))
    results = {"parse": parse}
    for concurrency in (1, 10):
        # each conversation (sender) sends its messages in order, like a customer
        bodies = [{"sender": f"bench-{concurrency}-{i % max(concurrency, 1)}-{i // 50}", "message": t}
                  for i, t in enumerate(texts)]
        results[f"rest_turn_c{concurrency}"] = asyncio.run(
            timed_posts(bot.turn_url, bodies, concurrency, bot.headers)
        )
    return results


def start_and_measure(group: ServiceGroup, env: Dict[str, str], bot: RasaEndpoints, messages: List[str],
                      requests: int, log_dir: Path, with_assist: bool = False) -> Dict:
    started = time.monotonic()
    group.start(env, log_dir=log_dir)
    try:
        group.wait_ready(timeout=300)
        ready_s = round(time.monotonic() - started, 1)
        results: Dict[str, Any] = dict(measure(bot, messages, requests))
        if with_assist:
            from tools.bench_assist import measure_assist

            results["assist"] = measure_assist(bot.parse_url)
        results["ready_s"] = ready_s
        results["rss_mb"] = round(sum(rss_mb(s.process.pid) for s in group.services if s.process))
        return results
    finally:
        group.stop()


def stock_bot(port: int) -> ServiceGroup:
    """A stock `rasa init` project (moodbot, default config), created and trained once under var/bench/."""
    if not (STOCK_DIR / "models").exists() or not any((STOCK_DIR / "models").glob("*.tar.gz")):
        STOCK_DIR.mkdir(parents=True, exist_ok=True)
        print("Creating and training a stock `rasa init` bot (once) ...", flush=True)
        subprocess.run(rasa_command("init", "--no-prompt", "--init-dir", str(STOCK_DIR)), cwd=STOCK_DIR,
                       env=child_environment(load_settings()), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    model = sorted((STOCK_DIR / "models").glob("*.tar.gz"))[-1]
    # Its own credentials and endpoints (REST channel, in-memory tracker), not the repository's (our channel).
    argv = rasa_command("run", "--enable-api", "--interface", "127.0.0.1", "--port", str(port), "--model", str(model),
                        "--credentials", str(STOCK_DIR / "credentials.yml"),
                        "--endpoints", str(STOCK_DIR / "endpoints.yml"))
    return ServiceGroup([Service("stock-rasa", argv, f"http://127.0.0.1:{port}/status")])


def format_row(name: str, r: Dict) -> str:
    c1, c10 = r["rest_turn_c1"], r["rest_turn_c10"]
    return (f"| {name} | {r['parse']['p50_ms']} / {r['parse']['p99_ms']} | "
            f"{c1['p50_ms']} / {c1['p99_ms']} | {c1['throughput_per_s']} | "
            f"{c10['p50_ms']} / {c10['p99_ms']} | {c10['throughput_per_s']} | "
            f"{r['ready_s']} | {r['rss_mb']} |")


def postgres_bench_schema(url: str, schema: str = "ksos_bench") -> str:
    """A fresh schema for the tracker and account tables; the URL that selects it."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, future=True)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot bench")
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement")
    parser.add_argument("--no-stock", action="store_true", help="skip the stock `rasa init` comparison")
    parser.add_argument("--no-gateway", action="store_true", help="skip the channel gateway measurement")
    parser.add_argument("--postgres", default="", help="also measure with the tracker and account stores on this "
                        "PostgreSQL database (in a schema ksos_bench, dropped and re-created)")
    args = parser.parse_args(argv)
    settings = load_settings({"RASA_PORT": "5205", "ACTIONS_PORT": "5255",
                              "TRACKER_STORE_URL": f"sqlite:///{BENCH_DIR / 'tracker.db'}"})
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "tracker.db").unlink(missing_ok=True)
    messages = [example.text for example in load_test_set()]
    report: Dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    train_file = VAR_DIR / "train_time.json"
    if train_file.exists():
        report["train_s"] = json.loads(train_file.read_text())["seconds"]
    print("Measuring the KSOS assistant ...", flush=True)
    report["ksos"] = start_and_measure(assistant_services(settings), child_environment(settings),
                                       RasaEndpoints(f"http://127.0.0.1:{settings.rasa_port}", settings.rasa_api_token),
                                       messages, args.requests,
                                       BENCH_DIR / "logs-ksos", with_assist=True)
    if args.postgres:
        print("Measuring the KSOS assistant on PostgreSQL ...", flush=True)
        url = postgres_bench_schema(args.postgres)
        pg_settings = load_settings({"RASA_PORT": "5205", "ACTIONS_PORT": "5255", "DATABASE_URL": url})
        report["ksos_postgres"] = start_and_measure(assistant_services(pg_settings), child_environment(pg_settings),
                                                    RasaEndpoints(f"http://127.0.0.1:{pg_settings.rasa_port}",
                                                                  pg_settings.rasa_api_token), messages,
                                                    args.requests, BENCH_DIR / "logs-ksos-postgres")
    if not args.no_gateway:
        from tools.bench_gateway import measure_gateway

        print("Measuring full turns through the gateway (widget, Messenger) next to Rasa asked directly ...",
              flush=True)
        report["gateway"] = measure_gateway(BENCH_DIR, messages, args.requests)
    if not args.no_stock:
        print("Measuring a stock `rasa init` bot ...", flush=True)
        stock_settings = load_settings({"TRACKER_STORE_URL": "sqlite://"})
        report["stock"] = start_and_measure(stock_bot(5305), child_environment(stock_settings),
                                            RasaEndpoints("http://127.0.0.1:5305"), STOCK_MESSAGES, args.requests,
                                            BENCH_DIR / "logs-stock")
    (BENCH_DIR / "report.json").write_text(json.dumps(report, indent=2))
    print("\n| bot | parse p50 / p99 ms | turn p50 / p99 ms (1 conv.) | turns/s | "
          "turn p50 / p99 ms (10 conv.) | turns/s | ready s | RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    print(format_row("KSOS assistant (SQLite)", report["ksos"]))
    if "ksos_postgres" in report:
        print(format_row("KSOS assistant (PostgreSQL)", report["ksos_postgres"]))
    if "stock" in report:
        print(format_row("stock `rasa init`", report["stock"]))
    if "gateway" in report:
        from tools.bench_gateway import format_gateway_table, format_overhead

        print("\nFull turns through the gateway (SQLite), next to Rasa asked directly on the same model and machine:")
        print("\n".join(format_gateway_table(report["gateway"])))
        print("\n".join(format_overhead(report["gateway"])))
        print(f"Gateway RSS: {report['gateway']['gateway_rss_mb']} MB")
        if report["gateway"]["messenger_unexpected_messages"]:
            print(f"Messenger: {report['gateway']['messenger_unexpected_messages']} message(s) beyond what the "
                  "direct turns predicted (those turns were timed to an earlier message)")
    if "assist" in report["ksos"]:
        from tools.bench_assist import format_assist_table

        print("\nAgent assist on the held-out NLU set (answers of the knowledge base only), top-1 / top-3:")
        print("\n".join(format_assist_table(report["ksos"]["assist"])))
    if "train_s" in report:
        print(f"\nLast full training of models/ksos.tar.gz: {report['train_s']} s")
    print(f"Report: {BENCH_DIR / 'report.json'}")
    return 0
