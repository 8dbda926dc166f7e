"""Helpers the gateway process tests share: plain HTTP calls, signed Messenger and X webhook posts in the
platforms' shapes, and a widget WebSocket conversation."""
import base64
import hashlib
import hmac
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from typing import Callable, Dict, List, Optional

import aiohttp

from conftest import FACEBOOK_APP_SECRET, TWITTER_BOT_USER_ID, TWITTER_CONSUMER_SECRET, GatewayProcess, free_port
from fake_x import CLIENT_SECRET as X_CLIENT_SECRET


def http(method: str, url: str, body: bytes = b"", headers: Optional[Dict[str, str]] = None):
    request = urllib.request.Request(url, data=body if method == "POST" else None, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def facebook_post(gateway: GatewayProcess, body, secret: str = FACEBOOK_APP_SECRET, raw: Optional[bytes] = None):
    data = raw if raw is not None else json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
    return http("POST", gateway.url + "/webhooks/facebook", data,
                {"Content-Type": "application/json", "X-Hub-Signature-256": signature})


def x_signature(secret: str, data: bytes) -> str:
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


def twitter_post(gateway: GatewayProcess, body, secret: str = TWITTER_CONSUMER_SECRET, path: str = "/webhooks/twitter",
                 header: str = "x-twitter-webhooks-signature"):
    """A webhook POST as X signs it: by default the legacy header with the OAuth 1.0a consumer secret."""
    data = json.dumps(body).encode()
    return http("POST", gateway.url + path, data,
                {"Content-Type": "application/json", header: x_signature(secret, data)})


def x_post(gateway: GatewayProcess, body, secret: str = X_CLIENT_SECRET, path: str = "/webhooks/x"):
    """An X Activity API delivery, signed as X signs it for an app with an OAuth 2.0 client secret."""
    return twitter_post(gateway, body, secret, path, "X-Twitter-Webhooks-Signature-OAuth2")


def xaa(payload: Dict, event_type: str = "dm.received", event_uuid: Optional[str] = None,
        for_user: str = TWITTER_BOT_USER_ID) -> Dict:
    """The X Activity API's envelope (docs.x.com, event payloads)."""
    return {"data": {"event_uuid": event_uuid or str(-uuid.uuid4().int % 10 ** 19), "filter": {"user_id": for_user},
                     "event_type": event_type, "tag": "ksos-assistant", "payload": payload, "includes": {}}}


def v2_dm(sender: str, text: str, event_id: Optional[str] = None, media_keys: Optional[List[str]] = None) -> Dict:
    """A v2 DM event object (docs.x.com, Direct Messages lookup: MessageCreate)."""
    event = {"id": event_id or str(uuid.uuid4().int)[:19], "event_type": "MessageCreate", "text": text,
             "sender_id": sender, "dm_conversation_id": f"{sender}-{TWITTER_BOT_USER_ID}",
             "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
    if media_keys:
        event["attachments"] = {"media_keys": media_keys}
    return event


def wrapped_dms(*events) -> Dict:
    """dm.received's payload as X's event-payload example shows it: legacy direct_message_events plus users."""
    return {"direct_message_events": list(events),
            "users": {TWITTER_BOT_USER_ID: {"data": {"id": TWITTER_BOT_USER_ID, "username": "helpmeunifi"}}}}


def messaging(sender: str, text: Optional[str] = None, mid: Optional[str] = None, quick_reply: Optional[str] = None,
              **extra) -> Dict:
    event = {"sender": {"id": sender}, "recipient": {"id": "PAGE_ID"}, "timestamp": int(time.time() * 1000)}
    if text is not None:
        message = {"mid": mid or f"m_{uuid.uuid4().hex}", "text": text}
        if quick_reply:
            message["quick_reply"] = {"payload": quick_reply}
        event["message"] = message
    event.update(extra)
    return event


def page_body(*events, entries: int = 1) -> Dict:
    """Meta's webhook shape; events spread over `entries` entries."""
    groups = [list(events[i::entries]) for i in range(entries)]
    return {"object": "page", "entry": [{"id": "PAGE_ID", "time": int(time.time() * 1000), "messaging": group}
                                        for group in groups]}


def dm_event(sender: str, text: str, event_id: Optional[str] = None, quick_reply: Optional[str] = None) -> Dict:
    data = {"text": text, "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []}}
    if quick_reply:
        data["quick_reply_response"] = {"type": "options", "metadata": quick_reply}
    return {"type": "message_create", "id": event_id or str(uuid.uuid4().int)[:18],
            "created_timestamp": str(int(time.time() * 1000)),
            "message_create": {"target": {"recipient_id": TWITTER_BOT_USER_ID}, "sender_id": sender,
                               "message_data": data}}


def dm_body(*events) -> Dict:
    return {"for_user_id": TWITTER_BOT_USER_ID, "direct_message_events": list(events),
            "users": {TWITTER_BOT_USER_ID: {"id": TWITTER_BOT_USER_ID, "screen_name": "helpmeunifi"}}}


def wait_for(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def widget_exchange(background_loop, url: str, frames: List[Dict], origin: Optional[str] = None,
                    until: Callable[[List[Dict]], bool] = lambda received: False, timeout: float = 30):
    async def run():
        received: List[Dict] = []
        headers = {"Origin": origin} if origin else {}
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url.replace("http", "ws", 1) + "/widget/ws", headers=headers) as socket:
                for frame in frames:
                    await socket.send_json(frame)
                deadline = time.monotonic() + timeout
                while not until(received) and time.monotonic() < deadline:
                    try:
                        message = await socket.receive(timeout=deadline - time.monotonic())
                    except TimeoutError:
                        break
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    received.append(json.loads(message.data))
        return received
    return background_loop.run(run(), timeout=timeout + 10)


def bot_texts(frames: List[Dict]) -> List[str]:
    return [f["message"]["text"] for f in frames if f["type"] == "message" and f["message"]["role"] == "bot"]


class OwnRedis:
    """A redis-server of this test's own on a free loopback port (never the shared one)."""

    def __init__(self, folder):
        self.port, self.folder, self.process = free_port(), folder, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                                        text=True).stdout.strip() == "PONG", timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
