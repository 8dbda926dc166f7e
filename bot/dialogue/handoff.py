"""Handing a conversation over to the human agents: when, with which message, and how the gateway hears of it.

The assistant decides (actions/actions.py calls these functions); the gateway does the rest. The handoff message
carries a custom JSON part {"handoff": {"reason": ...}}: the gateway sees it in Rasa's replies, opens a handoff
and keeps the assistant silent until an agent resolves it. Conversations outside the gateway's customer channels
(Rasa asked directly: `make shell`, the bench) have no agents behind them, so they get the FAQ 11 contact channels
instead.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional

from bot.nlu.language import SUPPORTED_LANGUAGES

# The gateway's channels (bot/gateway/channels/): only these have an agent console behind them.
HANDOFF_CHANNELS = ("widget", "facebook", "twitter")
HANDOFF_KEY = "handoff"
REQUEST_HUMAN, FALLBACK = "request_human", "fallback"

# reason -> (response when an agent can take over, response when only the contact channels can help)
RESPONSES = {
    REQUEST_HUMAN: ("utter_handoff", "utter_request_human"),
    FALLBACK: ("utter_handoff_after_fallback", "utter_fallback_contact"),
}


def can_hand_over(input_channel: Optional[str]) -> bool:
    return input_channel in HANDOFF_CHANNELS


def handoff_response(reason: str, input_channel: Optional[str]) -> str:
    """The response to send for a handoff `reason` on `input_channel`."""
    with_agent, contacts_only = RESPONSES[reason]
    return with_agent if can_hand_over(input_channel) else contacts_only


def handoff_marker(reason: str, language: Optional[str]) -> Dict[str, Any]:
    """The custom JSON part of the handoff message that tells the gateway to open a handoff, with the language
    the assistant speaks with the customer (the agents' queue, suggestions and notices use it)."""
    return {HANDOFF_KEY: {"reason": reason, "language": language}}


def handoff_reason(custom: Any) -> Optional[str]:
    """The reason of a handoff marker (a bot message's custom JSON), or None if `custom` is not one."""
    if isinstance(custom, Mapping) and isinstance(custom.get(HANDOFF_KEY), Mapping):
        reason = custom[HANDOFF_KEY].get("reason")
        return reason if reason in RESPONSES else None
    return None


def handoff_language(custom: Any) -> Optional[str]:
    """The conversation's language in a handoff marker ('en' / 'ms'), or None."""
    if handoff_reason(custom) is None:
        return None
    language = custom[HANDOFF_KEY].get("language")
    return language if language in SUPPORTED_LANGUAGES else None


def events_since_last_handoff(events: Iterable[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """The tracker events after the latest handoff message (all of them if there was none): misses are counted
    from there, so a conversation an agent handed back does not go straight back to the agents."""
    events = list(events)
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if event.get("event") == "bot" and handoff_reason((event.get("data") or {}).get("custom")):
            return events[index + 1:]
    return events
