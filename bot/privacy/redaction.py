"""Finding and redacting personal data in chat transcripts kept for agents and reports.

A blank spaCy pipeline (tokenizer only, no downloaded model) plus a `Matcher` finds candidate spans by token shape;
a few rules then decide which label a candidate gets, or drop it:

- EMAIL: an e-mail address (kept whole by a tokenizer rule), except the public addresses the bot itself gives out.
- ACTIVATION_CODE: a Kaspersky activation code, 4 groups of 5 letters/digits ("MJ7K2-QX9P4-LT3RW-8DZ5N", lower case,
  spaces instead of dashes, or the 20 characters run together). It must hold letters and digits; written with
  spaces only, at least two groups must hold a digit, so four 5-letter words never count.
- CARD_NUMBER: a payment card number, 13-19 digits that pass the Luhn check, typed together ("4111111111111111") or
  in groups of 3-6 digits joined by a space or dash ("4111 1111 1111 1111", "3782-822463-10005", 4-4-4-4-3 for 19
  digits). Digits failing the check are no card, and a card number is taken whole like the numbers below.
- PASSPORT: a Malaysian passport number (A, H or K and 8 digits) anywhere; a foreign one (1-2 letters, 6-8 digits)
  only right before or after a word like "passport" / "pasport" ("no. pasport E1234567", "A1234567 is my passport").
- BRN: a Malaysian business registration number (SSM), in one of the formats
  - since 2019, 12 digits YYYYTTNNNNNN with a year 1900-2099 and an entity type 01-06, typed together
    ("202001012345") or as 4-2-6 digits joined by spaces or dashes ("2020-01-012345"). It is a number as below;
    typed together, one from a year ending in 01-12 starts with a date and so counts as an NRIC ("200501012345");
  - an old company number (4-7 digits) or business number (9 digits), a dash and a check letter ("1234567-X",
    "123456-a", "001234567-K"; not "3-D Secure", "4-G" or an 8-digit reference "12345678-X"), or 4-7 digits, a
    space and a capital other than "I" ("123456 A", but not "Windows 10 S" or "since 2024 I ..."); never glued
    ("1234567X");
  - an old business number: 2 letters, 7 digits, a dash and a check letter ("JM0123456-K");
  - an LLP number: "LLP", 7 digits, a dash and 3 letters ("LLP0012345-LGN").
  Old company numbers, like numbers, are only taken whole.
- Numbers (1-4 groups of digits joined by a space or dash, optionally "+" in front or the area code in brackets):
  - NRIC: 12 digits as YYMMDD-PB-#### ("901231-14-5678"); typed as "901231145678" or "901231 14 5678" the first
    6 digits must be a date. 12 digits in this shape are an NRIC even when they could be dialled or be a BRN.
  - PHONE: a Malaysian number, national ("012-3456789", "03-2345 6789", "(03) 2345 6789") or with the country code
    ("+6012-345 6789", "60123456789"), or any number written with "+" and 8-15 digits.
  - ACCOUNT_NUMBER: 10 digits in groups of at least 3 ("1012345678", "101 234 5678") that are not a phone number.
    The rule between the two: 10 digits starting with "0", or with "60" and reading as a Malaysian number, are a
    phone; other 10-digit numbers are account numbers (account numbers never start with 0).
  - ONE_TIME_CODE: exactly 6 digits, "482913", "482 913" or "482-913".
  A number is only taken whole: a candidate joined to more digits by nothing, a space or a dash is part of a longer
  number and dropped (so "482 913 1234" is no code), and so is one right after a currency ("RM 482913").

Where candidates overlap, the longest wins, then the most specific label (the order of PLACEHOLDERS).
"""
from __future__ import annotations

import calendar
import functools
import re
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import spacy
from spacy.lang.char_classes import UNITS
from spacy.language import Language
from spacy.matcher import Matcher
from spacy.tokens import Span
from spacy.util import compile_infix_regex, compile_suffix_regex

# Label -> placeholder, most specific label first (the order breaks ties between equally long candidates).
PLACEHOLDERS: Dict[str, str] = {
    "EMAIL": "[email]",
    "ACTIVATION_CODE": "[activation code]",
    "CARD_NUMBER": "[card number]",
    "NRIC": "[nric]",
    "PASSPORT": "[passport]",
    "BRN": "[brn]",
    "PHONE": "[phone]",
    "ACCOUNT_NUMBER": "[account number]",
    "ONE_TIME_CODE": "[code]",
}
_PRIORITY = {label: rank for rank, label in enumerate(PLACEHOLDERS)}

