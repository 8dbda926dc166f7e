"""`python -m bot report`: support analytics over the conversations, as text, JSON or one self-contained HTML page.

Sources: Rasa's SQL tracker store (`events` table, TRACKER_STORE_URL) for the conversations, their language and
what the customers asked; the gateway's tables in DATABASE_URL for the hand-overs to human agents and the
agent-assist suggestion sets. A conversation is a Rasa sender id with at least one customer message; it belongs to
a period when its first customer message does, and then all of its messages, handoffs and suggestion sets count.

The metrics are plain functions of rows (`conversations_from_events`, `build_report`); `load_report` reads the
rows from the two databases; `render_text`, `render_html` and `report_json` present a `Report`.
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import jinja2
from sqlalchemy import and_, case, column, inspect, null, or_, select, table
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.analytics.grouping import group_similar
from bot.clock import MALAYSIA, now_utc, today
from bot.database import make_engine
from bot.gateway.models import (
    EDITED,
    HANDOFF_REASONS,
    IGNORED,
    SHOWN,
    USED,
    AnswerFeedback,
    Conversation,
    Handoff,
    SuggestionSet,
)
from bot.paths import RESOURCES_DIR
from bot.settings import load_settings
from bot.vocabulary import RETRIEVAL_INTENTS, full_label

LANGUAGES = ("en", "ms")
DEFAULT_LANGUAGE = "en"
GATEWAY_CHANNELS = ("widget", "facebook", "twitter")   # the gateway names its Rasa conversations "channel:sender"
OTHER_CHANNEL = "rest"                                  # any other sender id: Rasa asked directly (shell, bench)
CHANNELS = GATEWAY_CHANNELS + (OTHER_CHANNEL,)
FALLBACK_INTENT = "nlu_fallback"
NO_INTENT = "(no intent)"
TOP_INTENTS = 10
TOP_UNANSWERED = 10
SESSION_GAP = timedelta(minutes=30)         # a pause this long ends a visit
RETURN_WINDOW = timedelta(hours=24)         # a customer back within this of a pause was not helped the first time
OVERALL = "all"

# Rasa's SQLTrackerStore table (rasa/core/tracker_store.py, SQLTrackerStore.SQLEvent), as far as it is read here.
EVENTS = table("events", column("id"), column("sender_id"), column("type_name"), column("timestamp"),
               column("intent_name"), column("action_name"), column("data"))


# --- rows ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackerEventRow:
    """One customer message (type_name "user") or `language` slot event (type_name "slot") of the events table.
    `data` is the event as JSON; the loader reads it only for slot events and retrieval intents."""
    sender_id: str
    type_name: str
    timestamp: Optional[float]          # seconds since the epoch
    intent_name: Optional[str]
    data: Optional[str] = None


@dataclass(frozen=True)
class ConversationRecord:
    """A conversation with at least one customer message."""
    id: str                             # Rasa's sender id
    channel: str                        # one of CHANNELS
    language: str                       # one of LANGUAGES
    started_at: Optional[datetime]      # naive UTC time of the first customer message (None: not recorded)
    intents: Tuple[str, ...]            # one intent key per customer message, e.g. ("greet", "faq/plans")
    message_times: Tuple[datetime, ...] = ()     # naive UTC, of the customer messages with a time
    unanswered: Tuple[str, ...] = ()    # the (redacted) words of the messages that fell back, newest last


@dataclass(frozen=True)
class HandoffRow:
    """One hand-over of a conversation to the human agents (gateway_handoffs); times naive UTC."""
    conversation_id: str
    reason: str                         # request_human | fallback
    requested_at: datetime
    assigned_at: Optional[datetime]     # when an agent took it; None while it waits


@dataclass(frozen=True)
class SuggestionRow:
    """One set of agent-assist suggestions shown to an agent (gateway_suggestion_sets)."""
    conversation_id: str
    channel: str
    language: str
    outcome: str                        # shown (still open) | used | edited | ignored


@dataclass(frozen=True)
class FeedbackRow:
    """A customer's 👍 / 👎 on one answer (gateway_feedback)."""
    conversation_id: str
    channel: str
    language: str
    rating: str                         # up | down


