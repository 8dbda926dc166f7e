"""Several Rasa servers behind one gateway (RASA_URLS): round-robin, a server that refuses connections is left
out and the turn goes to the next one at once, a server left out is taken back when its /status answers, and a
request that may have arrived is never sent to a second server (the worker's retry reads the tracker first).
The servers are small local stand-ins for Rasa's channel and /status, on loopback."""
import asyncio

import aiohttp
import pytest
from aiohttp import web

from bot.gateway import rasa_client
from bot.gateway.rasa_client import RasaClient, RasaUnavailable
from bot.rasa_runtime.api import CHANNEL_PATH
from conftest import free_port, local_server

pytestmark = pytest.mark.integration


class StandIn:
    """Answers the gateway channel with its own name; `slow` makes it time out."""

    def __init__(self, name: str):
        self.name, self.turns, self.slow = name, [], False

    def app(self) -> web.Application:
        async def turn(request: web.Request) -> web.Response:
            body = await request.json()
            self.turns.append(body["message"])
            if self.slow:
                await asyncio.sleep(5)
            return web.json_response([{"recipient_id": body["sender"], "text": f"{self.name}: {body['message']}"}])

        async def status(_request: web.Request) -> web.Response:
            return web.json_response({"model_file": "ksos.tar.gz"})

        app = web.Application()
        app.router.add_post(CHANNEL_PATH, turn)
        app.router.add_get("/status", status)
        return app


def test_round_robin_failover_and_return(monkeypatch):
    monkeypatch.setattr(rasa_client, "WATCH_SECONDS", 0.1)
    closed_port = free_port()

    async def scenario():
        one, two = StandIn("one"), StandIn("two")
        async with local_server(one.app()) as url_one, local_server(two.app()) as url_two:
            async with aiohttp.ClientSession() as session:
                client = RasaClient([url_one, url_two], "token", session, timeout_seconds=1)
                answers = [(await client.send("c", f"m{i}", "widget", {})).replies[0]["text"] for i in range(4)]
                assert answers == ["one: m0", "two: m1", "one: m2", "two: m3"]           # round-robin

                down = RasaClient([f"http://127.0.0.1:{closed_port}", url_two], "token", session, timeout_seconds=1)
                assert [(await down.send("c", f"d{i}", "widget", {})).replies[0]["text"] for i in range(3)] == \
                    ["two: d0", "two: d1", "two: d2"]                    # the refused turn went to two at once
                assert list(down.servers_state().values()) == ["left out", "in use"]
                assert await down.status(aiohttp.ClientTimeout(total=1)) == 200

                # A server that may have got the request is not bypassed: the worker retries (tracker first).
                one.slow = True
                slow = RasaClient([url_one, url_two], "token", session, timeout_seconds=0.5)
                with pytest.raises(RasaUnavailable) as timed_out:
                    await slow.send("c", "late", "widget", {})
                assert timed_out.value.reached and "late" not in two.turns
                one.slow = False

                # Every server down: the turn fails as certainly not delivered.
                nobody = RasaClient([f"http://127.0.0.1:{closed_port}"], "token", session, timeout_seconds=1)
                with pytest.raises(RasaUnavailable) as refused:
                    await nobody.send("c", "x", "widget", {})
                assert not refused.value.reached

            # Taken back: the watcher sees /status answer again.
            async with aiohttp.ClientSession() as session:
                client = RasaClient([url_one, url_two], "token", session, timeout_seconds=1)
                client.servers[0].down_until = float("inf")
                watcher = asyncio.create_task(client.watch())
                for _ in range(50):
                    if client.servers[0].up:
                        break
                    await asyncio.sleep(0.05)
                watcher.cancel()
                assert client.servers_state() == {url_one: "in use", url_two: "in use"}

    asyncio.run(scenario())
