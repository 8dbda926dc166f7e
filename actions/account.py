"""Account actions: identity verification and the account-aware answers. Thin: the decisions and the wording
come from bot/accounts/ (rules, verification, store) and domain.yml."""
from __future__ import annotations

import asyncio
import functools
import logging
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecuted, ActiveLoop, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from bot.accounts.identifiers import has_digits, mask_account_number, parse_account_number, parse_code
from bot.accounts.service import account_service
from bot.accounts.verification import RESPONSE_FLOOR_SECONDS, CodeCheck, Start
from bot.clock import to_malaysia
from bot.vocabulary import ACCOUNT_INTENTS

logger = logging.getLogger(__name__)

FORM = "verify_account_form"
# While the form waits for a number or a code, a message without digits and with one of these intents is a
# question or a "stop", not an attempt: the form lets the rules in data/rules.yml handle it.
NOT_AN_ANSWER = ("faq", "support", "deny", "goodbye", "log_out", "request_human", "switch_language",
                 *ACCOUNT_INTENTS)
OUTCOME_VERIFIED, OUTCOME_LOCKED, OUTCOME_EXPIRED = "verified", "locked", "expired"
# Responses only these actions (or the form's questions) send: no rule names them, so `rasa data validate`
# reports them as unused.
RESPONSES_SENT_BY_ACCOUNT_ACTIONS = tuple(f"utter_{intent}" for intent in ACCOUNT_INTENTS) + (
    "utter_ask_account_number", "utter_ask_verification_code",
    "utter_offer_verification", "utter_account_number_invalid", "utter_verification_code_sent",
    "utter_verification_code_recent", "utter_verification_code_recent_new", "utter_verification_account_limit",
    "utter_verification_too_many", "utter_verification_code_used_up",
    "utter_verification_code_invalid", "utter_verification_code_wrong",
    "utter_verification_expired", "utter_verification_no_code", "utter_verified", "utter_already_verified",
    "utter_verification_waiting_question", "utter_verification_cancelled", "utter_logged_out",
    "utter_not_logged_in", "utter_account_other_account", "utter_account_unavailable",
    "utter_account_no_subscription", "utter_account_penalty_header", "utter_account_penalty_line",
    "utter_account_penalty_line_none", "utter_account_penalty_total", "utter_account_penalty_footer",
    "utter_account_status_active", "utter_account_status_suspended", "utter_account_plan_change_blocked",
    "utter_account_status_terminated",
    "utter_account_balance", "utter_account_last_payment", "utter_account_no_payment", "utter_account_autopay_on",
    "utter_account_autopay_off", "utter_account_balance_suspended", "utter_account_subscriptions_header",
    "utter_account_subscription_line", "utter_account_proration", "utter_account_downgrade_note",
    "utter_account_downgrade_note_policy",
    "utter_account_codes_sent", "utter_account_codes_recently_sent", "utter_account_no_codes",
)
RESET_VERIFICATION_SLOTS = [SlotSet("account_number", None), SlotSet("verification_code", None),
                            SlotSet("pending_account_intent", None), SlotSet("verification_offered", False)]


async def off_loop(function, *args):
    """Run a blocking store call in a worker thread, so one slow query doesn't hold up other conversations."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(function, *args))


async def off_loop_at_least(seconds: float, function, *args):
    """off_loop, taking at least `seconds`: a verification step answers in the same time whatever the account."""
    started = asyncio.get_running_loop().time()
    try:
        return await off_loop(function, *args)
    finally:
        await asyncio.sleep(max(0.0, started + seconds - asyncio.get_running_loop().time()))


def language_of(tracker: Tracker) -> str:
    return tracker.get_slot("language") or "en"


def latest_metadata(tracker: Tracker) -> Dict[str, Any]:
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return event.get("metadata") or {}
    return {}


def channel_of(tracker: Tracker) -> str:
    """The conversation's channel (widget, facebook, twitter; our gateway channel for other trusted clients):
    a verification holds on the channel it was given on only."""
    return tracker.get_latest_input_channel() or ""


def client_address(tracker: Tracker) -> Optional[str]:
    """The customer's address, which the gateway passes for this turn only (never stored in the tracker)."""
    address = latest_metadata(tracker).get("client_ip")
    return address if isinstance(address, str) else None


def latest_intent(tracker: Tracker) -> Optional[str]:
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


def is_answer_attempt(tracker: Tracker) -> bool:
    text = (tracker.latest_message or {}).get("text") or ""
    return has_digits(text) or latest_intent(tracker) not in NOT_AN_ANSWER


def local_time_text(moment, language: str) -> str:
    local = to_malaysia(moment)
    return local.strftime("%H:%M") + (" (waktu Malaysia)" if language == "ms" else " (Malaysia time)")