@dataclass(frozen=True)
class Period:
    """The conversations whose first customer message is in [start, end), naive UTC; None = unbounded."""
    start: Optional[datetime] = None
    end: Optional[datetime] = None

    def contains(self, moment: Optional[datetime]) -> bool:
        if moment is None:
            return self.start is None and self.end is None
        return (self.start is None or moment >= self.start) and (self.end is None or moment < self.end)

    def label(self) -> str:
        """E.g. "all time", "2026-11-01 to 2026-11-07 (Malaysia time)", "since 2026-11-17 (Malaysia time)"."""
        if self.start is None and self.end is None:
            return "all time"
        first = malaysia_day(self.start) if self.start else None
        last = malaysia_day(self.end - timedelta(microseconds=1)) if self.end else None
        if first and last:
            return f"{first} to {last} (Malaysia time)"
        return f"since {first} (Malaysia time)" if first else f"until {last} (Malaysia time)"


ALL_TIME = Period()


def malaysia_midnight(day: date) -> datetime:
    """The naive UTC moment a Malaysian calendar day starts."""
    return datetime.combine(day, time(), MALAYSIA).astimezone(timezone.utc).replace(tzinfo=None)


def malaysia_day(moment_utc: datetime) -> date:
    return moment_utc.replace(tzinfo=timezone.utc).astimezone(MALAYSIA).date()


def period_from_options(since: Optional[date], days: Optional[int], on: date) -> Period:
    """`--since D`: from D on; `--days N`: the N Malaysian calendar days ending `on` (today); both: N days from D."""
    if since is not None:
        return Period(malaysia_midnight(since), malaysia_midnight(since + timedelta(days=days)) if days else None)
    if days is not None:
        return Period(malaysia_midnight(on - timedelta(days=days - 1)), None)
    return ALL_TIME


# --- from tracker events to conversations ------------------------------------------------------------------------

def channel_of(sender_id: str) -> str:
    """"widget:abc" -> "widget"; a sender id without a gateway channel prefix -> "rest"."""
    prefix, separator, _ = sender_id.partition(":")
    return prefix if separator and prefix in GATEWAY_CHANNELS else OTHER_CHANNEL


def parse_event_data(data: Optional[str]) -> Dict[str, Any]:
    """The event's JSON as a dict; {} when absent or unreadable."""
    if not data:
        return {}
    try:
        parsed = json.loads(data)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def intent_key(intent_name: Optional[str], event: Mapping[str, Any]) -> str:
    """The intent of a customer message; for a retrieval intent its full key (faq/plans) when the response
    selector recorded one."""
    if not intent_name:
        return NO_INTENT
    return full_label(event.get("parse_data") or {}, intent_name)


def utc_from_timestamp(timestamp: Optional[float]) -> Optional[datetime]:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)


def conversations_from_events(events: Iterable[TrackerEventRow],
                              gateway_languages: Mapping[str, str]) -> List[ConversationRecord]:
    """The conversations with at least one customer message, from tracker events in the order Rasa stored them.
    Language: the latest `language` slot event with en/ms, else the gateway's record, else English."""
    intents: Dict[str, List[str]] = {}
    started: Dict[str, Optional[datetime]] = {}
    times: Dict[str, List[datetime]] = {}
    unanswered: Dict[str, List[str]] = {}
    slot_languages: Dict[str, str] = {}
    for event in events:
        if event.type_name == "user":
            data = parse_event_data(event.data)
            intents.setdefault(event.sender_id, []).append(intent_key(event.intent_name, data))
            moment = utc_from_timestamp(event.timestamp)
            if started.get(event.sender_id) is None:
                started[event.sender_id] = moment
            if moment is not None:
                times.setdefault(event.sender_id, []).append(moment)
            if event.intent_name == FALLBACK_INTENT and isinstance(data.get("text"), str) and data["text"].strip():
                unanswered.setdefault(event.sender_id, []).append(data["text"].strip())
        elif event.type_name == "slot":
            slot = parse_event_data(event.data)
            if slot.get("name") == "language" and slot.get("value") in LANGUAGES:
                slot_languages[event.sender_id] = slot["value"]
    return [
        ConversationRecord(
            id=sender_id, channel=channel_of(sender_id),
            language=slot_languages.get(sender_id) or known_language(gateway_languages.get(sender_id)),
            started_at=started[sender_id], intents=tuple(keys),
            message_times=tuple(times.get(sender_id, ())), unanswered=tuple(unanswered.get(sender_id, ())),
        )
        for sender_id, keys in intents.items()
    ]


