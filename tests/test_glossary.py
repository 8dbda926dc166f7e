"""Every Malay text the product sends uses the glossary's one canonical term per concept
(resources/lexicon/glossary.yml), and every response has exactly one English and one Malay variant.

Malay texts: the ms variants of the responses of data/faq/*.yml and domain.yml, the `ms:` strings of
resources/gateway/notices.yml (and sources.yml), resources/accounts/formats.yml, resources/accounts/policy.yml and
resources/ui.yml, and the Malay half of resources/accounts/emails.yml (subject after " / ", the body's Malay
paragraphs).
Pure file reading: no Rasa, no process."""
import re
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
import yaml

from bot.dialogue.knowledge import variation_language
from bot.paths import FAQ_DIR, LEXICON_DIR, REPO_ROOT, RESOURCES_DIR

GLOSSARY_FILE = LEXICON_DIR / "glossary.yml"
LANGUAGE_FILE = LEXICON_DIR / "language.yml"
DOMAIN_FILE = REPO_ROOT / "domain.yml"
EMAILS_FILE = RESOURCES_DIR / "accounts" / "emails.yml"
# Files whose Malay strings are the values of `ms:` keys, wherever they are in the file.
MS_KEY_FILES = [RESOURCES_DIR / "gateway" / "notices.yml", RESOURCES_DIR / "accounts" / "formats.yml",
                RESOURCES_DIR / "accounts" / "policy.yml", RESOURCES_DIR / "ui.yml"]
# The widget's source line under an answer (new beside this test: checked once it is there).
MS_KEY_FILES += [path for path in [RESOURCES_DIR / "gateway" / "sources.yml"] if path.exists()]
RESPONSE_FILES = sorted(FAQ_DIR.glob("*.yml")) + [DOMAIN_FILE]

# Taken out of a text before it is checked: links, bare domains, e-mail addresses, {placeholders}.
NOT_PROSE = re.compile(r"https?://\S+|www\.\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|my|net|org)"
                       r"(?:\.my)?\b\S*|\{[a-z_]+\}", re.I)
# A clause number of the support rules at the start of a line ("• 4.2.6. ", "3.1. "), or a rule cited by number.
CLAUSE_NUMBER = re.compile(r"^\W*\d+\.\d+(?:\.\d+)*\.?\s|\b(?:Support Rules|Peraturan Sokongan)\s+\d", re.I | re.M)


def rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def load_glossary() -> dict:
    return yaml.safe_load(GLOSSARY_FILE.read_text(encoding="utf-8"))


def term_pattern(term: str) -> "re.Pattern[str]":
    """`term` as a whole word or phrase, case-insensitively: no letter, digit or hyphen may touch it (so 'mel' is
    not found in 'e-mel', nor 'fi' in 'Wi-Fi'); spaces inside a phrase match any whitespace."""
    words = r"\s+".join(re.escape(word) for word in term.split())
    return re.compile(rf"(?<![\w-]){words}(?![\w-])", re.I)


class Checker:
    """Finds the `avoid` variants of a glossary in a Malay text."""

    def __init__(self, glossary: dict):
        names = sorted(glossary.get("names") or [], key=len, reverse=True)
        self._names = [term_pattern(name) for name in names]
        variants = [(variant, concept["ms"])
                    for concept in glossary["concepts"] for variant in concept.get("avoid") or []]
        # Longest first: "Password Manager" is reported once, not also as "password".
        self._avoid = [(variant, canonical, term_pattern(variant))
                       for variant, canonical in sorted(variants, key=lambda v: len(v[0]), reverse=True)]

    def prose(self, text: str) -> str:
        text = NOT_PROSE.sub(" ", text)
        for name in self._names:
            text = name.sub(" ", text)
        return text

    def violations(self, text: str) -> List[Tuple[str, str]]:
        """(variant found, canonical term) for every avoided variant in `text`."""
        prose, found = self.prose(text), []
        for _, canonical, pattern in self._avoid:
            for match in pattern.finditer(prose):
                found.append((match.group(0), canonical))
            prose = pattern.sub(lambda match: " " * len(match.group(0)), prose)
        return found


# --- Collecting the Malay texts


