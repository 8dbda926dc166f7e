"""The development set (tests/nlu/, tuned on) must score >= 0.95 top-1 in every language; the frozen test set
(tests/nlu_test/, written blind to data/, reported) must not fall below its floor with a fallback counted as a
miss, and keeps its shape: every label of the contract, >= 8 messages each over English, Malay and mixed."""
import hashlib

from bot.paths import FROZEN_NLU_DIR
from tools.evaluation import LANGUAGE_FILES, accuracy_by_language, load_test_set, predict

MIN_ACCURACY = 0.95
# The target, met on 5 December 2026 (evening: 0.954 / 0.968 / 0.990; README, "Measured"): a model that falls
# below it in any language fails. `make eval` reports the figures.
MIN_FROZEN_ANSWERED = 0.95
CONTRACT_LABELS = 56
ADDED_INTENTS = {"verify_identity", "log_out"}         # beside the contract (intents.md allows additions)
FROZEN_SHA256 = "f02b7f299352d47c9f52a52b33f805baca97fe04f4268c06b5a3feb8f99497dc"   # en + ms + mixed


def test_held_out_set_is_large_enough():
    examples = load_test_set()
    labels = {e.label for e in examples}
    assert len(labels) == 58  # the 56 of the contract + verify_identity, log_out
    for label in labels:
        per_label = [e for e in examples if e.label == label]
        assert len(per_label) >= 4 and {e.language for e in per_label} == set(LANGUAGE_FILES), label


def test_the_frozen_set_covers_the_contract_in_every_language():
    examples = load_test_set(FROZEN_NLU_DIR)
    labels = {e.label for e in examples}
    # The contract's labels: the development set's, without the two intents added beside it.
    assert labels == {e.label for e in load_test_set()} - ADDED_INTENTS and len(labels) == CONTRACT_LABELS
    for label in labels:
        per_label = [e for e in examples if e.label == label]
        assert len(per_label) >= 8 and {e.language for e in per_label} == set(LANGUAGE_FILES), label


def test_the_frozen_set_is_unchanged():
    """Frozen: written once (README there), never edited. A change here is a change of what we report."""
    digest = hashlib.sha256()
    for name in ("en.yml", "ms.yml", "mixed.yml"):
        digest.update((FROZEN_NLU_DIR / name).read_bytes())
    assert digest.hexdigest() == FROZEN_SHA256


def test_held_out_top1_accuracy_per_language(model_path):
    predictions, _ = predict(model_path, load_test_set())
    report = accuracy_by_language(predictions)
    low = {language: round(row["top1"], 3) for language, row in report.items() if row["top1"] < MIN_ACCURACY}
    assert not low, f"top-1 accuracy below {MIN_ACCURACY}: {low}"


def test_frozen_set_accuracy_with_the_fallback_counted_stays_above_its_floor(model_path):
    predictions, _ = predict(model_path, load_test_set(FROZEN_NLU_DIR))
    report = accuracy_by_language(predictions)
    low = {language: round(row["answered"], 3) for language, row in report.items()
           if row["answered"] < MIN_FROZEN_ANSWERED}
    assert not low, f"frozen-set accuracy (fallback counted as a miss) below {MIN_FROZEN_ANSWERED}: {low}"
