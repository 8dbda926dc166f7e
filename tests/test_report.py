"""`python -m bot report`: the metric functions over hand-made rows, then the whole path from real Rasa tracker
events (written by Rasa's own SQLTrackerStore) and gateway rows to the text, JSON and HTML reports."""
import argparse
import asyncio
import json
import re
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session

from bot.analytics.report import (
    ALL_TIME,
    ConversationRecord,
    FeedbackRow,
    HandoffRow,
    Period,
    SuggestionRow,
    TrackerEventRow,
    add_parser,
    build_report,
    channel_of,
    conversations_from_events,
    intent_key,
    load_gateway_rows,
    load_report,
    malaysia_midnight,
    period_from_options,
    read_database,
    render_html,
    render_text,
    report_json,
)
from bot.database import make_engine
from bot.gateway.models import Base, Conversation, Handoff, SuggestionSet

# --- the metrics over hand-made rows --------------------------------------------------------------------------

NOV = datetime(2026, 11, 10, 2, 0)     # 10 Nov 2026 10:00 Malaysia time, as naive UTC

CONVERSATIONS = [
    ConversationRecord("widget:a", "widget", "en", NOV, ("greet", "faq/plans")),
    ConversationRecord("widget:b", "widget", "ms", NOV + timedelta(days=1), ("faq/plans", "nlu_fallback",
                                                                              "request_human")),
    ConversationRecord("facebook:c", "facebook", "en", NOV + timedelta(days=2), ("nlu_fallback",)),
    ConversationRecord("d", "rest", "ms", datetime(2026, 10, 1, 2, 0), ("greet",)),
]
HANDOFFS = [
    HandoffRow("widget:b", "request_human", NOV, NOV + timedelta(seconds=60)),
    HandoffRow("widget:b", "fallback", NOV + timedelta(hours=1), None),            # still waiting
    HandoffRow("facebook:c", "fallback", NOV, NOV + timedelta(seconds=300)),
    HandoffRow("d", "request_human", NOV, NOV + timedelta(seconds=30)),
    HandoffRow("widget:ghost", "request_human", NOV, NOV + timedelta(seconds=9)),  # no such conversation
]
SUGGESTIONS = [
    SuggestionRow("widget:b", "widget", "ms", "used"),
    SuggestionRow("widget:b", "widget", "ms", "edited"),
    SuggestionRow("widget:b", "widget", "ms", "ignored"),
    SuggestionRow("facebook:c", "facebook", "en", "ignored"),
    SuggestionRow("facebook:c", "facebook", "en", "shown"),
    SuggestionRow("widget:ghost", "widget", "en", "used"),
    SuggestionRow("d", "rest", "ms", "used"),
]


def test_channel_is_the_gateway_prefix_of_the_sender_id():
    assert [channel_of(s) for s in ("widget:a1", "facebook:123", "twitter:9:x", "4f2a", "telegram:5", "widget")] \
        == ["widget", "facebook", "twitter", "rest", "rest", "rest"]


def test_retrieval_intents_are_reported_by_their_full_key():
    selected = {"parse_data": {"response_selector": {"faq": {"response": {"intent_response_key": "faq/plans"}}}}}
    assert intent_key("faq", selected) == "faq/plans"
    assert intent_key("faq", {"parse_data": {"response_selector": {"faq": {"response": {}}}}}) == "faq"
    assert intent_key("support", selected) == "support"                  # the selector answered another intent
    assert intent_key("greet", selected) == "greet"
    assert intent_key(None, {}) == "(no intent)"


