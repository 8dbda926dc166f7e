"""`make bench`, channel part: full-turn latency and throughput through the gateway (widget WebSocket and
Messenger webhook paths) at 1, 10 and 50 concurrent conversations, next to Rasa asked directly (its private gateway
channel, as the gateway asks it).

A turn ends when the customer has every reply: for the widget, the socket's typing-off frame (sent after the last
reply); for Messenger, the last reply message reaching a local fake of the Graph API (Messenger ends the typing
indicator itself when a message is sent, so the gateway sends no typing_off after one). How many messages a turn
has comes from the direct turn of the same message in a conversation with the same history. Each conversation sends
its messages one after another, as a customer would.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

import aiohttp
from aiohttp import web

from bot.gateway.channels.facebook import render
from bot.gateway.messages import replies_from_rasa
from bot.services import assistant_services, child_environment
from bot.settings import load_settings
from tools.bench_measure import RasaEndpoints, latency_summary, percentile, rss_mb

CONCURRENCY = (1, 10, 50)
APP_SECRET = "bench-app-secret"


def conversations(messages: List[str], requests: int, concurrency: int) -> List[List[str]]:
    lanes: List[List[str]] = [[] for _ in range(concurrency)]
    for index in range(requests):
        lanes[index % concurrency].append(messages[index % len(messages)])
    return lanes


async def run_lanes(lanes: List[List[str]], turn) -> Dict[str, float]:
    latencies: List[float] = []

    async def lane(number: int, texts: List[str]) -> None:
        async for latency in turn(number, texts):
            latencies.append(latency)

    started = time.perf_counter()
    await asyncio.gather(*(lane(n, texts) for n, texts in enumerate(lanes)))
    return latency_summary(latencies, time.perf_counter() - started)


def messenger_messages(raw: List[Dict[str, Any]]) -> int:
    """How many Send API messages the gateway sends for Rasa's answer `raw` (a long text is split)."""
    return sum(len(render("bench", reply)) for reply in replies_from_rasa(raw))


async def direct_turn(session: aiohttp.ClientSession, rasa: RasaEndpoints, sender: str, text: str
                      ) -> Tuple[float, int]:
    """One message straight to Rasa: its latency in ms and how many Messenger messages its answer makes."""
    started = time.perf_counter()
    async with session.post(rasa.turn_url, json={"sender": sender, "message": text},
                            headers=rasa.headers) as response:
        raw = await response.json()
        response.raise_for_status()
    return (time.perf_counter() - started) * 1000, messenger_messages(raw)


async def rest_path(rasa: RasaEndpoints, lanes: List[List[str]]) -> Tuple[Dict[str, float], List[List[int]]]:
    """The same conversations straight to Rasa, each in order; with the number of Messenger messages of each
    turn's answer (what the Messenger path then waits for)."""
    run = uuid.uuid4().hex[:8]
    counts: List[List[int]] = [[] for _ in lanes]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        async def turn(number: int, texts: List[str]):
            for text in texts:
                latency, count = await direct_turn(session, rasa, f"bench-rest-{run}-{number}", text)
                counts[number].append(count)
                yield latency
        return await run_lanes(lanes, turn), counts


async def widget_turn(socket: aiohttp.ClientWebSocketResponse, text: str) -> float:
    """One widget message until the socket's typing-off frame (sent after the last reply); its latency in ms."""
    started = time.perf_counter()
    await socket.send_json({"type": "message", "id": str(uuid.uuid4()), "text": text})
    while await socket.receive_json(timeout=120) != {"type": "typing", "on": False}:
        pass
    return (time.perf_counter() - started) * 1000


async def widget_path(gateway_url: str, lanes: List[List[str]]) -> Dict[str, float]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        async def turn(number: int, texts: List[str]):
            async with session.ws_connect(gateway_url.replace("http", "ws", 1) + "/widget/ws") as socket:
                await socket.send_json({"type": "hello", "session": None, "after": 0})
                for text in texts:
                    yield await widget_turn(socket, text)
        return await run_lanes(lanes, turn)


