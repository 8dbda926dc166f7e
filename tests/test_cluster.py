"""`python -m bot cluster` (two gateways, two Rasa servers, two action servers behind HAProxy, on PostgreSQL and a
Redis of this test's own) under a steady load of widget and Messenger customers, each asking one question after
another through the proxy: kill -9 one gateway, then one Rasa server, then one action server, then restart every
replica in turn, then take Redis away for 10 s (the gateways say so in /healthz and keep answering; Rasa keeps its
conversation locks in memory meanwhile). Every message is answered once and in order: in the widget's transcript
(the transcript is its delivery) and on Messenger (a reply Meta accepted before its gateway died is found in the
page's conversation and not sent again); Rasa saw each message once. The time each replica took to come back is
printed."""
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Dict, List

import aiohttp
import pytest
from fake_platforms import running_platforms

from bot.gateway.notices import notice
from bot.gateway.store import GatewayStore
from conftest import (
    FACEBOOK_APP_SECRET,
    FACEBOOK_VERIFY_TOKEN,
    TEST_SECRETS,
    RestClient,
    postgres_schema,
)
from gateway_helpers import OwnRedis, facebook_post, http, messaging, page_body, wait_for

pytestmark = pytest.mark.integration

THINK_SECONDS = 1.0           # between an answer and the customer's next question: a steady load, not a flood
QUESTIONS = ["how much is the starter plan?", "can I pay with boost?", "berapa harga pelan standard?"]
WIDGET_CUSTOMERS, MESSENGER_CUSTOMERS = 3, 4
SERVICES = ("haproxy", "actions-1", "actions-2", "rasa-1", "rasa-2", "gateway-1", "gateway-2")
PORTS = (8080, 8081, 8082, 5005, 5006, 5055, 5056, 5050)


def free_offset() -> int:
    import socket

    for _ in range(50):
        offset = random.randrange(1000, 24000)     # every port below the ephemeral range (32768-)
        try:
            for port in PORTS:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + offset))
            return offset
        except OSError:
            continue
    raise RuntimeError("no free port range")


def health(url: str) -> Dict:
    try:
        return json.loads(http("GET", url + "/healthz")[1])
    except (OSError, ValueError):
        return {}


platforms = pytest.fixture(scope="module", name="platforms")(running_platforms)


