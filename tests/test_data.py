"""The knowledge base and training data: contract intents, bilingual parity, sources, limits, seed facts."""
import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from actions.account import RESPONSES_SENT_BY_ACCOUNT_ACTIONS
from actions.actions import RESPONSES_SENT_BY_ACTIONS
from bot.dialogue.knowledge import (
    knowledge_base,
    load_knowledge_base,
    training_examples,
    ui_labels,
    variation_language,
)
from bot.nlu.held_out import HELD_OUT_SETS, held_out_messages, near_copy
from bot.nlu.text import normalize_message
from bot.paths import FROZEN_NLU_DIR, REPO_ROOT
from bot.services import child_environment
from bot.settings import load_settings

INTENTS_MD = REPO_ROOT.parent / "shared" / "intents.md"
MAX_TEXT = 2000  # Messenger's limit
MAX_TITLE = 20  # Messenger quick-reply title limit
MIN_EXAMPLES = 12
# Intents added beside the contract (intents.md allows additions): identity verification.
ADDED_INTENTS = {"verify_identity", "log_out"}
CLOSE_GROUPS = [("faq/bill_date", "faq/receive_bill", "faq/billing_cutoff")]
INDONESIAN = re.compile(r"\b(bisa|gimana|nggak|kata sandi|unduh|perangkat|tagihan|rekening|kamu)\b", re.I)


def contract_labels():
    if not INTENTS_MD.exists():
        pytest.skip("../shared/intents.md (the intent contract) is not beside this checkout")
    return set(re.findall(r"^\|\s*((?:faq|support)/[a-z_]+|[a-z_]+)\s*\|", INTENTS_MD.read_text(), re.M)) - {
        "intent"
    } | {"greet", "goodbye", "thank", "affirm", "deny"}


@functools.lru_cache(maxsize=None)
def all_responses():
    """Every response of domain.yml and data/faq/ (read once: the tests below only read it)."""
    responses = dict(yaml.safe_load((REPO_ROOT / "domain.yml").read_text())["responses"])
    for path in sorted((REPO_ROOT / "data" / "faq").glob("*.yml")):
        responses.update(yaml.safe_load(path.read_text()).get("responses") or {})
    return responses


def test_contract_has_the_expected_size():
    labels = contract_labels()
    assert len([label for label in labels if label.startswith("faq/")]) == 29
    assert len([label for label in labels if label.startswith("support/")]) == 13
    assert len(labels) == 56


def test_every_contract_intent_is_trained_and_answered():
    examples = training_examples()
    kb = knowledge_base()
    domain = yaml.safe_load((REPO_ROOT / "domain.yml").read_text())
    for label in contract_labels():
        assert len(examples.get(label, [])) >= MIN_EXAMPLES, label
        if "/" in label or label.startswith(("ask_", "lost_")):
            assert label in kb, f"no answer for {label}"
        else:
            assert label in domain["intents"], label


def test_no_intent_outside_the_contract_is_trained():
    assert set(training_examples()) <= contract_labels() | ADDED_INTENTS
    assert ADDED_INTENTS <= set(training_examples())


def test_close_intents_have_more_examples():
    examples = training_examples()
    for group in CLOSE_GROUPS:
        for label in group:
            assert len(examples[label]) >= 20, label


def test_examples_cover_english_malay_and_mixed():
    from bot.nlu.language import detect_language

    for label, texts in training_examples().items():
        languages = {detect_language(text) for text in texts}
        assert {"en", "ms"} <= languages, f"{label}: {languages}"


def test_no_example_is_trained_for_two_intents():
    seen = {}
    for label, texts in training_examples().items():
        for text in texts:
            key = normalize_message(text)
            assert seen.setdefault(key, label) == label, f"{text!r} in {seen[key]} and {label}"


