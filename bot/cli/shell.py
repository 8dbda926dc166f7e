"""`make shell`: talk to the assistant in this terminal, through the private gateway channel of a Rasa server
and action server this command starts (both on loopback, with the checkout's tokens). Buttons are listed with
numbers: typing the number sends that button. Ctrl-D or /stop ends the conversation."""
from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from typing import Callable, Dict, List, Optional

from bot.rasa_runtime.api import CHANNEL_PATH, channel_headers
from bot.settings import Settings

STOP_WORDS = ("/stop", "/exit", "/quit")


def send(settings: Settings, sender: str, text: str) -> List[Dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.rasa_port}{CHANNEL_PATH}",
        data=json.dumps({"sender": sender, "message": text}).encode(), method="POST",
        headers={"Content-Type": "application/json", **channel_headers(settings.rasa_api_token)})
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.loads(response.read().decode() or "[]")
    return [message for message in answer if isinstance(message, dict)] if isinstance(answer, list) else []


def show(messages: List[Dict], write: Callable[[str], None]) -> List[Dict]:
    """Print the assistant's messages; returns the buttons of the last one, numbered from 1 as printed."""
    buttons: List[Dict] = []
    for message in messages:
        if message.get("text"):
            write(f"Bot: {message['text']}")
        if message.get("image"):
            write(f"     [image] {message['image']}")
        buttons = [b for b in message.get("buttons") or [] if isinstance(b, dict) and b.get("payload")]
        for number, button in enumerate(buttons, 1):
            write(f"     {number}. {button.get('title', '')}")
    return buttons


def chosen_text(typed: str, buttons: List[Dict]) -> str:
    """What to send for a typed line: the payload of button number N, otherwise the words themselves."""
    typed = typed.strip()
    if typed.isdigit() and 1 <= int(typed) <= len(buttons):
        return buttons[int(typed) - 1]["payload"]
    return typed


def talk(settings: Settings, read: Callable[[str], str] = input, write: Callable[[str], None] = print,
         sender: Optional[str] = None) -> int:
    sender = sender or f"shell-{secrets.token_hex(4)}"
    write("Talk to the KSOS assistant (English or Bahasa Melayu). Ctrl-D or /stop to end.")
    buttons: List[Dict] = []
    while True:
        try:
            typed = read("You: ")
        except (EOFError, KeyboardInterrupt):
            write("")
            return 0
        if typed.strip().lower() in STOP_WORDS:
            return 0
        if not typed.strip():
            continue
        try:
            buttons = show(send(settings, sender, chosen_text(typed, buttons)), write)
        except (urllib.error.URLError, OSError, ValueError) as error:
            write(f"(the assistant did not answer: {error})")
