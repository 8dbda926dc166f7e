"""The agents' review queue (bot/gateway/review.py, review_export.py) and what feeds it: the understanding Rasa
sends with each answer (bot/nlu/understanding.py). On SQLite and PostgreSQL."""
from datetime import date, datetime, timedelta

import pytest
import yaml

from bot.gateway.feedback import DOWN, UP, FeedbackStore
from bot.gateway.messages import InboundMessage, Reply
from bot.gateway.models import InboxMessage as InboxRecord
from bot.gateway.models import ReviewItem
from bot.gateway.review import (
    FELL_BACK,
    HANDED_OVER,
    LOW_CONFIDENCE,
    NOT_COVERED,
    RATED_DOWN,
    ReviewQueue,
    low_confidence_below,
    review_labels,
    review_reasons,
)
from bot.gateway.review_export import free_path, select_for_export, training_file
from bot.gateway.store import GatewayStore
from bot.nlu.understanding import FALLBACK_LABEL, RecentUnderstandings, Understanding, understanding_from_parse

T0 = datetime(2026, 12, 3, 9, 0, 0)


# --- understanding ------------------------------------------------------------------------------------------------

def test_the_understanding_of_a_parse():
    plain = {"intent": {"name": "greet", "confidence": 0.8}}
    assert understanding_from_parse(plain) == Understanding("greet", "greet", 0.8)
    retrieval = {"intent": {"name": "faq", "confidence": 0.9},
                 "response_selector": {"faq": {"response": {"intent_response_key": "faq/plans", "confidence": 0.5}}}}
    assert understanding_from_parse(retrieval) == Understanding("faq/plans", "faq/plans", pytest.approx(0.45))
    fell_back = {"intent": {"name": FALLBACK_LABEL, "confidence": 0.45},
                 "intent_ranking": [{"name": FALLBACK_LABEL, "confidence": 0.45}, {"name": "faq", "confidence": 0.3},
                                    {"name": "greet", "confidence": 0.2}],
                 "response_selector": retrieval["response_selector"]}
    understood = understanding_from_parse(fell_back)
    assert understood == Understanding(FALLBACK_LABEL, "faq/plans", pytest.approx(0.15)) and understood.fell_back
    # Unreadable input (InputGuard): the fallback alone.
    assert understanding_from_parse({"intent": {"name": FALLBACK_LABEL, "confidence": 1.0},
                                     "intent_ranking": [{"name": FALLBACK_LABEL}]}) == \
        Understanding(FALLBACK_LABEL, "", 0.0)
    assert understanding_from_parse({}) is None and understanding_from_parse({"intent": None}) is None


@pytest.mark.parametrize("header", [None, "", "not json", "[]", '{"label": "greet"}', '{"label": 3, "guess": "",'
                                    ' "confidence": 1}', '{"label": "", "guess": "", "confidence": 1}',
                                    '{"label": "greet", "guess": "greet", "confidence": "high"}',
                                    '{"label": "greet", "guess": "greet", "confidence": NaN}',
                                    '{"label": "greet", "guess": "greet", "confidence": true}',
                                    '{"label": "%s", "guess": "", "confidence": 1}' % ("x" * 101)])
def test_a_damaged_understanding_header_is_ignored(header):
    assert Understanding.from_header(header) is None


def test_the_understanding_header_round_trips_and_clamps():
    understanding = Understanding("faq/plans", "faq/plans", 0.123456)
    assert Understanding.from_header(understanding.header_value()) == Understanding("faq/plans", "faq/plans", 0.1235)
    assert Understanding.from_header('{"label": "greet", "guess": "greet", "confidence": 7}').confidence == 1.0


def test_recent_understandings_are_taken_once_and_bounded():
    recent = RecentUnderstandings(capacity=3)
    for number in range(5):
        recent.put(f"m{number}", Understanding("greet", "greet", number / 10))
    assert len(recent) == 3 and recent.take("m0") is None              # pushed out (its turn broke off)
    assert recent.take("m4").confidence == 0.4 and recent.take("m4") is None
    assert recent.take(None) is None


# --- which messages go to the queue -------------------------------------------------------------------------------

