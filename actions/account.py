"""Account actions: identity verification and the account-aware answers. Thin: the decisions and the wording
come from bot/accounts/ (rules, verification, store) and domain.yml."""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecuted, ActiveLoop, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from bot.accounts.identifiers import has_digits, mask_account_number, parse_account_number, parse_code
from bot.accounts.service import account_service
from bot.accounts.verification import CodeCheck
from bot.clock import to_malaysia

logger = logging.getLogger(__name__)

FORM = "verify_account_form"
ACCOUNT_INTENTS = ("lost_activation_code", "ask_termination_penalty", "ask_account_status",
                   "ask_outstanding_balance", "ask_my_subscription")
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
    "utter_verification_code_invalid", "utter_verification_code_wrong", "utter_verification_locked",
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
    "utter_account_codes_sent", "utter_account_no_codes",
)
RESET_VERIFICATION_SLOTS = [SlotSet("account_number", None), SlotSet("verification_code", None),
                            SlotSet("pending_account_intent", None), SlotSet("verification_offered", False)]


async def off_loop(function, *args):
    """Run a blocking store call in a worker thread, so one slow query doesn't hold up other conversations."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(function, *args))


def language_of(tracker: Tracker) -> str:
    return tracker.get_slot("language") or "en"


def latest_metadata(tracker: Tracker) -> Dict[str, Any]:
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return event.get("metadata") or {}
    return {}


def latest_intent(tracker: Tracker) -> Optional[str]:
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


def is_answer_attempt(tracker: Tracker) -> bool:
    text = (tracker.latest_message or {}).get("text") or ""
    return has_digits(text) or latest_intent(tracker) not in NOT_AN_ANSWER


def locked_until_text(moment, language: str) -> str:
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
            account = await off_loop(service.verified_account, tracker.sender_id, latest_metadata(tracker))
            if account is None:
                dispatcher.utter_message(response=f"utter_{intent}")
                dispatcher.utter_message(response="utter_offer_verification")
                return [SlotSet("verification_offered", True), SlotSet("pending_account_intent", intent)]
            mentioned = parse_account_number((tracker.latest_message or {}).get("text") or "")
            if mentioned and mentioned != account:
                dispatcher.utter_message(response="utter_account_other_account", account=mask_account_number(account))
            else:
                dispatcher.utter_message(text=await off_loop(service.answer, intent, account, domain.get("responses", {}),
                                                                    language_of(tracker)))
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
            if await off_loop(account_service().verified_account, tracker.sender_id, latest_metadata(tracker)):
                return []           # already verified (earlier, or by a token on this message)
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
        number = parse_account_number(str(value or ""))
        if number is None:
            dispatcher.utter_message(response="utter_account_number_invalid")
            return {"account_number": None}
        try:
            result = await off_loop(account_service().request_code, number, tracker.sender_id)
        except SQLAlchemyError:
            logger.exception("account store unavailable")
            dispatcher.utter_message(response="utter_account_unavailable")
            return {"account_number": number, "verification_code": OUTCOME_EXPIRED}
        if result.locked:
            dispatcher.utter_message(response="utter_verification_locked",
                                     locked_until=locked_until_text(result.locked_until, language_of(tracker)))
            return {"account_number": number, "verification_code": OUTCOME_LOCKED}
        dispatcher.utter_message(response="utter_verification_code_sent")
        return {"account_number": number}

    async def validate_verification_code(self, value: Any, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if value in (OUTCOME_VERIFIED, OUTCOME_LOCKED, OUTCOME_EXPIRED):
            return {"verification_code": value}
        code = parse_code(str(value or ""))
        if code is None:
            dispatcher.utter_message(response="utter_verification_code_invalid")
            return {"verification_code": None}
        number = tracker.get_slot("account_number")
        try:
            result = await off_loop(account_service().check_code, number, tracker.sender_id, code)
        except SQLAlchemyError:
            logger.exception("account store unavailable")
            dispatcher.utter_message(response="utter_account_unavailable")
            return {"verification_code": OUTCOME_EXPIRED}
        if result.outcome is CodeCheck.VERIFIED:
            return {"verification_code": OUTCOME_VERIFIED}
        if result.outcome is CodeCheck.WRONG:
            dispatcher.utter_message(response="utter_verification_code_wrong", attempts_left=result.attempts_left)
            return {"verification_code": None}
        if result.outcome is CodeCheck.LOCKED:
            dispatcher.utter_message(response="utter_verification_locked",
                                     locked_until=locked_until_text(result.locked_until, language_of(tracker)))
            return {"verification_code": OUTCOME_LOCKED}
        dispatcher.utter_message(response="utter_verification_expired" if result.outcome is CodeCheck.EXPIRED
                                 else "utter_verification_no_code")
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
            account = await off_loop(service.verified_account, tracker.sender_id, latest_metadata(tracker))
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


class ActionSessionStart(Action):
    """A new session keeps the conversation's language and forgets any verification."""

    def name(self) -> Text:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        try:
            await off_loop(account_service().log_out, tracker.sender_id)
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