def known_language(language: Optional[str]) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


# --- metrics ------------------------------------------------------------------------------------------------------

def share(part: int, whole: int) -> Optional[float]:
    """part / whole, or None when there is nothing to divide by."""
    return part / whole if whole else None


@dataclass(frozen=True)
class SuggestionCounts:
    """What became of the agent-assist suggestion sets shown to agents."""
    total: int = 0                      # sets shown
    used: int = 0                       # sent as suggested
    edited: int = 0                     # sent after changes
    ignored: int = 0                    # the agent wrote something else
    open: int = 0                       # no outcome yet

    @property
    def acceptance(self) -> Optional[float]:
        """(used + edited) / (used + edited + ignored)."""
        return share(self.used + self.edited, self.used + self.edited + self.ignored)


@dataclass(frozen=True)
class SegmentMetrics:
    """The metrics of one slice of the conversations: all of them, one language or one channel."""
    conversations: int = 0
    customer_messages: int = 0
    handed_off: int = 0                                     # conversations with at least one handoff
    handed_off_by_reason: Dict[str, int] = field(default_factory=dict)   # conversations with a handoff for it
    median_wait_seconds: Optional[float] = None             # requested -> taken by an agent, of the taken handoffs
    fallbacks: int = 0                                      # customer messages classified nlu_fallback
    suggestions: SuggestionCounts = SuggestionCounts()
    intent_counts: Dict[str, int] = field(default_factory=dict)   # every intent key, most frequent first
    rated_up: int = 0                                       # answers rated 👍
    rated_down: int = 0                                     # answers rated 👎
    ended: int = 0                                          # conversations quiet for RETURN_WINDOW by now
    resolved: int = 0                                       # ... with no handoff, no 👎 and no return
    unanswered_groups: Tuple[Tuple[str, int], ...] = ()     # (example, messages) of the fallbacks, largest first

    @property
    def csat(self) -> Optional[float]:
        """The 👍 share of the ratings."""
        return share(self.rated_up, self.rated_up + self.rated_down)

    @property
    def resolution_rate(self) -> Optional[float]:
        return share(self.resolved, self.ended)

    @property
    def contained(self) -> int:
        return self.conversations - self.handed_off

    @property
    def containment(self) -> Optional[float]:
        return share(self.contained, self.conversations)

    @property
    def handoff_rate(self) -> Optional[float]:
        return share(self.handed_off, self.conversations)

    def handoff_rate_for(self, reason: str) -> Optional[float]:
        return share(self.handed_off_by_reason.get(reason, 0), self.conversations)

    @property
    def fallback_rate(self) -> Optional[float]:
        return share(self.fallbacks, self.customer_messages)

    def top_intents(self, limit: int = TOP_INTENTS) -> List[Tuple[str, int]]:
        return list(self.intent_counts.items())[:limit]


@dataclass(frozen=True)
class Report:
    """The metrics overall and per language and per channel, for one period."""
    period: Period
    overall: SegmentMetrics
    by_language: Dict[str, SegmentMetrics]     # LANGUAGES, in order
    by_channel: Dict[str, SegmentMetrics]      # CHANNELS, in order
    notes: Tuple[str, ...] = ()                # what was missing from the sources
    generated_at: datetime = field(default_factory=now_utc)

    def segments(self) -> List[Tuple[str, SegmentMetrics]]:
        """("all", overall), then the languages, then the channels: the columns of every table."""
        return [(OVERALL, self.overall), *self.by_language.items(), *self.by_channel.items()]


def count_suggestions(suggestions: Sequence[SuggestionRow]) -> SuggestionCounts:
    outcomes = Counter(row.outcome for row in suggestions)
    return SuggestionCounts(total=len(suggestions), used=outcomes[USED], edited=outcomes[EDITED],
                            ignored=outcomes[IGNORED], open=outcomes[SHOWN])


def returned(times: Sequence[datetime]) -> bool:
    """Whether the customer came back: a message after a pause of SESSION_GAP or more, within RETURN_WINDOW."""
    ordered = sorted(times)
    pauses = (later - earlier for earlier, later in zip(ordered, ordered[1:], strict=False))
    return any(SESSION_GAP <= pause <= RETURN_WINDOW for pause in pauses)


