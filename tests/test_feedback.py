"""Customers' 👍 / 👎 on answers (bot/gateway/feedback.py): kept once per answer, on SQLite and PostgreSQL."""
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from bot.gateway.feedback import DOWN, UP, FeedbackStore, feedback_payload, feedback_prompt, feedback_reply, rating_of
from bot.gateway.messages import ROLE_NOTICE, InboundMessage, Reply
from bot.gateway.models import InboxMessage as InboxRecord
from bot.gateway.store import GatewayStore

T0 = datetime(2026, 12, 3, 9, 0, 0)


@pytest.fixture
def stores(account_store_url):
    store = GatewayStore(account_store_url)
    yield store, FeedbackStore(store)
    store.dispose()


def conversation_with_answers(store: GatewayStore, sender: str = "U1", language: str = "ms"):
    """A Messenger conversation: the customer's question, an answer from the documents, a notice, an account
    answer (no source). Returns the transcript entries' seqs."""
    recorded = store.record_inbound(InboundMessage("facebook", sender, f"m-{sender}", text="harga?"),
                                    language=language, now=T0)
    store.claim(recorded.inbox_id, now=T0)
    entries = store.save_replies(recorded.inbox_id, [Reply("RM30 sebulan", source="FAQ 2"),
                                                     Reply("Akaun anda aktif.")], now=T0, delivered=True)
    notice = store.record_notice(f"facebook:{sender}", Reply("Ejen telah menyertai", role=ROLE_NOTICE), now=T0)
    return recorded.entry["seq"], entries[0]["seq"], entries[1]["seq"], notice["seq"]


def test_an_answer_keeps_its_first_rating_with_the_channel_and_language(stores):
    store, feedback = stores
    question, faq_answer, account_answer, notice = conversation_with_answers(store)
    first = feedback.record("facebook:U1", DOWN, faq_answer, now=T0)
    assert first == (faq_answer, DOWN, True)
    assert feedback.record("facebook:U1", UP, faq_answer, now=T0) == (faq_answer, DOWN, False)   # kept: the first
    assert feedback.record("facebook:U1", UP, account_answer, now=T0) == (account_answer, UP, True)
    assert feedback.ratings("facebook:U1") == {faq_answer: DOWN, account_answer: UP}
    # Only the assistant's answers of this conversation can be rated.
    assert feedback.record("facebook:U1", UP, question) is None
    assert feedback.record("facebook:U1", UP, notice) is None
    assert feedback.record("facebook:U1", UP, 10_000) is None
    conversation_with_answers(store, sender="U2")
    assert feedback.record("facebook:U2", UP, faq_answer) is None
    with pytest.raises(ValueError):
        feedback.record("facebook:U1", "meh", faq_answer)


def test_without_a_seq_the_latest_answer_from_the_documents_is_rated(stores):
    store, feedback = stores
    _, faq_answer, _, _ = conversation_with_answers(store)
    assert feedback.record("facebook:U1", UP, now=T0) == (faq_answer, UP, True)          # not the account answer
    assert feedback.record("facebook:nobody", UP) is None


def test_the_prompt_is_saved_with_the_first_answer_it_follows_only(stores):
    store, _ = stores
    conversation_with_answers(store)                       # answered without a prompt
    recorded = store.record_inbound(InboundMessage("facebook", "U1", "m-2", text="boost?"), now=T0)
    store.claim(recorded.inbox_id, now=T0)
    replies = [Reply("Boost, yes", source="FAQ 22")]
    store.save_replies(recorded.inbox_id, replies, now=T0, feedback_prompt=feedback_prompt)
    assert [r.text for r in replies] == ["Boost, yes", "Adakah jawapan ini membantu?"]      # in its language
    with store.session() as session:                       # saved with the answer: a replica taking it over
        saved = session.get(InboxRecord, recorded.inbox_id).replies      # delivers the same two
    assert [r["text"] for r in saved] == ["Boost, yes", "Adakah jawapan ini membantu?"]
    assert [b["title"] for b in saved[1]["buttons"]] == ["👍", "👎"]
    for index, reply in enumerate(replies):
        store.record_delivery(recorded.inbox_id, index, reply, now=T0)
    later = store.record_inbound(InboundMessage("facebook", "U1", "m-3", text="jompay?"), now=T0)
    store.claim(later.inbox_id, now=T0)
    again = [Reply("JomPAY 8888", source="FAQ 22")]
    store.save_replies(later.inbox_id, again, now=T0, feedback_prompt=feedback_prompt)
    assert [r.text for r in again] == ["JomPAY 8888"]                                       # once


def test_two_replicas_rating_one_answer_at_once_keep_one_rating(account_store_url):
    stores = [GatewayStore(account_store_url, f"r{n}") for n in range(2)]
    try:
        _, answer, _, _ = conversation_with_answers(stores[0])
        feedbacks = [FeedbackStore(store) for store in stores]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda n: feedbacks[n % 2].record("facebook:U1", (UP, DOWN)[n % 2], answer),
                                    range(8)))
        assert sum(result.new for result in results) == 1
        assert len({result.rating for result in results}) == 1
        assert len(feedbacks[1].ratings("facebook:U1")) == 1
    finally:
        for store in stores:
            store.dispose()


def test_the_quick_replies_and_answers_of_feedback():
    assert rating_of(feedback_payload(UP)) == UP and rating_of(feedback_payload(DOWN)) == DOWN
    assert rating_of('/feedback{"rating": "down"}') == DOWN
    for other in (None, "", "/feedback", '/feedback{"rating":"meh"}', '/feedback{"rating":"up"} x', "/affirm"):
        assert rating_of(other) is None
    with pytest.raises(ValueError):
        feedback_payload("meh")
    prompt = feedback_prompt("ms")
    assert prompt.text == "Adakah jawapan ini membantu?" and [b.title for b in prompt.buttons] == ["👍", "👎"]
    assert feedback_reply(UP, "en").text == "Thank you for your feedback!" and not feedback_reply(UP, "en").buttons
    sorry = feedback_reply(DOWN, "ms")
    assert "help@tm.com.my" in sorry.text and "Pusat Hubungan Unifi" in sorry.text
    assert [(b.title, b.payload) for b in sorry.buttons] == [("Bercakap dengan ejen", "/request_human")]
