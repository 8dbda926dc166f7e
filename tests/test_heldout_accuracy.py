"""The held-out NLU set (tests/nlu/, never trained on) must score >= 0.90 top-1 in every language."""
from tools.evaluation import LANGUAGE_FILES, accuracy_by_language, load_test_set, predict

MIN_ACCURACY = 0.90


def test_held_out_set_is_large_enough():
    examples = load_test_set()
    labels = {e.label for e in examples}
    assert len(labels) == 58  # the 56 of the contract + verify_identity, log_out
    for label in labels:
        per_label = [e for e in examples if e.label == label]
        assert len(per_label) >= 4 and {e.language for e in per_label} == set(LANGUAGE_FILES), label


def test_held_out_top1_accuracy_per_language(model_path):
    predictions, _ = predict(model_path, load_test_set())
    report = accuracy_by_language(predictions)
    low = {language: round(row["top1"], 3) for language, row in report.items() if row["top1"] < MIN_ACCURACY}
    assert not low, f"top-1 accuracy below {MIN_ACCURACY}: {low}"