def segment_metrics(conversations: Sequence[ConversationRecord], handoffs: Sequence[HandoffRow],
                    suggestions: Sequence[SuggestionRow], feedback: Sequence[FeedbackRow] = (),
                    now: Optional[datetime] = None) -> SegmentMetrics:
    """The metrics of the given conversations, their handoffs and the suggestion sets and ratings of the slice.
    Resolved: a conversation that has ended (no customer message for RETURN_WINDOW by `now`) with no handoff,
    no 👎 and no return of the customer within RETURN_WINDOW of a pause."""
    now = now or now_utc()
    ids = {conversation.id for conversation in conversations}
    handoffs = [handoff for handoff in handoffs if handoff.conversation_id in ids]
    handed = {handoff.conversation_id for handoff in handoffs}
    down = {row.conversation_id for row in feedback if row.rating == "down"}
    ended = [conversation for conversation in conversations
             if conversation.message_times and now - max(conversation.message_times) >= RETURN_WINDOW]
    resolved = [conversation for conversation in ended if conversation.id not in handed
                and conversation.id not in down and not returned(conversation.message_times)]
    unanswered = [(conversation.id, text) for conversation in conversations for text in conversation.unanswered]
    groups = group_similar(reversed(unanswered))            # newest first: a group's example is its newest
    reasons: Dict[str, Set[str]] = {reason: set() for reason in HANDOFF_REASONS}
    for handoff in handoffs:
        reasons.setdefault(handoff.reason, set()).add(handoff.conversation_id)
    waits = [(handoff.assigned_at - handoff.requested_at).total_seconds()
             for handoff in handoffs if handoff.assigned_at is not None]
    intents = Counter(key for conversation in conversations for key in conversation.intents)
    return SegmentMetrics(
        conversations=len(conversations),
        customer_messages=sum(len(conversation.intents) for conversation in conversations),
        handed_off=len({handoff.conversation_id for handoff in handoffs}),
        handed_off_by_reason={reason: len(conversation_ids) for reason, conversation_ids in reasons.items()},
        median_wait_seconds=statistics.median(waits) if waits else None,
        fallbacks=intents[FALLBACK_INTENT],
        suggestions=count_suggestions(suggestions),
        intent_counts=dict(sorted(intents.items(), key=lambda item: (-item[1], item[0]))),
        rated_up=sum(row.rating == "up" for row in feedback),
        rated_down=sum(row.rating == "down" for row in feedback),
        ended=len(ended), resolved=len(resolved),
        unanswered_groups=tuple((group.example, group.count) for group in groups[:TOP_UNANSWERED]),
    )


def build_report(conversations: Iterable[ConversationRecord], handoffs: Iterable[HandoffRow],
                 suggestions: Iterable[SuggestionRow], period: Period = ALL_TIME,
                 notes: Sequence[str] = (), feedback: Iterable[FeedbackRow] = (),
                 now: Optional[datetime] = None) -> Report:
    """The report of the conversations that started in the period, with their handoffs, suggestion sets and
    ratings (those of other conversations are left out). Suggestion sets and ratings are sliced by their own
    channel and language."""
    now = now or now_utc()
    chosen = [conversation for conversation in conversations if period.contains(conversation.started_at)]
    chosen_ids = {conversation.id for conversation in chosen}
    handoffs = [handoff for handoff in handoffs if handoff.conversation_id in chosen_ids]
    suggestions = [row for row in suggestions if row.conversation_id in chosen_ids]
    feedback = [row for row in feedback if row.conversation_id in chosen_ids]

    def slice_by(attribute: str, value: str) -> SegmentMetrics:
        return segment_metrics([c for c in chosen if getattr(c, attribute) == value], handoffs,
                               [row for row in suggestions if getattr(row, attribute) == value],
                               [row for row in feedback if getattr(row, attribute) == value], now)

    return Report(
        period=period,
        overall=segment_metrics(chosen, handoffs, suggestions, feedback, now),
        by_language={language: slice_by("language", language) for language in LANGUAGES},
        by_channel={channel: slice_by("channel", channel) for channel in CHANNELS},
        notes=tuple(notes),
        generated_at=now,
    )


# --- reading the databases ----------------------------------------------------------------------------------------