@pytest.mark.parametrize("folder, min_words", HELD_OUT_SETS, ids=["development", "frozen"])
def test_held_out_set_is_not_in_training_data(folder, min_words):
    """No training example is the same as, or a near-copy of, a held-out message (bot/nlu/held_out.py: rapidfuzz
    token_sort >= 90; in the frozen set, messages of four words or more). A match in the frozen set means the
    training example goes (the frozen set never changes)."""
    trained = [normalize_message(t) for texts in training_examples().values() for t in texts]
    frozen = folder == FROZEN_NLU_DIR
    for held_out in held_out_messages(folder, min_words):
        match = near_copy(held_out, trained)
        # A frozen message is never shown, not even here: the training example names what to remove.
        shown = "a frozen-set message" if frozen else repr(held_out)
        assert match is None, f"{shown} is (nearly) trained on: {match!r}"


@pytest.mark.parametrize("name", sorted(all_responses()))
def test_every_response_has_english_and_malay(name):
    variations = all_responses()[name]
    languages = [variation_language(v) for v in variations]
    assert languages.count("en") == 1 and languages.count("ms") == 1, (name, languages)
    for variation in variations:
        text = variation.get("text", "")
        assert text.strip(), name
        assert len(text) <= MAX_TEXT, (name, len(text))
    malay = next(v["text"] for v in variations if variation_language(v) == "ms")
    assert not INDONESIAN.search(malay), (name, INDONESIAN.search(malay).group(0))


def test_every_answer_names_its_source_and_has_short_titles():
    kb = load_knowledge_base()
    assert len(kb) == 47  # 29 faq + 13 support + 5 account intents
    for answer in kb:
        assert re.match(r"^(FAQ \d|Support Rules)", answer.source), (answer.key, answer.source)
        assert set(answer.texts) == {"en", "ms"} and answer.texts["en"] != answer.texts["ms"], answer.key
        for language in ("en", "ms"):
            assert 0 < len(answer.title(language)) <= MAX_TITLE, (answer.key, answer.title(language))
    for label in ui_labels().values():
        assert set(label) == {"en", "ms"} and all(len(t) <= MAX_TITLE for t in label.values())


def test_sources_are_the_same_in_both_languages():
    for name, variations in all_responses().items():
        sources = {(v.get("metadata") or {}).get("source") for v in variations}
        assert len(sources) == 1, (name, sources)


FACTS = yaml.safe_load((Path(__file__).parent / "seed_facts.yml").read_text())


@pytest.mark.parametrize("key", sorted(FACTS))
def test_seed_facts_in_both_languages(key):
    answer = knowledge_base().get(key)
    assert answer is not None, key
    for language in ("en", "ms"):
        text = answer.text(language).lower()
        for fact in FACTS[key].get("both", []) + FACTS[key].get(language, []):
            assert fact.lower() in text, f"{key} [{language}] lacks {fact!r}"


def test_no_price_or_url_that_the_seeds_do_not_have():
    seeds = REPO_ROOT.parent / "shared" / "seeds"
    if not seeds.exists():
        pytest.skip("../shared/seeds is not beside this checkout")
    seed_text = " ".join(p.read_text() for p in seeds.glob("*.txt"))
    for name, variations in all_responses().items():
        for variation in variations:
            for price in re.findall(r"RM\s?\d+", variation["text"]):
                assert price.replace(" ", "") in seed_text, (name, price)
            for url in re.findall(r"https?://[^\s)]+", variation["text"]):
                assert url.rstrip(".,") in seed_text, (name, url)


@pytest.mark.integration
def test_stock_rasa_data_validate_is_clean():
    """`rasa data validate` as it comes, with its default paths (domain.yml, config.yml, data/)."""
    result = subprocess.run(
        [sys.executable, "-m", "rasa", "data", "validate"],
        cwd=REPO_ROOT, env=child_environment(load_settings()), capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    warnings = re.findall(r"UserWarning: (.*)", output)
    expected = [f"The utterance '{name}' is not used in any story or rule." for name in
                RESPONSES_SENT_BY_ACTIONS + RESPONSES_SENT_BY_ACCOUNT_ACTIONS]
    # Rasa 3.6 reports retrieval intents declared in domain.yml as duplicates when it merges data/faq/ in.
    expected.append("The following duplicated intents have been found across multiple domain files: faq, support")
    unexpected = [w for w in warnings if w.strip() not in expected]
    assert not unexpected, unexpected
