"""Rasa SDK custom actions. Thin: the decisions are made by plain functions in bot/."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.dialogue.fallback import CONTACT, UNREADABLE, consecutive_misses, fallback_step, payload_for, rank_candidates
from bot.dialogue.handoff import (
    FALLBACK,
    REQUEST_HUMAN,
    can_hand_over,
    events_since_last_handoff,
    handoff_marker,
    handoff_response,
)
from bot.dialogue.knowledge import knowledge_base, ui_labels
from bot.nlu.input_check import input_problem
from bot.vocabulary import SECOND_QUESTION_ENTITY, is_retrieval_answer

# Responses that only custom actions send (so no rule names them; `rasa data validate` reports them unused).
RESPONSES_SENT_BY_ACTIONS = (
    "utter_also_asked",
    "utter_did_you_mean",
    "utter_ask_rephrase",
    "utter_input_empty",
    "utter_input_no_words",
    "utter_input_unsupported_script",
    "utter_handoff",
    "utter_handoff_after_fallback",
    "utter_request_human",
)


def user_intents(tracker: Tracker) -> List[Text]:
    """Intents of the conversation's user messages since the latest handoff, oldest first; UNREADABLE for
    unreadable input."""
    return [
        UNREADABLE
        if input_problem(event.get("text")) is not None
        else ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        for event in events_since_last_handoff(tracker.events_after_latest_restart())
        if event.get("event") == "user"
    ]


def hand_over(dispatcher: CollectingDispatcher, tracker: Tracker, reason: Text) -> None:
    """Tell the customer an agent will join (and mark the message for the gateway), or, where no agent can take
    over (outside the gateway's channels), give the FAQ 11 contact channels."""
    channel = tracker.get_latest_input_channel()
    response = handoff_response(reason, channel)
    if can_hand_over(channel):
        dispatcher.utter_message(response=response,
                                 json_message=handoff_marker(reason, tracker.get_slot("language")))
    else:
        dispatcher.utter_message(response=response)


class ActionHandoff(Action):
    """The customer asked for a person."""

    def name(self) -> Text:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        hand_over(dispatcher, tracker, REQUEST_HUMAN)
        return []


class ActionNluFallback(Action):
    """First miss: "did you mean…?" with the best candidates as buttons; second miss: a human agent (or the FAQ
    11 channels where there is none)."""

    def name(self) -> Text:
        return "action_nlu_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        latest = tracker.latest_message or {}
        problem = input_problem(latest.get("text"))
        if problem is not None:
            dispatcher.utter_message(response=f"utter_input_{problem}")
            return []
        if fallback_step(consecutive_misses(user_intents(tracker))) == CONTACT:
            hand_over(dispatcher, tracker, FALLBACK)
            return []
        kb = knowledge_base()
        candidates = rank_candidates(latest, kb.keys())
        if not candidates:
            dispatcher.utter_message(response="utter_ask_rephrase")
            return []
        language = tracker.get_slot("language")
        buttons = [{"title": kb.get(key).title(language), "payload": payload_for(key)} for key, _ in candidates]
        none_label = ui_labels()["none_of_these"]
        buttons.append({"title": none_label.get(language, none_label["en"]), "payload": "/deny"})
        dispatcher.utter_message(response="utter_did_you_mean", buttons=buttons)
        return []


class ActionAnswerSecondQuestion(Action):
    """A second question in the same message ("how much is Starter? and can I pay with JomPAY?"): its answer of
    the knowledge base, which the NLU found in a part of the message (entity `second_question`,
    bot/nlu/questions.py), after a line that names it."""

    def name(self) -> Text:
        return "action_answer_second_question"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        kb = knowledge_base()
        key = next(tracker.get_latest_entity_values(SECOND_QUESTION_ENTITY), None)
        if key is None or key not in kb or not is_retrieval_answer(key):
            return []
        answer = kb.get(key)
        dispatcher.utter_message(response="utter_also_asked", title=answer.title(tracker.get_slot("language")))
        dispatcher.utter_message(response=answer.response)
        return []
