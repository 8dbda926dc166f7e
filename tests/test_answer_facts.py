"""What the assistant tells customers beyond the knowledge base (account answers, verification, emails, the
gateway's notices) states only what the seeds or the operator policy file hold: no number, address or link from
elsewhere, no internal FAQ numbering, and every figure that rests on policy is called an estimate, with the rule
spelled out and Unifi named as the one who confirms it."""
import re

import pytest
import yaml

from actions.account import RESPONSES_SENT_BY_ACCOUNT_ACTIONS
from bot.accounts.identifiers import ACCOUNT_NUMBER_DIGITS, CODE_DIGITS
from bot.accounts.verification import CODE_LIFETIME
from bot.dialogue.knowledge import variation_language
from bot.paths import REPO_ROOT, RESOURCES_DIR

SEEDS = REPO_ROOT.parent / "shared" / "seeds"
POLICY_FILE = RESOURCES_DIR / "accounts" / "policy.yml"
# Numbers the product itself defines, not the documents: how customers verify (bot/accounts/), and the length
# limit of a message (the gateway). Each is named where it comes from.
OPERATIONAL_NUMBERS = {str(ACCOUNT_NUMBER_DIGITS), str(CODE_DIGITS), str(int(CODE_LIFETIME.total_seconds() // 60)),
                       "2,000", "24"}
INTERNAL_NUMBERING = re.compile(r"\b(FAQ|Soalan Lazim)\s*\d+", re.I)
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def seed_text() -> str:
    if not SEEDS.exists():
        pytest.skip("../shared/seeds is not beside this checkout")
    return " ".join(path.read_text() for path in sorted(SEEDS.glob("*.txt")))


def domain_responses():
    return yaml.safe_load((REPO_ROOT / "domain.yml").read_text())["responses"]


def customer_texts():
    """(where, language, text) of everything the assistant and the gateway send besides knowledge-base answers."""
    responses = domain_responses()
    for name, variations in responses.items():
        for variation in variations:
            yield f"domain.yml {name}", variation_language(variation), variation.get("text", "")
    for key, notice in yaml.safe_load((RESOURCES_DIR / "gateway" / "notices.yml").read_text())["notices"].items():
        for language in ("en", "ms"):
            yield f"notices.yml {key}", language, notice[language]
    for key, email in yaml.safe_load((RESOURCES_DIR / "accounts" / "emails.yml").read_text()).items():
        yield f"emails.yml {key}", "en+ms", email["subject"] + "\n" + email["body"]


def faq_texts():
    for path in sorted((REPO_ROOT / "data" / "faq").glob("*.yml")):
        for name, variations in (yaml.safe_load(path.read_text()).get("responses") or {}).items():
            for variation in variations:
                yield f"{path.name} {name}", variation_language(variation), variation.get("text", "")


def test_no_customer_text_carries_internal_faq_numbers():
    found = [(where, language, match.group(0)) for where, language, text in [*customer_texts(), *faq_texts()]
             for match in [INTERNAL_NUMBERING.search(text)] if match]
    assert not found, found


def test_account_and_verification_texts_hold_only_numbers_and_addresses_of_the_seeds_or_the_policy():
    seeds = seed_text()
    policy = POLICY_FILE.read_text()
    account_names = set(RESPONSES_SENT_BY_ACCOUNT_ACTIONS)
    checked = 0
    for where, language, text in customer_texts():
        if where.startswith("domain.yml") and where.split()[1] not in account_names:
            continue
        checked += 1
        bare = PLACEHOLDER.sub(" ", text)
        for address in re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", bare):
            assert address in seeds, (where, language, address)
        for link in re.findall(r"https?://[^\s)]+|\b[\w-]+\.(?:com|my)(?:\.my)?\b", bare):
            assert link.rstrip(".,") in seeds, (where, language, link)
        without_links = re.sub(r"https?://\S+|[\w.+-]+@\S+", " ", bare)
        for number in re.findall(r"\d[\d,]*", without_links):
            number = number.rstrip(",")
            assert number in seeds or number in policy or number in OPERATIONAL_NUMBERS, (where, language, number)
    assert checked > 60


# Templates whose figures rest on operator policy: the word for an estimate, the policy named as ours, and
# Unifi as the one who confirms, in each language.
POLICY_WORDS = {"en": ("estimate", "operator policy"), "ms": ("anggaran", "dasar operator")}
CONFIRMS = {"en": "Unifi confirms", "ms": "Unifi akan mengesahkan"}


@pytest.mark.parametrize("name", ["utter_account_penalty_footer", "utter_account_proration",
                                  "utter_account_downgrade_note", "utter_account_downgrade_note_policy"])
def test_a_figure_that_rests_on_policy_is_an_estimate_with_its_rule(name):
    for variation in domain_responses()[name]:
        language, text = variation_language(variation), variation["text"]
        lowered = text.lower()
        assert all(word in lowered for word in POLICY_WORDS[language]), (name, language)
        assert re.search(r"\{(part_month|proration|device)_rule\}", text), (name, language)   # the rule, spelled out
        if name != "utter_account_downgrade_note":
            assert CONFIRMS[language] in text, (name, language)


def test_penalty_lines_are_estimates_too():
    for name in ("utter_account_penalty_line", "utter_account_penalty_total"):
        for variation in domain_responses()[name]:
            language = variation_language(variation)
            assert POLICY_WORDS[language][0] in variation["text"].lower(), (name, language)


def test_every_code_message_names_the_sender_and_says_unifi_never_asks_for_it():
    responses = domain_responses()
    never = {"en": "never asks for your password", "ms": "tidak akan meminta kata laluan"}
    for name in ("utter_verification_code_sent", "utter_account_codes_sent"):
        for variation in responses[name]:
            language = variation_language(variation)
            assert "{sender}" in variation["text"] and never[language] in variation["text"], (name, language)
    emails = yaml.safe_load((RESOURCES_DIR / "accounts" / "emails.yml").read_text())
    for kind in ("verification_code", "activation_codes"):
        body = emails[kind]["body"]
        assert body.count("{sender}") == 2 and never["en"] in body and never["ms"] in body, kind
