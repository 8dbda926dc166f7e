"""Widget sockets on two gateway replicas (PostgreSQL, a Redis this test starts itself): a customer with one tab on
each replica gets every answer in both, whichever replica worked it out; while Redis is down the replicas keep
answering and /healthz says "degraded"; once Redis is back, the tab that missed an answer is sent it."""
import asyncio
import json
import shutil
import time
import uuid
from typing import Any, Dict, List

import aiohttp
import pytest

from conftest import GatewayProcess, free_port, gateway_environment, postgres_schema
from gateway_helpers import OwnRedis, http, wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")]


class Tab:
    """A widget's socket kept open for the whole test, collecting every frame it gets."""

    def __init__(self, loop, url: str):
        self.loop, self.url = loop, url
        self.frames: List[Dict] = []
        self.session: Any = None
        self.socket: Any = None
        self.reader: Any = None

    async def _open(self, hello: Dict) -> None:
        self.session = aiohttp.ClientSession()
        self.socket = await self.session.ws_connect(self.url.replace("http", "ws", 1) + "/widget/ws")
        await self.socket.send_json(hello)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(json.loads(message.data))

    def open(self, session_secret=None) -> "Tab":
        self.loop.run(self._open({"type": "hello", "session": session_secret, "after": 0}))
        wait_for(lambda: any(f["type"] == "history" for f in self.frames), timeout=10)
        return self

    def send(self, text: str) -> str:
        client_id = str(uuid.uuid4())
        self.loop.run(self.socket.send_json({"type": "message", "id": client_id, "text": text}))
        return client_id

    def answers(self) -> Dict[int, str]:
        """The assistant's messages this tab has shown, by seq (history and live)."""
        found = {}
        for frame in self.frames:
            messages = frame["messages"] if frame["type"] == "history" else \
                [frame["message"]] if frame["type"] == "message" else []
            found.update({m["seq"]: m["text"] for m in messages if m["role"] == "bot"})
        return found

    def close(self) -> None:
        async def close():
            await self.socket.close()
            await self.session.close()
        self.loop.run(close())


def health(gateway) -> Dict:
    return json.loads(http("GET", gateway.url + "/healthz")[1])


def test_replies_reach_a_tab_on_the_other_replica_and_a_redis_outage_loses_nothing(
        assistant, test_settings, background_loop, tmp_path):
    redis = OwnRedis(tmp_path)
    redis.start()
    try:
        with postgres_schema() as database_url:
            env = gateway_environment(test_settings, database_url, assistant.base_url, REDIS_URL=redis.url,
                                      GATEWAY_RATE_LIMIT_PER_MINUTE="0")
            a, b = (GatewayProcess({**env, "GATEWAY_REPLICA_ID": name}, tmp_path / f"{name}.log", free_port())
                    for name in ("replica-a", "replica-b"))
            a.start()
            b.start()
            try:
                run_scenario(a, b, redis, background_loop)
            finally:
                a.stop()
                b.stop()
    finally:
        redis.stop()


def run_scenario(a, b, redis, background_loop):
    wait_for(lambda: health(a)["fanout"] == "ok" and health(b)["fanout"] == "ok", timeout=15)
    first = Tab(background_loop, a.url).open()
    secret = next(f["session"] for f in first.frames if f["type"] == "session")
    second = Tab(background_loop, b.url).open(secret)                   # the same customer, another tab
    try:
        second.send("how much is the starter plan?")
        wait_for(lambda: first.answers() and first.answers() == second.answers(), timeout=30)
        assert "RM" in " ".join(first.answers().values())

        redis.stop()
        outage = time.monotonic()
        wait_for(lambda: health(a)["status"] == "degraded" and health(b)["status"] == "degraded", timeout=30)
        assert health(a)["fanout"].startswith("degraded")
        before = len(second.answers())
        second.send("can I pay with boost?")                              # still answered
        wait_for(lambda: len(first.answers()) > before or len(second.answers()) > before, timeout=30)
        wait_for(lambda: health(a)["pending_messages"] == 0, timeout=30)

        time.sleep(max(0.0, 10 - (time.monotonic() - outage)))           # Redis is away for 10 s
        redis.start()                                                     # back on the same port
        wait_for(lambda: health(a)["fanout"] == "ok" and health(b)["fanout"] == "ok", timeout=30)
        wait_for(lambda: len(first.answers()) > before and first.answers() == second.answers(), timeout=30)
        assert any("Boost" in text for text in first.answers().values())
        assert health(a)["status"] == "ok" and health(b)["status"] == "ok"
    finally:
        first.close()
        second.close()