@pytest.fixture(scope="module")
def cluster(model_path, platforms, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    redis = OwnRedis(folder)
    redis.start()
    offset = free_offset()
    ours = ("RASA_", "GATEWAY_", "ACTION", "REDIS_", "SERVICES_", "DATABASE_", "TRACKER_", "CLUSTER_", "FACEBOOK_",
            "TWITTER_")
    try:
        with postgres_schema() as database_url:
            env = {**{k: v for k, v in os.environ.items() if not k.startswith(ours)}, **TEST_SECRETS,
                   "SECRETS_FILE": str(folder / "no-secrets.env"), "CLUSTER_PORT_OFFSET": str(offset),
                   "CLUSTER_DATABASE_URL": database_url, "CLUSTER_REDIS_URL": redis.url,
                   "CLUSTER_DIR": str(folder), "RASA_MODEL": model_path, "SMTP_URL": "",
                   "FACEBOOK_VERIFY_TOKEN": FACEBOOK_VERIFY_TOKEN, "FACEBOOK_APP_SECRET": FACEBOOK_APP_SECRET,
                   "FACEBOOK_PAGE_ACCESS_TOKEN": "test-page-token", "FACEBOOK_GRAPH_URL": f"{platforms.url}/v21.0",
                   "GATEWAY_RATE_LIMIT_PER_MINUTE": "0", "GATEWAY_LEASE_SECONDS": "3",
                   "GATEWAY_RETRY_MAX_SECONDS": "2", "CONSOLE_INSECURE_COOKIE": "1"}
            out = open(folder / "cluster.out", "w")
            process = subprocess.Popen([sys.executable, "-m", "bot", "cluster"], env=env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            public = f"http://127.0.0.1:{8080 + offset}"
            try:
                wait_for(lambda: all_running(health(public)), timeout=300, interval=0.5)
                ready = {f"gateway-{i + 1}": f"http://127.0.0.1:{8081 + offset + i}/healthz" for i in range(2)}
                ready.update({f"actions-{i + 1}": f"http://127.0.0.1:{5055 + offset + i}/health" for i in range(2)})
                ready.update({f"rasa-{i + 1}": f"http://127.0.0.1:{5005 + offset + i}/status?token="
                              f"{TEST_SECRETS['RASA_API_TOKEN']}" for i in range(2)})
                yield SimpleNamespace(process=process, url=public, folder=folder, database_url=database_url,
                                      ready=ready, redis=redis,
                                      gateways=[f"http://127.0.0.1:{8081 + offset + i}" for i in range(2)],
                                      rasa=[RestClient(f"http://127.0.0.1:{5005 + offset + i}")
                                                         for i in range(2)])
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=90)
                out.close()
    finally:
        redis.stop()


def all_running(found: Dict) -> bool:
    services = found.get("services") or {}
    return set(services) == set(SERVICES) and all(s["state"] == "running" for s in services.values()) and \
        found.get("rasa") == "ok" and found.get("status") == "ok"


# --- customers ------------------------------------------------------------------------------------------------

class WidgetCustomer:
    """Like widget.js: one question at a time; when the socket drops, reconnect through the proxy to the same
    session and send the unacknowledged message again with the same id."""

    def __init__(self, url: str, expected: Dict[str, int]):
        self.url, self.expected = url.replace("http", "ws", 1) + "/widget/ws", expected
        self.secret = None
        self.asked: List[str] = []
        self.reconnects = 0

    async def ask(self, question: str, deadline: float) -> None:
        client_id, answers, acked = str(uuid.uuid4()), set(), False
        my_seq = None
        while time.monotonic() < deadline:
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.ws_connect(self.url, timeout=5) as socket:
                        await socket.send_json({"type": "hello", "session": self.secret, "after": 0})
                        await socket.send_json({"type": "message", "id": client_id, "text": question})
                        while time.monotonic() < deadline:
                            message = await socket.receive(timeout=max(0.1, deadline - time.monotonic()))
                            if message.type != aiohttp.WSMsgType.TEXT:
                                raise ConnectionError("socket closed")
                            frame = json.loads(message.data)
                            entries = frame.get("messages") if frame["type"] == "history" else \
                                [frame["message"]] if frame["type"] == "message" else []
                            if frame["type"] == "session":
                                self.secret = frame["session"]
                            acked = acked or frame == {"type": "ack", "id": client_id}
                            for entry in entries:
                                if entry["role"] == "customer" and entry.get("client_id") == client_id:
                                    my_seq = entry["seq"]
                                elif my_seq is not None and entry["seq"] > my_seq and entry["role"] == "bot":
                                    answers.add(entry["seq"])
                            if acked and len(answers) >= self.expected[question]:
                                self.asked.append(question)
                                return
            except (ConnectionError, aiohttp.ClientError, asyncio.TimeoutError):
                self.reconnects += 1
                await asyncio.sleep(0.3)
        raise AssertionError(f"widget customer: no answer to {question!r} in time")

    async def transcript(self) -> List[Dict]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.url) as socket:
                await socket.send_json({"type": "hello", "session": self.secret, "after": 0})
                while True:
                    frame = json.loads((await socket.receive(timeout=10)).data)
                    if frame["type"] == "history":
                        return frame["messages"]


def run_load(cluster, platforms, expected_widget, expected_messenger, stop: threading.Event, errors: List):
    """Every customer asks the questions in turn, one after the other's answer, until `stop` (and each at least
    once round)."""
    widgets = [WidgetCustomer(cluster.url, expected_widget) for _ in range(WIDGET_CUSTOMERS)]
    senders = {str(uuid.uuid4().int)[:15]: [] for _ in range(MESSENGER_CUSTOMERS)}

    async def widget_loop(customer: WidgetCustomer, start: int):
        turn = start
        while not stop.is_set() or turn - start < len(QUESTIONS):
            await customer.ask(QUESTIONS[turn % len(QUESTIONS)], time.monotonic() + 120)
            turn += 1
            await asyncio.sleep(THINK_SECONDS)

    def messenger_loop(sender: str, start: int):
        turn = start
        while not stop.is_set() or turn - start < len(QUESTIONS):
            question = QUESTIONS[turn % len(QUESTIONS)]
            wanted = sum(len(expected_messenger[q]) for q in senders[sender]) + len(expected_messenger[question])
            senders[sender].append(question)
            while facebook_post(cluster, page_body(messaging(sender, question)))[0] != 200:
                time.sleep(0.5)                   # the proxy had no gateway for a moment: Meta retries too
            wait_for(lambda n=wanted: len(answers_to(platforms, sender)) >= n, timeout=120, interval=0.1)
            turn += 1
            time.sleep(THINK_SECONDS)

    def guarded(function, *args):
        try:
            function(*args)
        except Exception as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    async def all_widgets():
        await asyncio.gather(*(widget_loop(customer, i) for i, customer in enumerate(widgets)))

    threads = [threading.Thread(target=guarded, args=(asyncio.run, all_widgets()))]
    threads += [threading.Thread(target=guarded, args=(messenger_loop, sender, i))
                for i, sender in enumerate(senders)]
    for thread in threads:
        thread.start()
    return widgets, senders, threads


