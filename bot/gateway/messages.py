"""What flows through the gateway: inbound customer messages and outbound replies, channel-neutral."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

MAX_TEXT_CHARS = 2000          # longer customer messages are answered with the too_long notice
MAX_PAYLOAD_CHARS = 1000
MAX_SOURCE_CHARS = 200           # gateway_transcript.source

ROLE_CUSTOMER, ROLE_BOT, ROLE_AGENT, ROLE_NOTICE = "customer", "bot", "agent", "notice"


def conversation_id(channel: str, sender_id: str) -> str:
    """One Rasa conversation per channel and sender: "facebook:2412..." , "twitter:9876", "widget:<session>"."""
    return f"{channel}:{sender_id}"


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True)
class InboundMessage:
    """One customer message as a channel adapter understood it. `message_id` is the channel's own id (Messenger
    mid, X event id, the widget's client id): the inbox keeps (channel, message_id) unique."""

    channel: str
    sender_id: str
    message_id: str
    text: str = ""
    payload: Optional[str] = None                      # a button / quick reply / postback payload, preferred
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def conversation_id(self) -> str:
        return conversation_id(self.channel, self.sender_id)

    @property
    def rasa_text(self) -> str:
        """What Rasa gets: the payload when there is one (e.g. /faq/plans), otherwise the typed text."""
        return self.payload or self.text


@dataclass(frozen=True)
class Reply:
    """One message to the customer: text, optional quick-reply buttons, and who speaks."""

    text: str
    buttons: Tuple[Button, ...] = ()
    role: str = ROLE_BOT
    image: Optional[str] = None
    source: Optional[str] = None      # the documents an answer comes from ("FAQ 22"): for agents, never its text

    @classmethod
    def from_rasa(cls, message: Mapping[str, Any]) -> "Reply":
        """A message as Rasa answers it ({"text", "buttons": [{"title", "payload"}], "image", "custom",
        "source"}, one per response; bot/rasa_runtime/channel.py)."""
        buttons = tuple(
            Button(str(b.get("title", "")), str(b.get("payload", "")))
            for b in (message.get("buttons") or []) if isinstance(b, Mapping) and b.get("payload")
        )
        source = message.get("source")
        return cls(text=str(message.get("text") or ""), buttons=buttons, image=message.get("image"),
                   source=source[:MAX_SOURCE_CHARS] if isinstance(source, str) and source else None)

    def to_json(self) -> Dict[str, Any]:
        return {
            "text": self.text, "role": self.role, "image": self.image,
            "buttons": [{"title": b.title, "payload": b.payload} for b in self.buttons],
            **({"source": self.source} if self.source else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Reply":
        return cls(
            text=data.get("text", ""), role=data.get("role", ROLE_BOT), image=data.get("image"),
            buttons=tuple(Button(b["title"], b["payload"]) for b in data.get("buttons") or []),
            source=data.get("source"),
        )


def replies_from_rasa(raw: Sequence[Mapping[str, Any]]) -> List[Reply]:
    """The replies a customer is sent for Rasa's answer: one per message that shows something (a bare `custom`
    marker, such as the handoff's, shows nothing)."""
    replies = [Reply.from_rasa(message) for message in raw]
    return [reply for reply in replies if reply.text or reply.buttons or reply.image]


_COMMAND_PREFIX = re.compile(r"^[\s/]+")


def as_words(text: str) -> str:
    """Typed text as words: Rasa reads a message starting with "/" (after stripping spaces) as a command (an
    intent, with slot values even), so every slash and space a customer typed in front is dropped ("/request_human",
    "/ /restart" -> "request_human", "restart")."""
    return _COMMAND_PREFIX.sub("", text)


def split_text(text: str, limit: int) -> List[str]:
    """Split `text` into chunks of at most `limit` characters, at a paragraph, line, sentence or word boundary
    when there is one in the second half of the chunk."""
    chunks: List[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for separator in ("\n\n", "\n", ". ", " "):
            position = window.rfind(separator)
            if position >= limit // 2:
                cut = position + (1 if separator == ". " else 0)
                break
        if cut <= 0:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        chunks.append(rest)
    return chunks


def shorten(label: str, limit: int) -> str:
    """A button label within a channel's limit, with an ellipsis when cut."""
    label = " ".join(label.split())
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


_OPTION_NUMBER = re.compile(r"^\s*(?:no\.?\s*|#)?(\d{1,2})\s*[.)]?\s*$", re.IGNORECASE)


def _option_words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def numbered_options(buttons: Tuple[Button, ...], hint: str) -> str:
    """Buttons as text for a channel that has none: the hint ("Reply with a number:"), then "1. Title" lines."""
    return "\n".join([hint, *(f"{number}. {button.title}" for number, button in enumerate(buttons, 1))])


def chosen_option(text: str, buttons: List[Button]) -> Optional[Button]:
    """The option a customer picked from a numbered list: by its number ("2", "2.", "no 2", "#2") or by its
    words (case, spacing and punctuation aside); None for anything else."""
    number = _OPTION_NUMBER.match(text or "")
    if number:
        index = int(number.group(1))
        return buttons[index - 1] if 1 <= index <= len(buttons) else None
    words = _option_words(text or "")
    matches = [button for button in buttons if words and _option_words(button.title) == words]
    return matches[0] if len(matches) == 1 else None