def responses_of(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")).get("responses") or {}


def malay_responses(path: Path) -> Iterator[Tuple[str, str]]:
    for name, variations in responses_of(path).items():
        for variation in variations:
            if variation_language(variation) == "ms":
                yield name, variation.get("text", "")


def ms_values(node, where: str = "") -> Iterator[Tuple[str, str]]:
    """(key path, text) of every value of an `ms:` key (a string, or each string of a list)."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "ms":
                for index, text in enumerate(value if isinstance(value, list) else [value]):
                    yield (path if not isinstance(value, list) else f"{path}[{index}]"), str(text)
            else:
                yield from ms_values(value, path)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from ms_values(value, f"{where}[{index}]")


def _language_words():
    lexicon = yaml.safe_load(LANGUAGE_FILE.read_text(encoding="utf-8"))
    return set(lexicon["malay_grammar"]), set(lexicon["english_function"])


def is_malay_paragraph(paragraph: str) -> bool:
    """More Malay function words than English ones (resources/lexicon/language.yml)."""
    malay, english = _language_words()
    words = re.findall(r"[a-z]+", NOT_PROSE.sub(" ", paragraph).lower())
    return sum(w in malay for w in words) > sum(w in english for w in words)


def email_malay_parts(email: dict) -> Iterator[Tuple[str, str]]:
    """The Malay part of a bilingual email: the subject after ' / ', and the body's Malay paragraphs."""
    if " / " in email["subject"]:
        yield "subject", email["subject"].split(" / ", 1)[1]
    for index, paragraph in enumerate(re.split(r"\n\s*\n", email["body"])):
        if is_malay_paragraph(paragraph):
            yield f"body paragraph {index + 1}", paragraph


def malay_texts(path: Path) -> List[Tuple[str, str]]:
    """(response or key, Malay text) of one file."""
    if path in RESPONSE_FILES:
        return list(malay_responses(path))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if path == EMAILS_FILE:
        return [(f"{key} {part}", text) for key, email in data.items() for part, text in email_malay_parts(email)]
    return list(ms_values(data))


MALAY_FILES = RESPONSE_FILES + MS_KEY_FILES + [EMAILS_FILE]


@pytest.mark.parametrize("path", MALAY_FILES, ids=rel)
def test_malay_texts_use_the_canonical_terms(path):
    checker = Checker(load_glossary())
    texts = malay_texts(path)
    assert texts, f"no Malay text found in {rel(path)}: has its structure changed?"
    found = [f"{rel(path)} {where}: {variant!r} -> use {canonical!r}"
             for where, text in texts for variant, canonical in checker.violations(text)]
    assert not found, "Malay text not in the glossary's terms:\n" + "\n".join(found)


def test_every_email_has_a_malay_half():
    emails = yaml.safe_load(EMAILS_FILE.read_text(encoding="utf-8"))
    for key, email in emails.items():
        parts = [part for part, _ in email_malay_parts(email)]
        assert "subject" in parts and any(part.startswith("body") for part in parts), (key, parts)


# --- The checker itself


def test_checker_catches_a_bad_sample_and_passes_a_good_one():
    checker = Checker(load_glossary())
    bad = ("Tip: sila hubungi Pusat Panggilan Unifi atau kunjungi outlet TMpoint yang berdekatan; permohonan anda "
           "akan diproses. Fi penalti dikenakan. Semak emel anda. Tempoh bil lalai ialah hari ke-22.")
    found = {variant.lower() for variant, _ in checker.violations(bad)}
    assert found >= {"tip", "pusat panggilan unifi", "outlet", "berdekatan", "permohonan", "fi", "emel", "lalai"}, found
    assert ("Pusat Panggilan Unifi", "Pusat Hubungan Unifi") in checker.violations(bad)
    good = ("Petua: sila hubungi Pusat Hubungan Unifi di talian 100, e-mel help@tm.com.my atau kunjungi cawangan "
            "TMpoint/Unifi Store yang terdekat. Permintaan anda akan diproses. Log masuk ke "
            "https://support.kaspersky.com/ksos7#kb dan gunakan Kaspersky Password Manager atau Live Chat. "
            "Kod dihantar ke {email}. Jaringan Wi-Fi pejabat anda.")
    assert checker.violations(good) == []


# --- The glossary file


def test_glossary_is_well_formed():
    glossary = load_glossary()
    concepts = glossary["concepts"]
    for concept in concepts:
        assert set(concept) <= {"en", "ms", "avoid", "note"} and {"en", "ms", "avoid"} <= set(concept), concept
        assert isinstance(concept["en"], str) and isinstance(concept["ms"], str) and concept["ms"].strip(), concept
        assert isinstance(concept["avoid"], list) and concept["avoid"], concept
        assert len({a.lower() for a in concept["avoid"]}) == len(concept["avoid"]), f"duplicate avoid: {concept}"
    english = [c["en"].lower() for c in concepts]
    malay = [c["ms"].lower() for c in concepts]
    assert len(set(english)) == len(english), "a concept is listed twice (en)"
    assert len(set(malay)) == len(malay), "two concepts share one canonical Malay term"
    avoided = {a.lower(): c["ms"] for c in concepts for a in c["avoid"]}
    both = set(malay) & set(avoided)
    assert not both, f"both canonical and avoided: {both}"
    names = {n.lower() for n in glossary.get("names") or []}
    assert not names & set(avoided), f"a name is also avoided: {names & set(avoided)}"
    checker = Checker(glossary)
    for concept in concepts:  # no canonical term contains what another concept avoids
        assert checker.violations(concept["ms"]) == [], (concept["ms"], checker.violations(concept["ms"]))


# --- Customer text carries no clause numbers of the support rules


@pytest.mark.parametrize("path", RESPONSE_FILES, ids=rel)
def test_no_clause_numbers_in_answers(path):
    found = []
    for name, variations in responses_of(path).items():
        for variation in variations:
            text = NOT_PROSE.sub(" ", variation.get("text", ""))
            found += [(name, variation_language(variation), m.group(0).strip()) for m in CLAUSE_NUMBER.finditer(text)]
    assert not found, found


# --- Bilingual parity


@pytest.mark.parametrize("path", RESPONSE_FILES, ids=rel)
def test_every_response_has_one_english_and_one_malay_variant(path):
    wrong = {}
    for name, variations in responses_of(path).items():
        languages = [variation_language(variation) for variation in variations]
        if languages.count("en") != 1 or languages.count("ms") != 1 or len(languages) != 2:
            wrong[name] = languages
    assert not wrong, f"{rel(path)}: {wrong}"