HOLDS = {notice("hold_on", language) for language in ("en", "ms")}      # sent while Rasa restarts
# "Was this answer helpful?" follows the first answer of a conversation only (tests/test_gateway_channels.py checks
# it): left out, so that each question's answers are the same wherever it comes in a conversation.
PROMPTS = {notice("feedback_prompt", language) for language in ("en", "ms")}


def answers_to(platforms, sender: str) -> List[str]:
    """The texts sent to a Messenger customer, the hold notices and feedback prompts left out."""
    return [message["text"] for message in platforms.messages_to(sender)
            if message["text"] not in HOLDS | PROMPTS]


def baseline(cluster, platforms):
    """What each question is answered with, in a fresh conversation: widget transcript entries and Messenger texts."""
    widget, messenger = {}, {}
    for question in QUESTIONS:
        customer = WidgetCustomer(cluster.url, {question: 1})
        asyncio.run(customer.ask(question, time.monotonic() + 60))
        time.sleep(1.0)
        widget[question] = [m["text"] for m in asyncio.run(customer.transcript()) if m["role"] == "bot"]
        sender = str(uuid.uuid4().int)[:15]
        facebook_post(cluster, page_body(messaging(sender, question)))
        wait_for(lambda s=sender: platforms.messages_to(s), timeout=60)
        time.sleep(1.0)
        messenger[question] = answers_to(platforms, sender)
    return widget, messenger


def services(cluster) -> Dict:
    """Every replica's state, from whichever gateway HAProxy asks (one that just died may not answer)."""
    return wait_for(lambda: health(cluster.url).get("services"), timeout=30, interval=0.2)


def answers(url: str) -> bool:
    try:
        return http("GET", url)[0] == 200
    except OSError:
        return False


def restart(cluster, name: str, how: int) -> float:
    """Stop one replica (kill -9 or SIGTERM) and return the seconds until it answers again (Rasa: with its model
    loaded) and the whole cluster reports every replica running."""
    before = services(cluster)[name]
    os.kill(before["pid"], how)
    stopped = time.monotonic()
    wait_for(lambda: services(cluster)[name]["restarts"] == before["restarts"] + 1, timeout=120, interval=0.2)
    wait_for(lambda: answers(cluster.ready[name]), timeout=180, interval=0.2)
    back = time.monotonic() - stopped
    wait_for(lambda: all_running(health(cluster.url)), timeout=60, interval=0.2)
    return back


def redis_outage(cluster, platforms, widgets, senders) -> Dict[str, float]:
    """Redis away for 10 s under the load: how many answers reached customers meanwhile, and the seconds until
    every gateway reports Redis back."""
    def answered() -> int:
        return sum(len(answers_to(platforms, sender)) for sender in senders) + \
            sum(len(customer.asked) for customer in widgets)

    cluster.redis.stop()
    started = time.monotonic()
    wait_for(lambda: all(health(g).get("status") == "degraded" for g in cluster.gateways), timeout=30, interval=0.2)
    assert all(health(g)["fanout"].startswith("degraded") for g in cluster.gateways)
    before = answered()
    time.sleep(max(0.0, 10 - (time.monotonic() - started)))
    during = answered() - before
    cluster.redis.start()                                   # back on the same port, empty
    back = time.monotonic()
    wait_for(lambda: all(health(g).get("fanout") == "ok" for g in cluster.gateways), timeout=60, interval=0.2)
    wait_for(lambda: all_running(health(cluster.url)), timeout=60, interval=0.2)
    return {"answers during the outage": during, "fanout back in s": round(time.monotonic() - back, 1)}


