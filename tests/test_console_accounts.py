"""What the console shows of a verified customer, and account-aware suggestions, on the demo accounts (SQLite and
PostgreSQL), without Rasa: the model's scores are given as parse data."""
import pytest

from bot.accounts.service import AccountService
from bot.accounts.store import account_store
from bot.accounts.verification import mark_verified
from bot.clock import now_utc
from bot.gateway.agent_directory import AgentDirectory
from bot.gateway.calls import DatabaseCalls
from bot.gateway.config import GatewaySettings
from bot.gateway.console import Console, parse_suggestion, same_origin
from bot.gateway.handoffs import HandoffStore
from bot.gateway.review import ReviewQueue
from bot.gateway.store import GatewayStore
from bot.gateway.suggestion_log import SuggestionLog
from conftest import TEST_SECRETS

VERIFIED, ANONYMOUS = "widget:verified-customer", "widget:anonymous-customer"


def conversation(conversation_id, channel="widget"):
    return {"conversation_id": conversation_id, "channel": channel}


def penalty_question():
    return {
        "intent": {"name": "ask_termination_penalty", "confidence": 0.9},
        "intent_ranking": [{"name": "ask_termination_penalty", "confidence": 0.9}, {"name": "faq", "confidence": 0.1}],
        "response_selector": {"faq": {"ranking": [{"intent_response_key": "faq/plans", "confidence": 1.0}]}},
    }


@pytest.fixture
def console(demo_store, account_store_url):
    settings = GatewaySettings.from_env({**TEST_SECRETS, "DATABASE_URL": account_store_url})
    store, db = GatewayStore(account_store_url), DatabaseCalls()
    accounts = AccountService(settings.shared, store=account_store(account_store_url,
                                                                   settings.shared.data_encryption_key))
    mark_verified(demo_store, VERIFIED, "1000000003", "code", now_utc(), channel="widget")
    yield Console(settings, store, db, AgentDirectory(store), HandoffStore(store), SuggestionLog(store), accounts,
                  rasa=None, wake_worker=lambda: None, review=ReviewQueue(store))
    store.dispose()
    db.close()


def test_the_verified_account_summary_masks_the_number(console):
    summary = console._account(VERIFIED, "widget")
    assert summary["account_number"] == "******0003" and summary["business_name"] == "Restoran Selera Kampung"
    assert summary["status"] == "suspended" and summary["outstanding"].startswith("RM")
    assert summary["subscriptions"] and all(s["contract_end"] and s["monthly_fee"].startswith("RM")
                                            for s in summary["subscriptions"])
    assert console._account(ANONYMOUS, "widget") is None
    assert console._account(VERIFIED, "facebook") is None          # verified on the widget only


def test_account_aware_suggestions_only_for_the_verified_customer(console):
    own = console._suggestions(penalty_question(), "berapa penalti kalau saya tamatkan sekarang", "ms",
                               conversation(VERIFIED))
    assert own[0].key == "ask_termination_penalty" and own[0].account_aware
    assert "RM" in own[0].answer and "0003" in own[0].answer          # the customer's own figures, in Malay
    general = console._suggestions(penalty_question(), "berapa penalti kalau saya tamatkan sekarang", "ms",
                                   conversation(ANONYMOUS))
    assert general[0].key == "ask_termination_penalty" and not general[0].account_aware
    assert general[0].answer.startswith("• Selepas tempoh kontrak minimum")
    no_conversation = console._suggestions(None, "how do i pay my bill", "en", None)
    assert no_conversation and not any(s.account_aware for s in no_conversation)


def test_parse_suggestion_and_same_origin():
    assert parse_suggestion({"set_id": 4, "index": 0}) == (4, 0)
    assert parse_suggestion({"set_id": True, "index": 0}) is None
    assert parse_suggestion({"set_id": "4", "index": 0}) is None and parse_suggestion(None) is None

    class Request:
        def __init__(self, origin):
            self.headers = {"Origin": origin} if origin is not None else {}
            self.host = "chat.example.my"

    assert same_origin(Request(None)) and same_origin(Request("https://chat.example.my"))
    assert not same_origin(Request("https://evil.example")) and not same_origin(Request("null"))