def test_conversations_from_tracker_events():
    def slot(sender, value):
        return TrackerEventRow(sender, "slot", 5.0, None, json.dumps({"event": "slot", "name": "language",
                                                                      "value": value}))

    faq = json.dumps({"parse_data": {"response_selector": {"faq": {"response": {"intent_response_key": "faq/plans"}}}}})
    events = [
        slot("widget:a", "ms"),
        TrackerEventRow("widget:a", "user", 1_794_096_000.0, "greet"),
        TrackerEventRow("widget:a", "user", 1_794_096_060.0, "faq", faq),
        slot("widget:a", "en"),                           # the latest language wins
        slot("widget:a", None),                           # a reset is no language
        TrackerEventRow("b", "user", None, "nlu_fallback"),
        TrackerEventRow("b", "user", None, "nlu_fallback", json.dumps({"text": "blorp zzz"})),
        TrackerEventRow("twitter:c", "user", 1_794_096_000.0, "greet"),
        slot("facebook:quiet", "ms"),                     # no customer message: not a conversation
    ]
    records = conversations_from_events(events, {"twitter:c": "ms", "b": "zz"})
    assert records == [
        ConversationRecord("widget:a", "widget", "en", datetime(2026, 11, 8, 0, 0), ("greet", "faq/plans"),
                           (datetime(2026, 11, 8, 0, 0), datetime(2026, 11, 8, 0, 1))),
        ConversationRecord("b", "rest", "en", None, ("nlu_fallback", "nlu_fallback"), (), ("blorp zzz",)),
        ConversationRecord("twitter:c", "twitter", "ms", datetime(2026, 11, 8, 0, 0), ("greet",),
                           (datetime(2026, 11, 8, 0, 0),)),
    ]


def test_report_over_all_time():
    report = build_report(CONVERSATIONS, HANDOFFS, SUGGESTIONS)
    overall = report.overall
    assert (overall.conversations, overall.customer_messages, overall.handed_off, overall.contained) == (4, 7, 3, 1)
    assert overall.containment == 0.25 and overall.handoff_rate == 0.75
    assert overall.handed_off_by_reason == {"request_human": 2, "fallback": 2}      # widget:b had both
    assert overall.handoff_rate_for("fallback") == 0.5
    assert overall.median_wait_seconds == 60                                         # of 30, 60 and 300 s
    assert overall.fallbacks == 2 and overall.fallback_rate == pytest.approx(2 / 7)
    suggestions = overall.suggestions
    assert (suggestions.total, suggestions.used, suggestions.edited, suggestions.ignored, suggestions.open) \
        == (6, 2, 1, 2, 1)
    assert suggestions.acceptance == 0.6
    assert overall.top_intents() == [("faq/plans", 2), ("greet", 2), ("nlu_fallback", 2), ("request_human", 1)]

    english, malay = report.by_language["en"], report.by_language["ms"]
    assert (english.conversations, english.customer_messages, english.handed_off) == (2, 3, 1)
    assert english.containment == 0.5 and english.median_wait_seconds == 300
    assert english.fallback_rate == pytest.approx(1 / 3) and english.suggestions.acceptance == 0.0
    assert (malay.conversations, malay.customer_messages, malay.containment) == (2, 4, 0.0)
    assert malay.median_wait_seconds == 45 and malay.fallback_rate == 0.25
    assert (malay.suggestions.total, malay.suggestions.acceptance) == (4, 0.75)

    assert list(report.by_channel) == ["widget", "facebook", "twitter", "rest"]
    widget, twitter = report.by_channel["widget"], report.by_channel["twitter"]
    assert (widget.conversations, widget.handed_off, widget.containment, widget.median_wait_seconds) == (2, 1, 0.5, 60)
    assert (widget.suggestions.total, widget.suggestions.acceptance) == (3, pytest.approx(2 / 3))
    assert twitter.conversations == 0 and twitter.containment is None and twitter.fallback_rate is None
    assert twitter.suggestions.acceptance is None and twitter.median_wait_seconds is None


def test_a_period_keeps_the_conversations_that_started_in_it_with_their_handoffs_and_suggestions():
    period = period_from_options(date(2026, 11, 1), None, date(2026, 11, 22))
    assert period == Period(datetime(2026, 10, 31, 16, 0), None)
    report = build_report(CONVERSATIONS, HANDOFFS, SUGGESTIONS, period)
    overall = report.overall
    assert (overall.conversations, overall.handed_off, overall.median_wait_seconds) == (3, 2, 180)
    assert (overall.suggestions.total, overall.suggestions.acceptance) == (5, 0.5)
    assert report.by_channel["rest"].conversations == 0
    assert period.label() == "since 2026-11-01 (Malaysia time)"