def test_review_reasons():
    below = 0.5
    sure, unsure = Understanding("faq/plans", "faq/plans", 0.9), Understanding("faq/plans", "faq/plans", 0.3)
    fell_back = Understanding(FALLBACK_LABEL, "greet", 0.2)
    assert review_reasons(sure, None, True, below) == []
    assert review_reasons(unsure, None, True, below) == [LOW_CONFIDENCE]
    assert review_reasons(fell_back, None, True, below) == [FELL_BACK]                # not also "low confidence"
    assert review_reasons(fell_back, "fallback", True, below) == [FELL_BACK, HANDED_OVER]
    assert review_reasons(sure, "request_human", True, below) == [HANDED_OVER]
    assert review_reasons(None, None, True, below) == []                              # an older Rasa: no header
    assert review_reasons(fell_back, "request_human", False, below) == []             # a button: never
    assert 0 < low_confidence_below() < 1


def test_every_label_an_agent_can_give_has_a_title():
    labels = review_labels()                        # a KeyError here: an intent without a title in review.yml
    assert labels[NOT_COVERED] == "Not covered by our documents"
    assert "faq/plans" in labels and "greet" in labels and "ask_outstanding_balance" in labels
    assert all(title.strip() for title in labels.values())


# --- the queue in the store ---------------------------------------------------------------------------------------

@pytest.fixture
def queue_store(account_store_url):
    store = GatewayStore(account_store_url)
    yield store, ReviewQueue(store)
    store.dispose()


def answered(store: GatewayStore, sender: str, text: str, understanding: Understanding, review, moment=T0,
             channel: str = "widget", language: str = "en", handoff=None):
    recorded = store.record_inbound(InboundMessage(channel, sender, f"m-{sender}-{moment.timestamp()}", text=text),
                                    language=language, now=moment)
    store.claim(recorded.inbox_id, now=moment)
    entries = store.save_replies(recorded.inbox_id, [Reply("An answer", source="FAQ 2")], now=moment,
                                 delivered=True, understanding=understanding, review=review, handoff_reason=handoff)
    return recorded.inbox_id, entries


def test_messages_wait_redacted_grouped_by_similarity_newest_first(queue_store):
    store, queue = queue_store
    unsure = Understanding("faq/plans", "faq/plans", 0.3)
    fell_back = Understanding(FALLBACK_LABEL, "faq/cancel", 0.2)
    answered(store, "a", "how do i cancel ksos", fell_back, [FELL_BACK], T0)
    answered(store, "b", "berapa harga plan, e-mel saya aisyah@example.my", unsure, [LOW_CONFIDENCE],
             T0 + timedelta(minutes=1), language="ms")
    answered(store, "c", "how to cancel my ksos subscription", fell_back, [FELL_BACK], T0 + timedelta(minutes=2))
    answered(store, "d", "what are the plans", Understanding("faq/plans", "faq/plans", 0.95), [],
             T0 + timedelta(minutes=3))                                   # understood: not in the queue
    groups, waiting = queue.pending()
    assert waiting == 3
    assert [[m.text for m in group.messages] for group in groups] == [
        ["how to cancel my ksos subscription", "how do i cancel ksos"],       # the newest group first
        ["berapa harga plan, e-mel saya [email]"]]                              # redacted
    first = groups[0].messages[0].to_json()
    assert first["reasons"] == [FELL_BACK] and first["taken_for"] == FALLBACK_LABEL and first["guess"] == "faq/cancel"
    assert first["channel"] == "widget" and first["received_at"].endswith("Z")
    assert groups[1].messages[0].language == "ms" and groups[1].messages[0].confidence == pytest.approx(0.3)
    with store.session() as session:                                     # the understanding is kept with each message
        assert session.query(InboxRecord).filter_by(text="what are the plans").one().understanding == {
            "label": "faq/plans", "guess": "faq/plans", "confidence": 0.95}