class ReportSourceError(Exception):
    """A database of the report could not be opened or read; the message says which and why."""


@dataclass(frozen=True)
class GatewayRows:
    """What the report reads from the gateway's tables."""
    languages: Dict[str, str]           # conversation id -> last known language (gateway_conversations)
    handoffs: List[HandoffRow]
    suggestions: List[SuggestionRow]
    feedback: List[FeedbackRow] = field(default_factory=list)


def displayed_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(an unreadable database URL)"


def missing_sqlite_file(url: str) -> Optional[Path]:
    """The file of a SQLite URL when it does not exist (opening it would create it); None otherwise."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def load_tracker_events(engine: Engine) -> List[TrackerEventRow]:
    """The customer messages and `language` slot events of Rasa's events table, in stored order; [] without it.
    Rasa puts a slot event's slot name in action_name."""
    if not inspect(engine).has_table("events"):
        return []
    needs_data = or_(EVENTS.c.type_name == "slot", EVENTS.c.intent_name.in_((*RETRIEVAL_INTENTS, FALLBACK_INTENT)))
    query = (
        select(EVENTS.c.sender_id, EVENTS.c.type_name, EVENTS.c.timestamp, EVENTS.c.intent_name,
               case((needs_data, EVENTS.c.data), else_=null()))
        .where(or_(EVENTS.c.type_name == "user",
                   and_(EVENTS.c.type_name == "slot", EVENTS.c.action_name == "language")))
        .order_by(EVENTS.c.id)
    )
    with engine.connect() as connection:
        return [TrackerEventRow(*row) for row in connection.execute(query)]


def load_gateway_rows(engine: Engine) -> GatewayRows:
    """Conversation languages, handoffs and suggestion sets; a table that does not exist yet reads as empty."""
    existing = set(inspect(engine).get_table_names())
    languages: Dict[str, str] = {}
    handoffs: List[HandoffRow] = []
    suggestions: List[SuggestionRow] = []
    feedback: List[FeedbackRow] = []
    with engine.connect() as connection:
        if Conversation.__tablename__ in existing:
            query = select(Conversation.id, Conversation.language).where(Conversation.language.is_not(None))
            languages = {conversation_id: language for conversation_id, language in connection.execute(query)}
        if Handoff.__tablename__ in existing:
            query = select(Handoff.conversation_id, Handoff.reason, Handoff.requested_at, Handoff.assigned_at)
            handoffs = [HandoffRow(*row) for row in connection.execute(query)]
        if SuggestionSet.__tablename__ in existing:
            query = select(SuggestionSet.conversation_id, SuggestionSet.channel, SuggestionSet.language,
                           SuggestionSet.outcome)
            suggestions = [SuggestionRow(*row) for row in connection.execute(query)]
        if AnswerFeedback.__tablename__ in existing:
            query = select(AnswerFeedback.conversation_id, AnswerFeedback.channel, AnswerFeedback.language,
                           AnswerFeedback.rating)
            feedback = [FeedbackRow(conversation, channel, known_language(language), rating)
                        for conversation, channel, language, rating in connection.execute(query)]
    return GatewayRows(languages, handoffs, suggestions, feedback)


def read_database(url: str, what: str, reader: Callable[[Engine], Any]) -> Any:
    """reader(engine) for the database at url, turning every database failure into a ReportSourceError."""
    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ImportError) as error:
        raise ReportSourceError(f"Could not open the {what} at {displayed_url(url)}: {error}") from error
    try:
        return reader(engine)
    except SQLAlchemyError as error:
        reason = getattr(error, "orig", None) or error
        raise ReportSourceError(f"Could not read the {what} at {displayed_url(url)}: {reason}") from error
    finally:
        engine.dispose()


def load_report(tracker_url: str, database_url: str, period: Period = ALL_TIME) -> Report:
    """Read both databases and compute the report. A SQLite file that does not exist yet counts as empty (and is
    not created); raises ReportSourceError when a database cannot be opened or read."""
    notes: List[str] = []
    try:
        missing_tracker, missing_gateway = missing_sqlite_file(tracker_url), missing_sqlite_file(database_url)
    except SQLAlchemyError as error:
        raise ReportSourceError(f"Not a database URL: {error}") from error
    if missing_tracker:
        notes.append(f"The tracker store {missing_tracker} does not exist yet: no conversations.")
        events: List[TrackerEventRow] = []
    else:
        events = read_database(tracker_url, "tracker store", load_tracker_events)
    if missing_gateway:
        notes.append(f"The gateway database {missing_gateway} does not exist yet: no handoffs or suggestions.")
        gateway = GatewayRows({}, [], [])
    else:
        gateway = read_database(database_url, "gateway database", load_gateway_rows)
    return build_report(conversations_from_events(events, gateway.languages), gateway.handoffs,
                        gateway.suggestions, period, notes, gateway.feedback)