def test_period_options():
    today = date(2026, 11, 22)
    assert period_from_options(None, None, today) == ALL_TIME and ALL_TIME.label() == "all time"
    last_week = period_from_options(None, 7, today)
    assert last_week == Period(malaysia_midnight(date(2026, 11, 16)), None)
    fortnight = period_from_options(date(2026, 11, 1), 14, today)
    assert fortnight.end == datetime(2026, 11, 14, 16, 0)
    assert fortnight.label() == "2026-11-01 to 2026-11-14 (Malaysia time)"
    assert not fortnight.contains(datetime(2026, 11, 14, 16, 0)) and fortnight.contains(datetime(2026, 11, 14, 15))
    assert not fortnight.contains(None) and ALL_TIME.contains(None)


def test_json_report_has_counts_rates_and_null_for_undefined_rates():
    data = json.loads(json.dumps(report_json(build_report(CONVERSATIONS, HANDOFFS, SUGGESTIONS))))
    assert data["period"] == {"label": "all time", "start_utc": None, "end_utc": None}
    assert data["overall"]["handoffs_by_reason"] == {"request_human": {"conversations": 2, "rate": 0.5},
                                                     "fallback": {"conversations": 2, "rate": 0.5}}
    assert data["overall"]["top_intents"][0] == {"intent": "faq/plans", "count": 2}
    twitter = data["by_channel"]["twitter"]
    assert twitter["conversations"] == 0 and twitter["containment"] is None and twitter["median_wait_seconds"] is None
    assert twitter["suggestions"]["acceptance"] is None and twitter["top_intents"] == []


def test_text_report_aligns_columns_and_says_na_without_a_denominator():
    text = render_text(build_report(CONVERSATIONS, HANDOFFS, SUGGESTIONS))
    lines = text.splitlines()
    assert lines[0] == "KSOS support report: all time"
    header = next(line for line in lines if line.split() == ["all", "en", "ms", "widget", "facebook", "twitter",
                                                              "rest"])
    containment = next(line for line in lines if line.strip().startswith("containment"))
    assert containment.split()[1:] == ["25.0%", "50.0%", "0.0%", "50.0%", "0.0%", "n/a", "0.0%"]
    assert len(containment) == len(header)                       # right-aligned under the headers
    assert re.search(r"median wait for an agent\s+1m 00s\s+5m 00s\s+45s", text)
    assert re.search(r"acceptance\s+60\.0%\s+0\.0%\s+75\.0%", text)
    assert re.search(r"faq/plans\s+2\s+1\s+1\s+2\s+0\s+0\s+0", text)


# --- from real tracker events and gateway rows -----------------------------------------------------------------

HOSTILE_INTENT = '<script>alert("x")</script>'
STARTED = datetime(2026, 11, 10, 2, 0, tzinfo=timezone.utc)     # 10 Nov 2026 10:00 Malaysia time