class ActionAccountAnswer(Action):
    """lost_activation_code, ask_termination_penalty, ask_account_status, ask_outstanding_balance,
    ask_my_subscription: the customer's own figures when verified; otherwise the general answer (FAQ) and an
    offer to verify."""

    def name(self) -> Text:
        return "action_account_answer"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        intent = latest_intent(tracker)
        if intent not in ACCOUNT_INTENTS:
            return []
        if tracker.active_loop_name == FORM:
            dispatcher.utter_message(response="utter_verification_waiting_question")
            return [SlotSet("pending_account_intent", intent)]
        service = account_service()
        try:
            account = await off_loop(service.verified_account, tracker.sender_id, channel_of(tracker))
            if account is None:
                dispatcher.utter_message(response=f"utter_{intent}")
                dispatcher.utter_message(response="utter_offer_verification")
                return [SlotSet("verification_offered", True), SlotSet("pending_account_intent", intent)]
            mentioned = parse_account_number((tracker.latest_message or {}).get("text") or "")
            if mentioned and mentioned != account:
                dispatcher.utter_message(response="utter_account_other_account", account=mask_account_number(account))
            else:
                answer = await off_loop(service.answer, intent, account, domain.get("responses", {}),
                                        language_of(tracker))
                dispatcher.utter_message(text=answer)
        except SQLAlchemyError:
            logger.exception("account store unavailable")
            dispatcher.utter_message(response="utter_account_unavailable")
        return [SlotSet("verification_offered", False), SlotSet("pending_account_intent", None)]