class FakeGraph:
    """Receives the gateway's Send API calls. A recipient's turn ends with the last message it waits for (or a
    typing_off: the gateway sent nothing). Messages beyond that are counted as unexpected."""

    def __init__(self):
        self.waiting: Dict[str, Tuple[int, asyncio.Event]] = {}
        self.unexpected = 0

    def expect(self, recipient: str, messages: int) -> asyncio.Event:
        done = asyncio.Event()
        self.waiting[recipient] = (messages, done)
        return done

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        recipient = body["recipient"]["id"]
        left, done = self.waiting.get(recipient, (0, None))
        if "message" in body:
            if done is None or done.is_set():
                self.unexpected += 1
            elif left <= 1:
                done.set()
            else:
                self.waiting[recipient] = (left - 1, done)
        elif body.get("sender_action") == "typing_off" and done is not None:
            done.set()
        return web.json_response({"recipient_id": recipient, "message_id": uuid.uuid4().hex})

    async def turn(self, session: aiohttp.ClientSession, gateway_url: str, sender: str, text: str,
                   messages: int) -> float:
        """One customer message through the webhook until its `messages` replies reached the Send API; ms."""
        done = self.expect(sender, messages)
        started = time.perf_counter()
        await post_messenger(session, gateway_url, sender, text)
        await asyncio.wait_for(done.wait(), timeout=120)
        return (time.perf_counter() - started) * 1000