# Public addresses that the bot's own answers give out: not personal data.
PUBLIC_EMAILS = frozenset({"help@tm.com.my", "no-reply@kasperskymy.com"})

# Strings the pipeline's vocabulary may hold before the pipeline is rebuilt. spaCy keeps every token it has seen,
# so without a bound the process would grow forever and keep each redacted value in memory.
MAX_VOCAB_STRINGS = 100_000

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_INFIXES = [
    r"(?<=[0-9A-Za-z])-(?=[0-9A-Za-z])",   # "8DZ5N-MJ7K2" and "MJ7K2-QX9P4" alike: codes tokenize the same
    r"(?<=[A-Za-z])[:=#.](?=[0-9+])",      # "hp:0123456789", "kod=482913", "acc#1012345678", "no.0123456789"
    r"(?<=[0-9])/(?=[0-9+])",              # "0123456789/0198765432"
]
# spaCy splits units off numbers ("5km" -> "5", "km"), which would also cut codes ("Z2K6M" -> "Z2K6", "M").
_UNIT_SUFFIX = rf"(?<=[0-9])(?:{UNITS})"
_CURRENCIES = frozenset({"rm", "myr", "usd", "sgd", "$"})

_PASSPORT_WORDS = ["passport", "pasport", "paspot"]
# Words allowed between the passport word and the number: "passport no.: A1234567", "A1234567 is my passport".
_PASSPORT_FILLERS = ["no", ".", "number", "num", "nombor", "nomor", ":", "#", "-", "=",
                     "is", "ialah", "adalah", "my", "saya", "sy", "aku", "ni", "the"]
_FOREIGN_PASSPORT = r"^[A-Za-z]{1,2}[0-9]{6,8}$"

# A number as typed: first group (with "+" or in brackets), then groups joined by at most one space or dash.
_NUMBER_LAYOUT = re.compile(r"(?:(?P<paren>\(\+?\d+\))|(?P<plus>\+)?\d+)(?:[ -]?\d+)*")
_MALAYSIAN_PHONE = re.compile(r"(?:60|0)(?:1\d{8,9}|[3-9]\d{7,8})")
_CARD_LAYOUT = re.compile(r"\d{13,19}|\d{3,6}(?:[ -]\d{3,6}){2,5}")
_NEW_BRN = re.compile(r"(?:19|20)\d\d0[1-6]\d{6}")     # the digits of YYYYTTNNNNNN
# Old SSM formats as matched; a check letter may carry the "." spaCy keeps on single letters ("123456-A.").
_OLD_BRN = re.compile(r"(?:(?:\d{4,7}|\d{9})-[A-Za-z]|\d{4,7} [A-HJ-Z]|[A-Za-z]{2}\d{7}-[A-Za-z]"
                      r"|(?i:LLP)\d{7}-[A-Za-z]{3})\.?")


@dataclass(frozen=True)
class PersonalData:
    """One piece of personal data in a text: its label, character offsets [start, end) and the text itself."""

    label: str
    start: int
    end: int
    text: str


class _Pipeline(NamedTuple):
    """The tokenizer-only spaCy pipeline and the matcher run over its documents."""

    nlp: Language
    matcher: Matcher


_LOCK = threading.Lock()   # spaCy's vocabulary and tokenizer cache are shared, mutable and not thread-safe


_DASH: Dict[str, Any] = {"ORTH": "-", "OP": "?"}      # optional; a space between tokens needs no token
_DIGIT_GROUP: Dict[str, Any] = {"TEXT": {"REGEX": r"^[0-9]{1,12}$"}}


def _number_patterns() -> List[List[Dict[str, Any]]]:
    """1-4 digit groups with optional dashes; the first group may carry "+" or sit in brackets ("(03) 2345 6789")."""
    first_variants: List[List[Dict[str, Any]]] = [
        [{"TEXT": {"REGEX": r"^\+?[0-9]{1,12}$"}}],
        [{"ORTH": "("}, {"TEXT": {"REGEX": r"^\+?[0-9]{1,4}$"}}, {"ORTH": ")"}],
    ]
    return [first + [_DASH, _DIGIT_GROUP] * more for first in first_variants for more in range(4)]