def first_difference(sender: str, asked: List[str], wanted: List[str], got: List[str]) -> str:
    for index, (want, have) in enumerate(zip(wanted, got, strict=False)):
        if want != have:
            return (f"{sender}: {len(asked)} questions, {len(wanted)} replies wanted, {len(got)} received; first "
                    f"difference at {index}: wanted {want[:80]!r}, got {have[:80]!r}; next received: "
                    f"{[text[:40] for text in got[index + 1:index + 4]]}")
    return f"{sender}: {len(wanted)} replies wanted, {len(got)} received (the end is missing)"


def is_subsequence(expected: List[str], received: List[str]) -> bool:
    found = iter(received)
    return all(any(text == got for got in found) for text in expected)


def test_kill_9_and_a_rolling_restart_under_load_lose_nothing(cluster, platforms):
    expected_widget, expected_messenger = baseline(cluster, platforms)
    stop, errors = threading.Event(), []
    widgets, senders, threads = run_load(cluster, platforms, {q: len(a) for q, a in expected_widget.items()},
                                               expected_messenger, stop, errors)
    recovery = {}
    try:
        time.sleep(3)                                       # the load is flowing
        for name in ("gateway-1", "rasa-1", "actions-1"):
            recovery[f"kill -9 {name}"] = restart(cluster, name, signal.SIGKILL)
            time.sleep(2)
        for name in ("gateway-1", "gateway-2", "rasa-1", "rasa-2", "actions-1", "actions-2"):
            recovery[f"rolling {name}"] = restart(cluster, name, signal.SIGTERM)
        outage = redis_outage(cluster, platforms, widgets, senders)
        # Degraded, not stopped: about one answer per customer per second goes on (without Rasa's in-memory
        # fallback for its locks, only what was already in flight arrives: 1 answer, measured).
        assert outage["answers during the outage"] >= WIDGET_CUSTOMERS + MESSENGER_CUSTOMERS, outage
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=240)
    assert not errors, errors

    # Widget: the transcript holds each question's answers exactly once, in order.
    store = GatewayStore(cluster.database_url)
    for customer in widgets:
        _secret, key = store.widget_session(customer.secret, create=False)
        entries = [e for e in store.history(f"widget:{key}", limit=100_000)
                   if e["role"] in ("customer", "bot")]                                        # no notices
        asked = [entry["text"] for entry in entries if entry["role"] == "customer"]
        assert asked == customer.asked
        wanted = [text for question in customer.asked for text in [question, *expected_widget[question]]]
        assert [entry["text"] for entry in entries] == wanted
    # Messenger: nothing lost, nothing twice, in order.
    doubles = 0
    for sender, asked in senders.items():
        wanted = [text for question in asked for text in expected_messenger[question]]
        wait_for(lambda w=wanted, s=sender: len(answers_to(platforms, s)) >= len(w), timeout=60)   # the last turn
        got = answers_to(platforms, sender)
        assert is_subsequence(wanted, got), first_difference(sender, asked, wanted, got)
        doubles += len(got) - len(wanted)
        user_turns = [e for e in cluster.rasa[0].tracker(f"facebook:{sender}")["events"] if e["event"] == "user"]
        assert len(user_turns) == len(asked)                   # each message reached Rasa once
    assert doubles == 0, doubles
    store.dispose()
    messages = sum(len(c.asked) for c in widgets) + sum(len(a) for a in senders.values())
    memory = {name: resident_mb(child["pid"]) for name, child in services(cluster).items()}
    print(f"\ncluster under load ({WIDGET_CUSTOMERS} widget + {MESSENGER_CUSTOMERS} Messenger customers, "
          f"{messages} messages): " + ", ".join(f"{k} back in {v:.1f} s" for k, v in recovery.items())
          + f"; Redis away 10 s: {outage['answers during the outage']} answers meanwhile, cross-replica push back "
          f"in {outage['fanout back in s']} s"
          + f"; widget reconnects {sum(c.reconnects for c in widgets)}, Messenger doubles {doubles}; resident "
          f"memory (MB) " + ", ".join(f"{name} {mb:.0f}" for name, mb in memory.items()))


def resident_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024