class ValidateVerifyAccountForm(FormValidationAction):
    """Account number -> one-time code by email -> the code. Never reveals whether an account exists."""

    def name(self) -> Text:
        return "validate_verify_account_form"

    async def required_slots(self, domain_slots, dispatcher, tracker, domain) -> List[Text]:
        try:
            if await off_loop(account_service().verified_account, tracker.sender_id, channel_of(tracker)):
                return []           # already verified (earlier, or by the website's identity token)
        except SQLAlchemyError:
            logger.exception("account store unavailable")
        return domain_slots

    async def extract_account_number(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if tracker.get_slot("requested_slot") != "account_number" or not is_answer_attempt(tracker):
            return {}
        return {"account_number": (tracker.latest_message or {}).get("text") or ""}

    async def extract_verification_code(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if tracker.get_slot("requested_slot") != "verification_code" or not is_answer_attempt(tracker):
            return {}
        return {"verification_code": (tracker.latest_message or {}).get("text") or ""}

    async def validate_account_number(self, value: Any, dispatcher, tracker, domain) -> Dict[Text, Any]:
        """The number is kept server-side with the challenge; the slot holds it masked (the tracker store keeps
        no account numbers)."""
        number = parse_account_number(str(value or ""))
        if number is None:
            dispatcher.utter_message(response="utter_account_number_invalid")
            return {"account_number": None}
        try:
            result = await off_loop_at_least(RESPONSE_FLOOR_SECONDS, account_service().request_code, number,
                                             tracker.sender_id, channel_of(tracker), client_address(tracker))
        except SQLAlchemyError:
            logger.exception("account store unavailable")
            dispatcher.utter_message(response="utter_account_unavailable")
            return {"account_number": mask_account_number(number), "verification_code": OUTCOME_EXPIRED}
        masked = mask_account_number(number)
        if result.outcome is Start.SENT:
            dispatcher.utter_message(response="utter_verification_code_sent",
                                     sender=account_service().sender_address)
            return {"account_number": masked}
        if result.outcome is Start.WAIT:
            # A code went to this number a moment ago: type that one (if it was for this conversation), or wait.
            dispatcher.utter_message(response="utter_verification_code_recent" if result.open_code
                                     else "utter_verification_code_recent_new")
            return {"account_number": masked if result.open_code else None}
        if result.outcome is Start.TOO_MANY:
            dispatcher.utter_message(response="utter_verification_too_many",
                                     retry_at=local_time_text(result.retry_at, language_of(tracker)))
        else:
            dispatcher.utter_message(response="utter_verification_account_limit")
        return {"account_number": masked, "verification_code": OUTCOME_LOCKED}

    async def validate_verification_code(self, value: Any, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if value in (OUTCOME_VERIFIED, OUTCOME_LOCKED, OUTCOME_EXPIRED):
            return {"verification_code": value}
        code = parse_code(str(value or ""))
        if code is None:
            dispatcher.utter_message(response="utter_verification_code_invalid")
            return {"verification_code": None}
        try:
            result = await off_loop_at_least(RESPONSE_FLOOR_SECONDS, account_service().check_code,
                                             tracker.sender_id, code, channel_of(tracker))
        except SQLAlchemyError:
            logger.exception("account store unavailable")
            dispatcher.utter_message(response="utter_account_unavailable")
            return {"verification_code": OUTCOME_EXPIRED}
        if result.outcome is CodeCheck.VERIFIED:
            return {"verification_code": OUTCOME_VERIFIED}
        if result.outcome is CodeCheck.WRONG:
            dispatcher.utter_message(response="utter_verification_code_wrong", attempts_left=result.attempts_left)
            return {"verification_code": None}
        if result.outcome is CodeCheck.ACCOUNT_LIMIT:
            dispatcher.utter_message(response="utter_verification_account_limit")
            return {"verification_code": OUTCOME_LOCKED}
        dispatcher.utter_message(response={
            CodeCheck.USED_UP: "utter_verification_code_used_up", CodeCheck.EXPIRED: "utter_verification_expired",
        }.get(result.outcome, "utter_verification_no_code"))
        return {"verification_code": OUTCOME_EXPIRED}


class ActionVerificationFinished(Action):
    """After the form: confirm, then answer the question that was waiting for verification."""

    def name(self) -> Text:
        return "action_verification_finished"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        service = account_service()
        language = language_of(tracker)
        try:
            account = await off_loop(service.verified_account, tracker.sender_id, channel_of(tracker))
            if account is not None:
                snapshot = await off_loop(service.store.snapshot, account)
                just_verified = tracker.get_slot("verification_code") == OUTCOME_VERIFIED
                dispatcher.utter_message(
                    response="utter_verified" if just_verified else "utter_already_verified",
                    account=mask_account_number(account), business=snapshot.business_name if snapshot else "")
                pending = tracker.get_slot("pending_account_intent")
                if pending in ACCOUNT_INTENTS:
                    dispatcher.utter_message(text=await off_loop(service.answer, pending, account,
                                                                        domain.get("responses", {}), language))
        except SQLAlchemyError:
            logger.exception("account store unavailable")
            dispatcher.utter_message(response="utter_account_unavailable")
        return list(RESET_VERIFICATION_SLOTS)


class ActionCancelVerification(Action):
    """"No" to the offer, or "cancel" / "log out" / "bye" during verification."""

    def name(self) -> Text:
        return "action_cancel_verification"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        if latest_intent(tracker) not in ("goodbye", "request_human"):
            dispatcher.utter_message(response="utter_verification_cancelled")
        return [ActiveLoop(None), SlotSet("requested_slot", None)] + list(RESET_VERIFICATION_SLOTS)


class ActionLogOut(Action):
    def name(self) -> Text:
        return "action_log_out"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        try:
            was_verified = await off_loop(account_service().log_out, tracker.sender_id)
        except SQLAlchemyError:
            logger.exception("account store unavailable")
            dispatcher.utter_message(response="utter_account_unavailable")
            return list(RESET_VERIFICATION_SLOTS)
        dispatcher.utter_message(response="utter_logged_out" if was_verified else "utter_not_logged_in")
        return list(RESET_VERIFICATION_SLOTS)


def last_event_time(tracker: Tracker) -> Optional[datetime]:
    """When the conversation's previous session last did something (naive UTC), or None for a new one. (Rasa
    records the new session's metadata as a slot just before this action: that is not the previous session.)"""
    stamps = [event["timestamp"] for event in tracker.events if isinstance(event.get("timestamp"), (int, float))
              and not (event.get("event") == "slot" and event.get("name") == "session_started_metadata")]
    return datetime.fromtimestamp(max(stamps), timezone.utc).replace(tzinfo=None) if stamps else None


class ActionSessionStart(Action):
    """A new session keeps the conversation's language and forgets the verification of the session before. (A
    verification given since — the website's identity token, checked by the gateway just before this first
    message — stays.)"""

    def name(self) -> Text:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        previous = last_event_time(tracker)
        try:
            if previous is not None:
                await off_loop(account_service().log_out, tracker.sender_id, previous)
        except SQLAlchemyError:
            logger.exception("account store unavailable: verification of %s not cleared", tracker.sender_id)
        events: List[Dict[Text, Any]] = [SessionStarted()]
        # The conversation's language carries over; a new conversation starts in the channel's hint (the
        # widget's EN/BM setting, sent as metadata "language") until the customer's own words say otherwise.
        # (The slot's initial value is English, so "has the customer written before?" decides which applies.)
        language = tracker.get_slot("language")
        hint = (tracker.get_slot("session_started_metadata") or {}).get("language")
        if hint in ("en", "ms") and not any(event.get("event") == "user" for event in tracker.events):
            language = hint
        if language:
            events.append(SlotSet("language", language))
        events.append(ActionExecuted("action_listen"))
        return events
