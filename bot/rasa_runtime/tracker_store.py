"""Rasa's SQL tracker store, keeping no personal data the customer typed (selected in endpoints.yml).

Rasa keeps every event of every conversation. Before an event is written, what the customer typed is redacted
with bot/privacy/redaction.py (emails, phones, NRIC, passports, card numbers, BRNs, account numbers, activation and
one-time codes): user messages (text, the parse's text and entity values, metadata), slot values and entity
events. The actions still see the words of the current turn: Rasa hands them the tracker it holds in memory;
only what is stored, and so every later turn, the reports and the HTTP API, gets the redacted copy. Metadata
the gateway passes for one turn only (the client's address for the verification limits) is not stored at all.

The account number a conversation is being verified for is kept server-side (bot/accounts/verification.py),
never only in a slot, so nothing the next turn needs is lost to the redaction.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event

from bot.privacy.redaction import redact

# Metadata for the current turn only: never written to the tracker store.
TURN_ONLY_METADATA = ("client_ip", "identity_token")


def redact_json(value: Any) -> Any:
    """`value` with every string in it redacted and the turn-only metadata dropped, wherever it is (Rasa also
    copies a session's first metadata into the slot `session_started_metadata`)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    if isinstance(value, dict):
        return {key: redact_json(item) for key, item in value.items() if key not in TURN_ONLY_METADATA}
    return value


def redact_event(data: Dict[str, Any]) -> Dict[str, Any]:
    """A serialised Rasa event as it may be stored."""
    kind = data.get("event")
    data = dict(data)
    if kind == "user":
        data["text"] = redact_json(data.get("text"))
        parse = dict(data.get("parse_data") or {})
        if parse:
            # The parse holds the text as our normaliser rewrote it ("x" -> "tak"), which can break an address
            # beyond recognition: it is stored as the customer's own words, redacted.
            parse["text"] = data["text"]
            for part in ("entities", "metadata"):
                if part in parse:
                    parse[part] = redact_json(parse[part])
            data["parse_data"] = parse
    if kind in ("slot", "entities"):
        data["value"] = redact_json(data.get("value"))
    if isinstance(data.get("metadata"), dict):
        data["metadata"] = redact_json(data["metadata"])
    return data


class RedactingTrackerStore(SQLTrackerStore):
    """SQLTrackerStore whose new events are redacted on the way to the database."""

    def _additional_events(self, session, tracker) -> Iterator[Event]:
        for event in super()._additional_events(session, tracker):
            redacted = Event.from_parameters(redact_event(event.as_dict()))
            yield redacted if redacted is not None else event
