"""Replay a scripted conversation through a running gateway's website widget socket (`make run` first) and print it
as the README's Markdown: what the widget shows, the greeting, each answer whole, its buttons and its source line.

    .venv/bin/python -m tools.capture_conversation --language ms "akaun sy kena suspend ke?" ya 1000000003 "{code}"

`{code}` is replaced by the newest verification code the gateway emailed during the capture (read from
var/logs/outbox.log, where a checkout without SMTP_URL writes its emails).
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import aiohttp

from bot.paths import VAR_DIR

OUTBOX_LOG = VAR_DIR / "logs" / "outbox.log"
CODE = re.compile(r"verification code is (\d{6})")
TURN_SECONDS = 60.0


def markdown_lines(who: str, text: str) -> List[str]:
    """`**Who:** text` with Markdown hard line breaks, blank lines inside the message kept as `  `."""
    lines = text.split("\n")
    out = [f"**{who}:** {lines[0]}  "]
    out += [f"{line}  " if line else "  " for line in lines[1:]]
    return out


def shown(entry: Dict[str, Any]) -> List[str]:
    who = {"bot": "Assistant", "agent": "Agent", "notice": "Notice"}.get(entry.get("role", ""), "Assistant")
    lines = markdown_lines(who, str(entry.get("text", "")))
    if entry.get("buttons"):
        lines.append("[buttons: " + " | ".join(b["title"] for b in entry["buttons"]) + "]  ")
    if entry.get("source_line"):
        lines.append(f"*{entry['source_line']}*  ")
    return lines


def newest_code(log: Path, after: int) -> Optional[str]:
    if not log.exists():
        return None
    codes = CODE.findall(log.read_text(encoding="utf-8")[after:])
    return codes[-1] if codes else None


async def turn(socket: aiohttp.ClientWebSocketResponse, text: str, language: Optional[str]) -> List[Dict[str, Any]]:
    """Send `text`; the answer's entries, once the typing indicator is off after at least one of them."""
    client_id = str(uuid.uuid4())
    frame: Dict[str, Any] = {"type": "message", "id": client_id, "text": text}
    if language:
        frame["metadata"] = {"language": language}
    await socket.send_json(frame)
    entries: List[Dict[str, Any]] = []
    deadline = time.monotonic() + TURN_SECONDS
    while time.monotonic() < deadline:
        try:
            message = await socket.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        if message.get("type") == "message" and message["message"].get("role") != "customer":
            entries.append(message["message"])
        elif message.get("type") == "error":
            raise SystemExit(f"the gateway refused {text!r}: {message}")
        elif message.get("type") == "typing" and not message.get("on") and entries:
            break
    return entries


async def capture(url: str, language: Optional[str], messages: List[str]) -> List[str]:
    out: List[str] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as socket:
        await socket.send_json({"type": "hello", **({"language": language} if language else {})})
        for _ in range(3):                               # session, history, greeting (a first open)
            frame = await socket.receive_json(timeout=10)
            if frame.get("type") == "greeting":
                out += ["*(the customer opens the chat)*  "] + markdown_lines("Assistant", frame["text"]) + [""]
                break
        log_size = OUTBOX_LOG.stat().st_size if OUTBOX_LOG.exists() else 0
        for text in messages:
            if "{code}" in text:
                code = None
                for _ in range(100):
                    code = newest_code(OUTBOX_LOG, log_size)
                    if code:
                        break
                    await asyncio.sleep(0.2)
                if code is None:
                    raise SystemExit(f"no verification code in {OUTBOX_LOG}")
                text = text.replace("{code}", code)
            out += markdown_lines("Customer", text)
            for entry in await turn(socket, text, language):
                out += shown(entry)
            out.append("")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080/widget/ws")
    parser.add_argument("--language", choices=("en", "ms"), help="the page's language (the widget's hint)")
    parser.add_argument("messages", nargs="+")
    args = parser.parse_args(argv)
    print("\n".join(asyncio.run(capture(args.url, args.language, args.messages))).rstrip() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