def test_a_rated_down_answer_sends_its_question_to_the_queue(queue_store):
    store, queue = queue_store
    sure = Understanding("faq/plans", "faq/plans", 0.9)
    inbox_id, entries = answered(store, "a", "harga bulanan?", sure, [])
    assert queue.pending() == ([], 0)
    feedback = FeedbackStore(store)
    feedback.record("widget:a", UP, entries[0]["seq"], now=T0)
    assert queue.pending()[1] == 0                                        # a 👍: nothing to review
    _, more = answered(store, "a", "and for 10 devices?", sure, [], T0 + timedelta(minutes=1))
    feedback.record("widget:a", DOWN, more[0]["seq"], now=T0)
    groups, waiting = queue.pending()
    assert waiting == 1 and groups[0].messages[0].text == "and for 10 devices?"
    assert groups[0].messages[0].reasons == (RATED_DOWN,)
    # Low confidence and a 👎 on one message: one item with both reasons.
    _, third = answered(store, "a", "boleh guna kat mac?", Understanding("faq/plans", "faq/plans", 0.2),
                        [LOW_CONFIDENCE], T0 + timedelta(minutes=2))
    feedback.record("widget:a", DOWN, third[0]["seq"], now=T0)
    groups, waiting = queue.pending()
    assert waiting == 2 and groups[0].messages[0].reasons == (LOW_CONFIDENCE, RATED_DOWN)


def test_labelling_keeps_the_first_label_and_refuses_unknown_labels(queue_store):
    store, queue = queue_store
    fell_back = Understanding(FALLBACK_LABEL, "greet", 0.1)
    for number in range(3):
        answered(store, f"s{number}", f"question number {number} about something odd", fell_back, [FELL_BACK],
                 T0 + timedelta(minutes=number))
    groups, _ = queue.pending()
    ids = [message.id for group in groups for message in group.messages]
    with pytest.raises(ValueError):
        queue.label(ids, "faq/no_such_answer", agent_id=1)
    assert queue.label(ids[:2], "faq/plans", agent_id=1, now=T0) == 2
    assert queue.label(ids, NOT_COVERED, agent_id=2, now=T0) == 1           # only the one still waiting
    assert queue.pending() == ([], 0)
    labelled = queue.labelled()
    assert [(label, language) for _, _, label, language in labelled] == [("faq/plans", "en")] * 2   # not covered: out
    queue.mark_exported([labelled[0][0]], now=T0)
    assert len(queue.labelled()) == 1 and len(queue.labelled(include_exported=True)) == 2
    with store.session() as session:
        assert {item.labelled_by for item in session.query(ReviewItem)} == {1, 2}


# --- export -------------------------------------------------------------------------------------------------------

def test_export_leaves_out_what_is_trained_conflicting_or_held_out():
    trained = {"faq/plans": ["what are the plans"], "greet": ["hello there"]}
    held_out = ["can i use ksos on a mac computer at the office"]
    labelled = [(1, "how much is the starter plan per month", "faq/plans", "en"),
                (2, "What are the  plans", "faq/plans", "en"),                   # trained already
                (3, "hello there", "faq/plans", "en"),                           # trained as greet: a person decides
                (4, "can i use ksos on a mac computer in the office", "faq/system_requirements", "en"),   # held out
                (5, "berapa harga\nplan starter sebulan", "faq/plans", "ms"),
                (6, "how much is the starter plan per month", "faq/plans", "en")]   # the same twice: once
    export = select_for_export(labelled, trained, held_out)
    assert dict(export.by_label) == {"faq/plans": ["how much is the starter plan per month",
                                                   "berapa harga plan starter sebulan"]}
    assert export.already_trained == [("What are the plans", "faq/plans"),
                                      ("how much is the starter plan per month", "faq/plans")]
    assert export.trained_elsewhere == [("hello there", "faq/plans", "greet")]
    assert export.held_out == ["can i use ksos on a mac computer in the office"]
    assert sorted(export.exported_ids) == [1, 2, 4, 5, 6]                      # 3 waits for a person
    written = yaml.safe_load(training_file(export, date(2026, 12, 3)))
    assert written["version"] == "3.1"
    assert written["nlu"] == [{"intent": "faq/plans", "examples": "- how much is the starter plan per month\n"
                                                                  "- berapa harga plan starter sebulan\n"}]


def test_export_never_overwrites_a_file(tmp_path):
    day = date(2026, 12, 3)
    first = free_path(tmp_path, day)
    first.write_text("x")
    assert free_path(tmp_path, day).name == "reviewed_2026-12-03_2.yml"