def _build() -> _Pipeline:
    """A blank multi-language tokenizer with our splitting rules, and a matcher holding every pattern."""
    nlp = spacy.blank("xx")
    tokenizer: Any = nlp.tokenizer
    tokenizer.infix_finditer = compile_infix_regex([*(nlp.Defaults.infixes or ()), *_INFIXES]).finditer
    tokenizer.suffix_search = compile_suffix_regex([s for s in nlp.Defaults.suffixes or () if s != _UNIT_SUFFIX]).search
    tokenizer.token_match = _EMAIL.fullmatch
    group = {"TEXT": {"REGEX": r"^[A-Za-z0-9]{5}$"}}
    foreign_passport = {"TEXT": {"REGEX": _FOREIGN_PASSPORT}}
    word = {"LOWER": {"IN": _PASSPORT_WORDS}}
    fillers = {"LOWER": {"IN": _PASSPORT_FILLERS}, "OP": "*"}
    matcher = Matcher(nlp.vocab)
    matcher.add("EMAIL", [[{"TEXT": {"REGEX": _EMAIL.pattern}}]])
    matcher.add("ACTIVATION_CODE", [[group, _DASH, group, _DASH, group, _DASH, group],
                                    [{"TEXT": {"REGEX": r"^[A-Za-z0-9]{20}$"}}]])
    matcher.add("PASSPORT", [[{"TEXT": {"REGEX": r"^[AHKahk][0-9]{8}$"}}]])
    matcher.add("PASSPORT_NEAR_WORD", [[word, fillers, foreign_passport], [foreign_passport, fillers, word]])
    matcher.add("NUMBER", _number_patterns())
    card_group = {"TEXT": {"REGEX": r"^[0-9]{3,6}$"}}
    matcher.add("CARD_NUMBER", [[{"TEXT": {"REGEX": r"^[0-9]{13,19}$"}}],
                                *([card_group] + [_DASH, card_group] * more for more in range(2, 6))])
    matcher.add("BRN", [[{"TEXT": {"REGEX": r"^[A-Za-z]{0,3}[0-9]{1,9}$"}}, _DASH,
                         {"TEXT": {"REGEX": r"^[A-Za-z]{1,3}\.?$"}}]])
    return _Pipeline(nlp, matcher)


@functools.lru_cache(maxsize=1)
def _pipeline() -> _Pipeline:
    """The pipeline, built once per process (and again only after its vocabulary reached MAX_VOCAB_STRINGS)."""
    return _build()


def _activation_code(text: str) -> bool:
    """Whether 4 groups of 5 (or 20 characters in a row) look like an activation code rather than words."""
    groups = re.findall(r"[A-Za-z0-9]+", text)
    compact = "".join(groups)
    if not (any(ch.isdigit() for ch in compact) and any(ch.isalpha() for ch in compact)):
        return False
    spaced = len(groups) > 1 and "-" not in text
    return not spaced or sum(any(ch.isdigit() for ch in group) for group in groups) >= 2


def _is_date(yymmdd: str) -> bool:
    """Whether 6 digits can be a birth date as an NRIC starts with it."""
    month, day = int(yymmdd[2:4]), int(yymmdd[4:6])
    return 1 <= month <= 12 and 1 <= day <= calendar.monthrange(2000, month)[1]   # 2000: 29 Feb is a date


def _luhn(digits: str) -> bool:
    """Whether digits pass the Luhn check that every payment card number passes."""
    total = 0
    for position, digit in enumerate(int(ch) for ch in reversed(digits)):
        doubled = digit * 2 if position % 2 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def _card_number(text: str) -> bool:
    """Whether a run of digit groups as typed is a payment card number."""
    digits = re.sub(r"\D", "", text)
    return bool(_CARD_LAYOUT.fullmatch(text)) and 13 <= len(digits) <= 19 and _luhn(digits)


