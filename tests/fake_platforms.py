"""Local fakes of the platforms the gateway sends to: Messenger's Send API and the X API v2 (tests/fake_x.py) on
one aiohttp server, recording every call."""
import uuid
from datetime import datetime, timezone
from typing import Dict, List

from aiohttp import web

from conftest import TWITTER_BOT_USER_ID
from fake_x import FakeX

PAGE_ID = "1029384756"


class FakePlatforms:
    """Graph API (/me/messages) and the X API v2 (FakeX) on one local server. Records every call; `fail_next`
    makes the next N Messenger sends answer with a given status (429, 500 ...), `x.fail_next` the next X sends."""

    def __init__(self):
        self.calls: List[Dict] = []
        self.fail_next: List[int] = []
        self.x = FakeX(TWITTER_BOT_USER_ID, consumer_key="test-consumer-key")

    async def graph_messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "message" in body and self.fail_next:
            status = self.fail_next.pop(0)
            self.calls.append({"api": "graph", "failed": status, "body": body})
            return web.json_response({"error": {"message": "slow down", "code": 4}}, status=status)
        self.calls.append({"api": "graph", "body": body, "token": request.query.get("access_token"),
                           "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")})
        return web.json_response({"recipient_id": body["recipient"]["id"], "message_id": f"m_{uuid.uuid4().hex}"})

    async def graph_conversations(self, request: web.Request) -> web.Response:
        """The Conversations API as Meta answers it: the page's conversation with user_id, newest message first."""
        user = request.query.get("user_id", "")
        sent = [{"id": f"m_{index}", "message": call["body"]["message"].get("text", ""),
                 "from": {"id": PAGE_ID, "name": "Unifi"}, "created_time": call["at"]}
                for index, call in enumerate(self.calls)
                if not call.get("failed") and call["body"].get("recipient", {}).get("id") == user
                and "message" in call["body"]]
        if not sent:
            return web.json_response({"data": []})
        return web.json_response({"data": [{"id": f"t_{user}", "messages": {"data": sent[::-1][:10]}}]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v21.0/me/messages", self.graph_messages)
        app.router.add_get("/v21.0/me/conversations", self.graph_conversations)
        self.x.add_routes(app)
        return app

    def messages_to(self, recipient: str) -> List[Dict]:
        """Message bodies (not sender actions, not failed attempts) sent to `recipient` on either platform."""
        found = []
        for call in list(self.calls):
            body = call["body"]
            if call.get("failed") or body.get("recipient", {}).get("id") != recipient or "message" not in body:
                continue
            found.append({"text": body["message"].get("text", ""), "buttons": body["message"].get("quick_replies", []),
                          "raw": body})
        for call in self.x.sends_to(recipient):
            if not call.get("failed"):
                found.append({"text": call["body"]["text"], "raw": call})
        return found


async def serve_app(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def running_platforms(background_loop):
    """The fakes served on a free loopback port for as long as the fixture lives (each module makes its own:
    `platforms = pytest.fixture(scope="module")(running_platforms)`)."""
    from conftest import free_port

    fake = FakePlatforms()
    port = free_port()
    runner = background_loop.run(serve_app(fake.app(), port))
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    background_loop.run(runner.cleanup())
