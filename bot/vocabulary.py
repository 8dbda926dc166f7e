"""The names the assistant's parts share, each defined once: the retrieval intents and their full answer keys, and
the intents answered from the customer's own account."""
from __future__ import annotations

from typing import Any, Mapping, Optional

# Intents answered by a response selector: their answers are keyed "faq/plans", "support/eula" ...
RETRIEVAL_INTENTS = ("faq", "support")

LOST_ACTIVATION_CODE = "lost_activation_code"    # answered by e-mailing the codes again
# Account questions answered with figures computed for the verified customer, with no side effect (so agents'
# suggestions may show them too).
COMPUTED_ACCOUNT_INTENTS = ("ask_termination_penalty", "ask_account_status", "ask_outstanding_balance",
                            "ask_my_subscription")
ACCOUNT_INTENTS = (LOST_ACTIVATION_CODE, *COMPUTED_ACCOUNT_INTENTS)


def is_retrieval_answer(label: str) -> bool:
    """"faq/plans", "support/eula": an answer of a retrieval intent, i.e. of the knowledge base (not "greet", not an
    account intent, not the bare intent "faq")."""
    return "/" in label


# The entity that carries a second question's answer key ("faq/payment_methods") asked in the same message.
SECOND_QUESTION_ENTITY = "second_question"

# A ResponseSelector without `retrieval_intent` answers for all of them, under this key of the parse.
DEFAULT_SELECTOR = "default"


def selected_response(parse_data: Mapping[str, Any], intent: Optional[str]) -> Mapping[str, Any]:
    """The response selector's pick for retrieval intent `intent` ({"intent_response_key", "confidence" ...}):
    its own selector's, else the one selector's for all of them; {} for none or another intent."""
    if intent not in RETRIEVAL_INTENTS:
        return {}
    selector = parse_data.get("response_selector") or {}
    picked = selector.get(intent) or selector.get(DEFAULT_SELECTOR) or {}
    response = picked.get("response") if isinstance(picked, Mapping) else None
    return response if isinstance(response, Mapping) else {}


def full_label(parse_data: Mapping[str, Any], intent: Optional[str]) -> str:
    """"faq/plans" for a retrieval intent (its response selector's pick), else the intent name ("" for none)."""
    key = selected_response(parse_data, intent).get("intent_response_key")
    return str(key) if key else intent or ""


def response_source(message: Mapping[str, Any]) -> Optional[str]:
    """The documents a response comes from: its `metadata: {source}` in the domain. Rasa passes a response's
    metadata on with the message (nested or merged) and keeps it on the bot event of the tracker."""
    metadata = message.get("metadata")
    source = metadata.get("source") if isinstance(metadata, dict) else message.get("source")
    return source if isinstance(source, str) and source else None