# --- presentation: the tables both renderers show -----------------------------------------------------------------

def percent(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def duration(seconds: Optional[float]) -> str:
    """45s, 2m 05s, 1h 02m; n/a when unknown."""
    if seconds is None:
        return "n/a"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


@dataclass(frozen=True)
class Table:
    """A titled table: a header row and rows of already formatted cells; the first column is the label."""
    title: str
    header: Tuple[str, ...]
    rows: Tuple[Tuple[str, ...], ...]


def _intent_count(key: str, metrics: SegmentMetrics) -> str:
    return str(metrics.intent_counts.get(key, 0))


def segment_table(title: str, report: Report, metrics: Sequence[Tuple[str, Callable[[SegmentMetrics], str]]]
                  ) -> Table:
    segments = report.segments()
    return Table(title, ("", *(name for name, _ in segments)),
                 tuple((label, *(cell(segment) for _, segment in segments)) for label, cell in metrics))


def report_tables(report: Report) -> List[Table]:
    """Conversations, agent-assist suggestions and top intents, each with a column per segment."""
    reasons = list(report.overall.handed_off_by_reason)
    conversations = segment_table("Conversations", report, [
        ("conversations", lambda m: str(m.conversations)),
        ("customer messages", lambda m: str(m.customer_messages)),
        ("contained (no handoff)", lambda m: str(m.contained)),
        ("containment", lambda m: percent(m.containment)),
        ("handed off", lambda m: str(m.handed_off)),
        ("handoff rate", lambda m: percent(m.handoff_rate)),
        *((f"  reason {reason}", lambda m, reason=reason: percent(m.handoff_rate_for(reason))) for reason in reasons),
        ("median wait for an agent", lambda m: duration(m.median_wait_seconds)),
        ("fallback messages", lambda m: str(m.fallbacks)),
        ("fallback rate", lambda m: percent(m.fallback_rate)),
        ("ended (quiet for 24 h)", lambda m: str(m.ended)),
        ("resolved (no handoff, no 👎, no return within 24 h)", lambda m: str(m.resolved)),
        ("resolution rate", lambda m: percent(m.resolution_rate)),
    ])
    feedback = segment_table("Customer feedback on answers", report, [
        ("rated 👍", lambda m: str(m.rated_up)),
        ("rated 👎", lambda m: str(m.rated_down)),
        ("CSAT (👍 share)", lambda m: percent(m.csat)),
    ])
    unanswered = Table(f"Top {TOP_UNANSWERED} unanswered questions (fell back; similar ones grouped; redacted)",
                       ("example (newest)", "messages"),
                       tuple((example, str(count)) for example, count in report.overall.unanswered_groups))
    suggestions = segment_table("Agent-assist suggestions", report, [
        ("sets shown", lambda m: str(m.suggestions.total)),
        ("used", lambda m: str(m.suggestions.used)),
        ("edited", lambda m: str(m.suggestions.edited)),
        ("ignored", lambda m: str(m.suggestions.ignored)),
        ("still open", lambda m: str(m.suggestions.open)),
        ("acceptance", lambda m: percent(m.suggestions.acceptance)),
    ])
    intents = segment_table(f"Top {TOP_INTENTS} intents (customer messages)", report, [
        (key, functools.partial(_intent_count, key)) for key, _ in report.overall.top_intents()
    ])
    return [conversations, feedback, suggestions, intents, unanswered]


def generated_line(report: Report) -> str:
    moment = report.generated_at.replace(tzinfo=timezone.utc).astimezone(MALAYSIA)
    return f"Generated {moment:%Y-%m-%d %H:%M} Malaysia time. Columns: all conversations, by language, by channel."


def render_text(report: Report) -> str:
    """The report as aligned plain-text tables."""
    lines = [f"KSOS support report: {report.period.label()}", generated_line(report)]
    lines += [f"Note: {note}" for note in report.notes]
    for tabled in report_tables(report):
        lines += ["", tabled.title]
        rows = [tabled.header, *tabled.rows] if tabled.rows else [tabled.header, ("(none)",)]
        widths = [max(len(row[index]) for row in rows if index < len(row)) for index in range(len(tabled.header))]
        for row in rows:
            cells = [cell.ljust(widths[0]) if index == 0 else cell.rjust(widths[index])
                     for index, cell in enumerate(row)]
            lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def report_json(report: Report) -> Dict[str, Any]:
    """The report as JSON-ready data: counts, rates (null when undefined) and each segment's top intents."""
    def segment(metrics: SegmentMetrics) -> Dict[str, Any]:
        return {
            "conversations": metrics.conversations,
            "customer_messages": metrics.customer_messages,
            "contained": metrics.contained,
            "containment": metrics.containment,
            "handed_off": metrics.handed_off,
            "handoff_rate": metrics.handoff_rate,
            "handoffs_by_reason": {reason: {"conversations": count, "rate": metrics.handoff_rate_for(reason)}
                                   for reason, count in metrics.handed_off_by_reason.items()},
            "median_wait_seconds": metrics.median_wait_seconds,
            "fallbacks": metrics.fallbacks,
            "fallback_rate": metrics.fallback_rate,
            "suggestions": {"shown": metrics.suggestions.total, "used": metrics.suggestions.used,
                            "edited": metrics.suggestions.edited, "ignored": metrics.suggestions.ignored,
                            "open": metrics.suggestions.open, "acceptance": metrics.suggestions.acceptance},
            "top_intents": [{"intent": key, "count": count} for key, count in metrics.top_intents()],
            "ended": metrics.ended, "resolved": metrics.resolved, "resolution_rate": metrics.resolution_rate,
            "feedback": {"up": metrics.rated_up, "down": metrics.rated_down, "csat": metrics.csat},
            "top_unanswered": [{"example": example, "messages": count}
                               for example, count in metrics.unanswered_groups],
        }

    period = report.period
    return {
        "period": {"label": period.label(), "start_utc": period.start.isoformat() if period.start else None,
                   "end_utc": period.end.isoformat() if period.end else None},
        "generated_at_utc": report.generated_at.isoformat(timespec="seconds"),
        "notes": list(report.notes),
        "overall": segment(report.overall),
        "by_language": {name: segment(metrics) for name, metrics in report.by_language.items()},
        "by_channel": {name: segment(metrics) for name, metrics in report.by_channel.items()},
    }


# --- HTML ---------------------------------------------------------------------------------------------------------
# The page is a Jinja2 template (resources/templates/report.html.j2, autoescaped); this part lays out its charts.

TEMPLATES_DIR = RESOURCES_DIR / "templates"
BAR_COLOUR = "#0b7a75"
OUTCOME_COLOURS = {"used": "#0b7a75", "edited": "#6fb3a8", "ignored": "#d9822b", "still open": "#b8bec6"}
PLOT_WIDTH, ROW_HEIGHT = 300, 24


def shortened(text: str, limit: int) -> str:
    """The text, cut to `limit` characters with an ellipsis when longer (chart labels; the tables keep it whole)."""
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


@dataclass(frozen=True)
class Bar:
    """One bar of a chart: its label, its length (None: no bar) and the text written after it."""
    label: str
    value: Optional[float]
    text: str


def bar_chart(title: str, bars: Sequence[Bar], scale: float, label_width: int = 90) -> Dict[str, Any]:
    """A horizontal bar chart's layout: bar lengths are value / scale of the plot width."""
    return {"kind": "bars", "title": title, "label_width": label_width, "colour": BAR_COLOUR,
            "width": label_width + PLOT_WIDTH + 70, "height": ROW_HEIGHT * len(bars) + 8,
            "bars": [{"label": bar.label, "text": bar.text, "top": 4 + index * ROW_HEIGHT,
                      "length": PLOT_WIDTH * bar.value / scale if bar.value and scale else 0.0}
                     for index, bar in enumerate(bars)]}


def outcome_chart(title: str, rows: Sequence[Tuple[str, SuggestionCounts]]) -> Dict[str, Any]:
    """Per segment one bar split into used / edited / ignored / still open suggestion sets, with a legend."""
    label_width = 90
    laid_out = []
    for index, (label, counts) in enumerate(rows):
        left, parts = float(label_width), []
        for count, colour in zip((counts.used, counts.edited, counts.ignored, counts.open), OUTCOME_COLOURS.values(),
                                 strict=True):
            length = PLOT_WIDTH * count / counts.total if counts.total else 0.0
            parts.append({"left": left, "length": length, "colour": colour})
            left += length
        laid_out.append({"label": label, "top": 4 + (index + 1) * ROW_HEIGHT, "parts": parts, "end": left,
                         "total": counts.total})
    return {"kind": "outcomes", "title": title, "label_width": label_width,
            "width": label_width + PLOT_WIDTH + 70, "height": ROW_HEIGHT * (len(rows) + 1) + 8,
            "legend": [{"left": label_width + index * 80, "name": name, "colour": colour}
                       for index, (name, colour) in enumerate(OUTCOME_COLOURS.items())],
            "rows": laid_out}


def report_charts(report: Report) -> List[Dict[str, Any]]:
    """The charts: containment, handoff and fallback rates by segment, suggestion outcomes by segment, top
    intents."""
    segments = report.segments()
    charts = []
    for title, rate in (("Containment (conversations without a handoff)", lambda m: m.containment),
                        ("Handoff rate (conversations handed to an agent)", lambda m: m.handoff_rate),
                        ("Fallback rate (customer messages not understood)", lambda m: m.fallback_rate)):
        charts.append(bar_chart(title, [Bar(name, rate(metrics), percent(rate(metrics)))
                                        for name, metrics in segments], 1.0))
    charts.append(outcome_chart("Agent-assist suggestion outcomes",
                                [(name, metrics.suggestions) for name, metrics in segments]))
    top = report.overall.top_intents()
    charts.append(bar_chart(f"Top {TOP_INTENTS} intents (all conversations)",
                            [Bar(shortened(key, 34), count, str(count)) for key, count in top],
                            max((count for _, count in top), default=1), label_width=240))
    return charts


@functools.lru_cache(maxsize=1)
def _page_template() -> jinja2.Template:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.get_template("report.html.j2")


def render_html(report: Report) -> str:
    """One self-contained page: inline CSS, the report's tables and inline SVG charts; no scripts, no links."""
    return _page_template().render(period=report.period.label(), generated=generated_line(report),
                                   notes=report.notes, tables=report_tables(report),
                                   charts=report_charts(report)) + "\n"


# --- command line -------------------------------------------------------------------------------------------------

def calendar_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def day_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a number of days (1 or more): {text!r}")
    return int(text)


def cmd_report(args: argparse.Namespace) -> int:
    """`python -m bot report`: print the report (text or JSON), optionally write the HTML page; 1 when a database
    cannot be read."""
    settings = load_settings()
    period = period_from_options(args.since, args.days, today())
    try:
        report = load_report(args.tracker_url or settings.tracker_store_url,
                             args.database_url or settings.database_url, period)
    except ReportSourceError as error:
        print(error, file=sys.stderr)
        return 1
    print(json.dumps(report_json(report), indent=2) + "\n" if args.json else render_text(report), end="")
    if args.html:
        path = Path(args.html)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(report), encoding="utf-8")
        print(f"Wrote {path}", file=sys.stderr)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register `report` on the `python -m bot` subcommands."""
    report = commands.add_parser("report", help="support analytics: containment, handoffs, fallbacks, suggestions",
                                 description="Support analytics over the conversations (Malaysian calendar days). "
                                             "A conversation counts in the period its first customer message is in.")
    report.add_argument("--since", type=calendar_day, metavar="YYYY-MM-DD", help="conversations from this day on")
    report.add_argument("--days", type=day_count, metavar="N",
                        help="the last N days up to today; with --since, the N days from that day")
    report.add_argument("--html", metavar="PATH", help="also write the report as one self-contained HTML page")
    report.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    report.add_argument("--database-url", help="the gateway database (default: DATABASE_URL)")
    report.add_argument("--tracker-url", help="Rasa's SQL tracker store (default: TRACKER_STORE_URL)")
    report.set_defaults(func=cmd_report)