def _number_label(text: str) -> Optional[str]:
    """The label of a number as typed, or None when it is no personal data we know (price, year, reference...)."""
    layout = _NUMBER_LAYOUT.fullmatch(text)
    if not layout:
        return None
    digits = re.sub(r"\D", "", text)
    groups = [len(g) for g in re.findall(r"\d+", text)]
    plain = not (layout["plus"] or layout["paren"])
    if plain and len(digits) == 12 and (re.fullmatch(r"\d{6}-\d{2}-\d{4}", text) or (
            groups in ([12], [6, 2, 4]) and _is_date(digits[:6]))):
        return "NRIC"
    if plain and groups in ([12], [4, 2, 6]) and _NEW_BRN.fullmatch(digits):
        return "BRN"
    if _MALAYSIAN_PHONE.fullmatch(digits) and (not plain or digits[0] == "0" or digits.startswith("60")):
        return "PHONE"
    if layout["plus"] and 8 <= len(digits) <= 15:
        return "PHONE"
    if plain and len(digits) == 10 and digits[0] != "0" and min(groups) >= 3:
        return "ACCOUNT_NUMBER"
    if plain and len(digits) == 6 and groups in ([6], [3, 3]):
        return "ONE_TIME_CODE"
    return None


def _standalone_number(span: Span) -> bool:
    """Whether a number stands alone: not joined to more digits, not an amount of money."""
    text = span.doc.text
    before, after = text[max(span.start_char - 2, 0):span.start_char], text[span.end_char:span.end_char + 2]
    if re.search(r"\d[ -]?$", before) or re.match(r"[ -]?\d", after):
        return False
    return span.start == 0 or span.doc[span.start - 1].lower_ not in _CURRENCIES


_Candidate = Tuple[str, int, int]   # label, start and end character


def _candidate(key: str, span: Span) -> Optional[_Candidate]:
    """What one matcher match (pattern `key`) found, or None when the rules drop it."""
    if key == "EMAIL":   # the address only, should the token carry more ("john@x.com/abc")
        found = _EMAIL.search(span.text)
        if found is None:
            return None
        start = span.start_char + found.start()
        return None if found[0].lower() in PUBLIC_EMAILS else ("EMAIL", start, start + len(found[0]))
    if key == "PASSPORT_NEAR_WORD":
        number = next(token for token in span if re.match(_FOREIGN_PASSPORT, token.text))
        return "PASSPORT", number.idx, number.idx + len(number)
    if key == "NUMBER":
        label = _number_label(span.text)
        return (label, span.start_char, span.end_char) if label and _standalone_number(span) else None
    if key == "CARD_NUMBER":
        return (key, span.start_char, span.end_char) if _card_number(span.text) and _standalone_number(span) else None
    if key == "BRN":   # an old format, without the "." a check letter may carry
        if not _OLD_BRN.fullmatch(span.text) or (span.text[0].isdigit() and not _standalone_number(span)):
            return None
        return key, span.start_char, span.end_char - 1 if span.text.endswith(".") else span.end_char
    if key == "ACTIVATION_CODE" and not _activation_code(span.text):
        return None
    return key, span.start_char, span.end_char   # ACTIVATION_CODE or PASSPORT


def find_personal_data(text: str) -> List[PersonalData]:
    """Personal data in `text`, sorted by position and not overlapping."""
    if not any(ch.isdigit() or ch == "@" for ch in text):   # every label needs a digit or an "@"
        return []
    with _LOCK:
        pipeline = _pipeline()
        doc = pipeline.nlp(text)
        candidates: List[_Candidate] = []
        for match_id, start, end in pipeline.matcher(doc):
            candidate = _candidate(pipeline.nlp.vocab.strings[match_id], doc[start:end])
            if candidate:
                candidates.append(candidate)
        if len(pipeline.nlp.vocab.strings) > MAX_VOCAB_STRINGS:
            _pipeline.cache_clear()
    candidates.sort(key=lambda c: (c[1] - c[2], _PRIORITY[c[0]], c[1]))
    chosen: List[PersonalData] = []
    for label, start, end in candidates:
        if all(end <= other.start or start >= other.end for other in chosen):
            chosen.append(PersonalData(label, start, end, text[start:end]))
    return sorted(chosen, key=lambda item: item.start)


def redact(text: str) -> str:
    """`text` with each piece of personal data replaced by its placeholder; the same string when there is none."""
    found = find_personal_data(text)
    if not found:
        return text
    pieces: List[str] = []
    position = 0
    for item in found:
        pieces += [text[position:item.start], PLACEHOLDERS[item.label]]
        position = item.end
    pieces.append(text[position:])
    return "".join(pieces)