async def post_messenger(session: aiohttp.ClientSession, gateway_url: str, sender: str, text: str) -> None:
    """One customer message, as Meta's signed webhook delivers it."""
    body = json.dumps({"object": "page", "entry": [{"id": "PAGE", "time": 0, "messaging": [
        {"sender": {"id": sender}, "recipient": {"id": "PAGE"}, "timestamp": 0,
         "message": {"mid": uuid.uuid4().hex, "text": text}}]}]}).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with session.post(f"{gateway_url}/webhooks/facebook", data=body, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": signature}) as response:
        await response.read()


async def messenger_path(gateway_url: str, graph: FakeGraph, lanes: List[List[str]], counts: List[List[int]]
                         ) -> Dict[str, float]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        async def turn(number: int, texts: List[str]):
            sender = f"{uuid.uuid4().int % 10 ** 15}"
            for text, messages in zip(texts, counts[number], strict=True):
                yield await graph.turn(session, gateway_url, sender, text, messages)
        return await run_lanes(lanes, turn)


async def measure_paths(rasa: RasaEndpoints, gateway_url: str, graph: FakeGraph, messages: List[str],
                        requests: int) -> Dict[str, Dict[str, Dict[str, float]]]:
    results: Dict[str, Dict[str, Dict[str, float]]] = {"rest": {}, "widget": {}, "messenger": {}}
    for concurrency in CONCURRENCY:
        count = max(requests, concurrency * 4)
        lanes = conversations(messages, count, concurrency)
        print(f"  {concurrency} concurrent conversation(s), {count} turns per path ...", flush=True)
        results["rest"][f"c{concurrency}"], counts = await rest_path(rasa, lanes)
        results["widget"][f"c{concurrency}"] = await widget_path(gateway_url, lanes)
        results["messenger"][f"c{concurrency}"] = await messenger_path(gateway_url, graph, lanes, counts)
    return results


async def paired_overhead(rasa: RasaEndpoints, gateway_url: str, graph: FakeGraph, messages: List[str]
                          ) -> Dict[str, Dict[str, float]]:
    """The gateway's own cost per turn: each message is sent, one conversation per path, straight to Rasa, then
    through the widget, then through Messenger, one turn after the other. A turn's cost is its latency minus
    the direct turn of the same message next to it, so drift in Rasa's own speed cancels out."""
    run = uuid.uuid4().hex[:8]
    direct: List[float] = []
    extra: Dict[str, List[float]] = {"widget": [], "messenger": []}
    sender = f"{uuid.uuid4().int % 10 ** 15}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        async with session.ws_connect(gateway_url.replace("http", "ws", 1) + "/widget/ws") as socket:
            await socket.send_json({"type": "hello", "session": None, "after": 0})
            for text in messages:
                latency, count = await direct_turn(session, rasa, f"bench-pair-{run}", text)
                direct.append(latency)
                extra["widget"].append(await widget_turn(socket, text) - latency)
                extra["messenger"].append(await graph.turn(session, gateway_url, sender, text, count) - latency)
    direct_p50 = percentile(direct, 50)
    results = {"direct": {"p50_ms": round(direct_p50, 1), "turns": len(direct)}}
    for path, costs in extra.items():
        cost = percentile(costs, 50)
        results[path] = {"overhead_p50_ms": round(cost, 1), "overhead_pct": round(100 * cost / direct_p50, 1)}
    return results


HANDED_OVER = ("request_human", "nlu_fallback")


async def answered_by_the_assistant(rasa: RasaEndpoints, messages: List[str]) -> List[str]:
    """The messages the assistant answers itself. The others can hand a conversation over to the human agents
    (asked for, or a second miss in a row), after which the assistant is silent and a turn never ends; the
    handoff is not what this benchmark measures."""
    kept = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for text in messages:
            async with session.post(rasa.parse_url, json={"text": text}) as response:
                intent = ((await response.json()).get("intent") or {}).get("name")
            if intent not in HANDED_OVER:
                kept.append(text)
    return kept


async def _measure(settings, env, messages: List[str], requests: int, log_dir: Path, graph_port: int) -> Dict:
    graph = FakeGraph()
    app = web.Application()
    app.router.add_post("/v21.0/me/messages", graph.messages)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", graph_port).start()
    group = assistant_services(settings, with_gateway=True)
    group.start(env, log_dir=log_dir)
    try:
        await asyncio.get_running_loop().run_in_executor(None, lambda: group.wait_ready(timeout=300))
        rasa = RasaEndpoints(settings.rasa_url, settings.rasa_api_token)
        messages = await answered_by_the_assistant(rasa, messages)
        gateway_url = f"http://127.0.0.1:{settings.gateway_port}"
        await measure_paths(rasa, gateway_url, graph, messages[:5], 5)       # warm-up, not measured
        results: Dict[str, Any] = dict(await measure_paths(rasa, gateway_url, graph, messages, requests))
        print("  the gateway's own cost per turn (paired with direct turns) ...", flush=True)
        results["overhead"] = await paired_overhead(rasa, gateway_url, graph,
                                                    [messages[i % len(messages)] for i in range(requests)])
        gateway = next(s for s in group.services if s.name == "gateway" and s.process)
        results["gateway_rss_mb"] = round(rss_mb(gateway.process.pid))  # type: ignore[union-attr]
        # Send API messages no turn waited for: a Messenger answer had more messages than its direct twin.
        results["messenger_unexpected_messages"] = graph.unexpected
        return results
    finally:
        group.stop()
        await runner.cleanup()


def measure_gateway(bench_dir: Path, messages: List[str], requests: int) -> Dict:
    graph_port = 5390
    database = bench_dir / "gateway.db"
    for leftover in bench_dir.glob("gateway.db*"):
        leftover.unlink()
    settings = load_settings({"RASA_PORT": "5205", "ACTIONS_PORT": "5255", "GATEWAY_PORT": "5280",
                              "TRACKER_STORE_URL": f"sqlite:///{bench_dir / 'tracker-gateway.db'}",
                              "DATABASE_URL": f"sqlite:///{database}"})
    env = child_environment(settings)
    env.update({"FACEBOOK_VERIFY_TOKEN": "bench", "FACEBOOK_APP_SECRET": APP_SECRET,
                "FACEBOOK_PAGE_ACCESS_TOKEN": "bench", "FACEBOOK_GRAPH_URL": f"http://127.0.0.1:{graph_port}/v21.0",
                "GATEWAY_RATE_LIMIT_PER_MINUTE": "0"})
    return asyncio.run(_measure(settings, env, messages, requests, bench_dir / "logs-gateway", graph_port))


def format_gateway_table(results: Dict) -> List[str]:
    lines = ["| path | conversations | p50 ms | p99 ms | turns/s |", "|---|---|---|---|---|"]
    names = {"rest": "Rasa direct (gateway channel)", "widget": "gateway: widget (WebSocket)",
             "messenger": "gateway: Messenger webhook → Send API"}
    for concurrency in CONCURRENCY:
        for path in ("rest", "widget", "messenger"):
            r = results[path][f"c{concurrency}"]
            lines.append(f"| {names[path]} | {concurrency} | {r['p50_ms']} | {r['p99_ms']} | {r['throughput_per_s']} |")
    return lines


def format_overhead(results: Dict) -> List[str]:
    overhead = results["overhead"]
    return [f"The gateway's own cost per turn (1 conversation, {overhead['direct']['turns']} turns, each paired with a "
            f"direct turn of the same message; direct p50 {overhead['direct']['p50_ms']} ms):"] + [
        f"  {path}: +{overhead[path]['overhead_p50_ms']} ms ({overhead[path]['overhead_pct']} % of a direct turn)"
        for path in ("widget", "messenger")]
