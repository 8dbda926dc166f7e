"""The gateway's app factory in-process, with aiohttp's test client (no subprocess; Rasa is a closed port): health,
channels off without their secrets, the headers on every response, and a widget session opened without Rasa."""
import asyncio
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.gateway.app import CHANNELS, init_app
from bot.gateway.config import GatewaySettings
from bot.gateway.notices import notice
from conftest import TEST_SECRETS, free_port

pytestmark = pytest.mark.integration


def settings_for(tmp_path, **extra) -> GatewaySettings:
    return GatewaySettings.from_env({**TEST_SECRETS, "SECRETS_FILE": "/nonexistent",
                                     "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
                                     "RASA_URL": f"http://127.0.0.1:{free_port()}", **extra})


def run(settings: GatewaySettings, scenario):
    async def main():
        client = TestClient(TestServer(await init_app(settings)))
        await client.start_server()
        try:
            return await scenario(client)
        finally:
            await client.close()

    return asyncio.run(main())


def test_health_and_channels_off_without_their_secrets(tmp_path, caplog):
    async def scenario(client):
        health = await client.get("/healthz")
        live = await client.get("/livez")
        assert live.status == 200 and await live.json() == {"status": "ok"}    # for load balancers: no downstream
        facebook = await client.get("/webhooks/facebook?hub.mode=subscribe")
        x = await client.post("/webhooks/x", data=b"{}")
        return (health.status, await health.json(), facebook.status, x.status, dict(health.headers),
                sorted(client.server.app[CHANNELS]))

    with caplog.at_level(logging.WARNING, logger="bot.gateway"):
        status, body, facebook, x, headers, channels = run(settings_for(tmp_path), scenario)
    assert status == 200 and body["database"] == "ok" and body["rasa"] == "unreachable"
    assert body["channels"] == {"widget": True, "facebook": False, "twitter": False} and body["pending_messages"] == 0
    assert facebook == 404 and x == 404
    assert headers["Server"] == "KSOS gateway" and headers["X-Content-Type-Options"] == "nosniff"
    assert channels == ["facebook", "twitter", "widget"]
    assert sum("twitter channel disabled" in record.getMessage() for record in caplog.records) == 1


def test_a_widget_session_opens_without_rasa_and_an_unknown_path_is_a_404(tmp_path):
    async def scenario(client):
        socket = await client.ws_connect("/widget/ws")
        await socket.send_json({"type": "hello", "session": None, "after": 0})
        first = await socket.receive_json(timeout=10)
        history = await socket.receive_json(timeout=10)
        greeting = await socket.receive_json(timeout=10)
        await socket.send_str("not json")
        error = await socket.receive_json(timeout=10)
        await socket.close()
        missing = await client.get("/no/such/page")
        return first, history, greeting, error, missing.status

    first, history, greeting, error, missing = run(settings_for(tmp_path), scenario)
    assert first["type"] == "session" and first["session"]
    assert history["type"] == "history" and history["messages"] == []
    # A first open is greeted (the hello named no language: English), without Rasa and without a transcript entry.
    assert greeting == {"type": "greeting", "text": notice("greeting", "en"), "language": "en"}
    assert error["type"] == "error" and error["code"] == "bad_request"
    assert missing == 404