def write_tracker_store(url_path) -> None:
    """Five conversations (and one with no customer message) through Rasa's own SQLTrackerStore."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
    from rasa.shared.core.slots import TextSlot
    from rasa.shared.core.trackers import DialogueStateTracker

    def user(text, intent, at, selected=None):
        parse_data = {"intent": {"name": intent, "confidence": 0.9}, "entities": [], "text": text}
        if selected:
            retrieval = selected.split("/")[0]
            parse_data["response_selector"] = {
                "all_retrieval_intents": [retrieval],
                retrieval: {"response": {"intent_response_key": selected, "confidence": 0.8,
                                         "responses": [{"text": "..."}], "utter_action": f"utter_{selected}"},
                            "ranking": []},
            }
        return [UserUttered(text, parse_data["intent"], parse_data=parse_data, timestamp=at),
                ActionExecuted("utter_reply", timestamp=at + 1), BotUttered("...", timestamp=at + 1),
                ActionExecuted("action_listen", timestamp=at + 1)]

    def at(days=0.0, minutes=0.0):
        return (STARTED + timedelta(days=days, minutes=minutes)).timestamp()

    start = [ActionExecuted("action_session_start", timestamp=at()), SessionStarted(timestamp=at()),
             ActionExecuted("action_listen", timestamp=at())]
    conversations = {
        "widget:alice": [*start, *user("hi", "greet", at(0, 1)), *user("what plans", "faq", at(0, 2), "faq/plans")],
        "widget:bala": [*start, SlotSet("language", "ms", timestamp=at(1)), *user("hai", "greet", at(1, 1)),
                        *user("pelan apa", "faq", at(1, 2), "faq/plans"), *user("blah", "nlu_fallback", at(1, 3)),
                        *user("nak cakap dengan orang", "request_human", at(1, 4))],
        "facebook:123": [*start, SlotSet("language", "ms", timestamp=at(2)), *user("harga", "faq", at(2, 1)),
                         SlotSet("language", "en", timestamp=at(2, 2)), *user("???", "nlu_fallback", at(2, 3))],
        "twitter:77": [*start, *user("kod tak jalan", "support", at(3, 1), "support/activation_code"),
                       *user("weird", HOSTILE_INTENT, at(3, 2))],
        "rest-user": [*start, *user("hello", "greet", (STARTED - timedelta(days=40)).timestamp())],
        "widget:silent": start,
    }
    store = SQLTrackerStore(dialect="sqlite", db=str(url_path))
    for sender_id, events in conversations.items():
        tracker = DialogueStateTracker.from_events(sender_id, events, slots=[TextSlot("language", mappings=[])])
        asyncio.run(store.save(tracker))
    store.engine.dispose()


def write_gateway_rows(url: str) -> None:
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    t0 = STARTED.replace(tzinfo=None)
    with Session(engine) as session, session.begin():
        for conversation_id, language in (("widget:alice", "en"), ("twitter:77", "ms"), ("widget:bala", "en")):
            session.add(Conversation(id=conversation_id, channel=conversation_id.split(":")[0], language=language,
                                     sender_id=conversation_id.split(":")[1], created_at=t0, updated_at=t0))
        session.add_all([
            Handoff(conversation_id="widget:bala", channel="widget", language="ms", reason="request_human",
                    requested_at=t0, agent_id=1, assigned_at=t0 + timedelta(seconds=120)),
            Handoff(conversation_id="facebook:123", channel="facebook", language="en", reason="fallback",
                    requested_at=t0, agent_id=1, assigned_at=t0 + timedelta(seconds=300), resolved_at=t0),
        ])
        for conversation_id, language, outcome in (("widget:bala", "ms", "used"), ("widget:bala", "ms", "edited"),
                                                   ("facebook:123", "en", "ignored"), ("facebook:123", "en", "shown")):
            session.add(SuggestionSet(conversation_id=conversation_id, agent_id=1, language=language,
                                      channel=conversation_id.split(":")[0], suggestions=[], shown_at=t0,
                                      outcome=outcome))
    engine.dispose()


@pytest.fixture(scope="module")
def databases(tmp_path_factory):
    """(tracker store URL, gateway database URL), both SQLite, written once for the module."""
    folder = tmp_path_factory.mktemp("report")
    write_tracker_store(folder / "tracker.db")
    write_gateway_rows(f"sqlite:///{folder / 'ksos.db'}")
    return f"sqlite:///{folder / 'tracker.db'}", f"sqlite:///{folder / 'ksos.db'}"


def test_report_from_the_tracker_store_and_the_gateway_tables(databases):
    report = load_report(*databases)
    overall = report.overall
    assert (overall.conversations, overall.customer_messages, overall.handed_off) == (5, 11, 2)
    assert overall.containment == 0.6 and overall.handoff_rate_for("request_human") == 0.2
    assert overall.median_wait_seconds == 210 and overall.fallback_rate == pytest.approx(2 / 11)
    assert (overall.suggestions.total, overall.suggestions.acceptance) == (4, pytest.approx(2 / 3))
    assert overall.top_intents()[:3] == [("greet", 3), ("faq/plans", 2), ("nlu_fallback", 2)]
    assert {"faq", "support/activation_code", HOSTILE_INTENT} <= set(overall.intent_counts)
    # bala: the slot says ms over the gateway's en; facebook: the latest slot; twitter: the gateway; rest: default
    assert {name: metrics.conversations for name, metrics in report.by_language.items()} == {"en": 3, "ms": 2}
    assert {name: m.conversations for name, m in report.by_channel.items()} \
        == {"widget": 2, "facebook": 1, "twitter": 1, "rest": 1}
    assert report.by_language["ms"].suggestions.acceptance == 1.0

    text = render_text(report)
    assert re.search(r"conversations\s+5\s+3\s+2\s+2\s+1\s+1\s+1", text)
    assert re.search(r"median wait for an agent\s+3m 30s\s+5m 00s\s+2m 00s", text)

    page = render_html(report)
    assert page.count("<svg") == 5 and "<script" not in page.lower() and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page                # the intent, escaped
    assert "<td>60.0%</td>" in page


def test_a_period_and_missing_tables_or_files(databases, tmp_path):
    tracker_url, database_url = databases
    report = load_report(tracker_url, database_url, period_from_options(date(2026, 11, 1), None, date.today()))
    assert report.overall.conversations == 4 and report.by_channel["rest"].conversations == 0

    empty_gateway = f"sqlite:///{tmp_path / 'old.db'}"
    make_engine(empty_gateway).connect().close()                 # a database without the gateway's tables
    report = load_report(tracker_url, empty_gateway)
    assert report.overall.handed_off == 0 and report.overall.suggestions.total == 0 and not report.notes
    assert report.by_language["ms"].conversations == 1          # bala (slot); twitter:77's ms was the gateway's

    missing = tmp_path / "nowhere" / "tracker.db"
    report = load_report(f"sqlite:///{missing}", f"sqlite:///{tmp_path / 'gone.db'}")
    assert report.overall.conversations == 0 and len(report.notes) == 2
    assert not missing.parent.exists() and not (tmp_path / "gone.db").exists()     # nothing was created
    assert "n/a" in render_text(report) and "does not exist yet" in render_html(report)


def run_cli(*argv):
    parser = argparse.ArgumentParser(prog="python -m bot")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *argv])
    return args.func(args)


def test_the_command_prints_text_json_and_writes_html(databases, tmp_path, capsys):
    tracker_url, database_url = databases
    options = ("--tracker-url", tracker_url, "--database-url", database_url)
    assert run_cli(*options) == 0
    assert "KSOS support report: all time" in capsys.readouterr().out

    page = tmp_path / "out" / "report.html"
    assert run_cli(*options, "--json", "--since", "2026-11-01", "--days", "30", "--html", str(page)) == 0
    output = capsys.readouterr()
    data = json.loads(output.out)
    assert data["period"]["label"] == "2026-11-01 to 2026-11-30 (Malaysia time)"
    assert data["overall"]["conversations"] == 4 and data["by_channel"]["twitter"]["fallback_rate"] == 0.0
    assert data["overall"]["handoffs_by_reason"]["fallback"] == {"conversations": 1, "rate": 0.25}
    assert data["by_language"]["ms"]["suggestions"] == {"shown": 2, "used": 1, "edited": 1, "ignored": 0,
                                                        "open": 0, "acceptance": 1.0}
    assert page.read_text().startswith("<!DOCTYPE html>") and str(page) in output.err


def test_the_command_explains_a_database_it_cannot_open(databases, capsys):
    tracker_url, _ = databases
    assert run_cli("--tracker-url", tracker_url, "--database-url", "postgresql://postgres:secret@127.0.0.1:1/x") == 1
    error = capsys.readouterr().err
    assert error.startswith("Could not read the gateway database at postgresql://postgres:***@127.0.0.1:1/x")
    assert "Traceback" not in error and "secret" not in error


# --- the gateway tables on SQLite and PostgreSQL ----------------------------------------------------------------

def test_gateway_rows_on_both_databases(account_store_url):
    before = read_database(account_store_url, "gateway database", load_gateway_rows)
    assert (before.languages, before.handoffs, before.suggestions) == ({}, [], [])     # no tables yet: empty
    write_gateway_rows(account_store_url)
    rows = read_database(account_store_url, "gateway database", load_gateway_rows)
    t0 = STARTED.replace(tzinfo=None)
    assert rows.languages == {"widget:alice": "en", "twitter:77": "ms", "widget:bala": "en"}
    assert sorted(rows.handoffs, key=lambda row: row.reason) == [
        HandoffRow("facebook:123", "fallback", t0, t0 + timedelta(seconds=300)),
        HandoffRow("widget:bala", "request_human", t0, t0 + timedelta(seconds=120)),
    ]
    assert sorted(row.outcome for row in rows.suggestions) == ["edited", "ignored", "shown", "used"]
    assert SuggestionRow("widget:bala", "widget", "ms", "used") in rows.suggestions


def test_csat_resolution_and_unanswered_questions_by_language_and_channel():
    now = datetime(2026, 12, 3, 12, 0)
    day_ago = now - timedelta(hours=30)
    conversations = [
        # resolved: quiet for a day, no handoff, no 👎, no return
        ConversationRecord("widget:ok", "widget", "en", day_ago, ("faq/plans",), (day_ago,)),
        # came back an hour later: not resolved
        ConversationRecord("facebook:back", "facebook", "ms", day_ago, ("faq/plans", "faq/plans"),
                           (day_ago, day_ago + timedelta(hours=1)), ("nak tamatkan langganan",)),
        # rated 👎: not resolved
        ConversationRecord("widget:down", "widget", "ms", day_ago, ("nlu_fallback", "faq/plans"),
                           (day_ago,), ("macam mana nak tamatkan langganan ksos",)),
        # handed off: not resolved
        ConversationRecord("twitter:human", "twitter", "en", day_ago, ("request_human",), (day_ago,),
                           ("works on a mac?",)),
        # still going (last message an hour ago): not ended, so neither resolved nor not
        ConversationRecord("widget:live", "widget", "en", now - timedelta(hours=1), ("greet",),
                           (now - timedelta(hours=1),)),
    ]
    handoffs = [HandoffRow("twitter:human", "request_human", day_ago, None)]
    feedback = [FeedbackRow("widget:ok", "widget", "en", "up"), FeedbackRow("widget:down", "widget", "ms", "down"),
                FeedbackRow("facebook:back", "facebook", "ms", "up"),
                FeedbackRow("elsewhere", "widget", "en", "down")]            # not a conversation of the period
    report = build_report(conversations, handoffs, [], feedback=feedback, now=now)
    overall = report.overall
    assert (overall.ended, overall.resolved, overall.resolution_rate) == (4, 1, 0.25)
    assert (overall.rated_up, overall.rated_down, overall.csat) == (2, 1, pytest.approx(2 / 3))
    assert overall.unanswered_groups == (("macam mana nak tamatkan langganan ksos", 2), ("works on a mac?", 1))
    malay, english = report.by_language["ms"], report.by_language["en"]
    assert (malay.ended, malay.resolved, malay.csat) == (2, 0, 0.5)
    assert (english.ended, english.resolved, english.csat) == (2, 1, 1.0)
    assert report.by_channel["widget"].csat == 0.5 and report.by_channel["twitter"].csat is None
    text = render_text(report)
    assert "CSAT (👍 share)" in text and "66.7%" in text and "resolution rate" in text
    assert "macam mana nak tamatkan langganan ksos" in text
    data = report_json(report)
    assert data["overall"]["feedback"] == {"up": 2, "down": 1, "csat": pytest.approx(2 / 3)}
    assert data["overall"]["top_unanswered"][0] == {"example": "macam mana nak tamatkan langganan ksos",
                                                    "messages": 2}
