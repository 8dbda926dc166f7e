"""How our own clients (gateway, shell, bench, tests) reach the private Rasa server: its HTTP API with the token
in the query (as Rasa's --auth-token expects), and our gateway channel (bot/rasa_runtime/channel.py) with the same token
as a bearer header."""
from __future__ import annotations

from typing import Dict
from urllib.parse import urlencode

CHANNEL_PATH = "/webhooks/gateway/webhook"


def channel_headers(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_url(base_url: str, path: str, token: str) -> str:
    """`base_url` + `path` with the API token added to its query."""
    separator = "&" if "?" in path else "?"
    return f"{base_url.rstrip('/')}{path}{separator}{urlencode({'token': token})}"
