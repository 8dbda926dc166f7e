"""tools/evaluation.py without a model: the folds of the cross-validation and the data each fold trains on."""
import yaml

from bot.dialogue.knowledge import parse_examples
from tools.evaluation import (
    Prediction,
    TestExample,
    accuracy_by_language,
    cross_validation_folds,
    format_report,
    write_fold_data,
)


def test_folds_are_stratified_disjoint_and_cover_every_example():
    examples = {"greet": [f"hi {n}" for n in range(10)], "faq/plans": [f"price {n}" for n in range(7)],
                "deny": ["no", "no", "nope"]}                             # a duplicate is one example
    folds = cross_validation_folds(examples, 5)
    assert len(folds) == 5
    dealt = [pair for fold in folds for pair in fold]
    assert sorted(dealt) == sorted({(label, text) for label, texts in examples.items() for text in texts})
    for fold in folds:
        assert sum(label == "greet" for label, _ in fold) == 2               # 10 greetings over 5 folds
        assert 1 <= sum(label == "faq/plans" for label, _ in fold) <= 2
    assert cross_validation_folds(examples, 5) == folds                    # seeded: the same every run
    assert cross_validation_folds(examples, 5, seed=7) != folds


def test_a_fold_trains_on_everything_but_its_own_examples(tmp_path):
    nlu, faq = tmp_path / "nlu", tmp_path / "faq"
    nlu.mkdir(), faq.mkdir()
    (nlu / "conversation.yml").write_text(yaml.safe_dump({"version": "3.1", "nlu": [
        {"intent": "greet", "examples": "- hi\n- hello\n- hai\n"},
        {"regex": "account_number", "examples": "- \\d{10}\n"}]}))
    (faq / "product.yml").write_text(yaml.safe_dump({"version": "3.1", "nlu": [
        {"intent": "faq/plans", "examples": "- how much\n- harga?\n"}],
        "responses": {"utter_faq/plans": [{"text": "RM30"}]}}))
    write_fold_data([("greet", "hello"), ("faq/plans", "harga?")], tmp_path / "fold", folders=(nlu, faq))
    written = {path.name: yaml.safe_load(path.read_text()) for path in (tmp_path / "fold").iterdir()}
    assert sorted(written) == ["faq_product.yml", "nlu_conversation.yml"]
    conversation = written["nlu_conversation.yml"]["nlu"]
    assert parse_examples(conversation[0]["examples"]) == ["hi", "hai"]
    assert conversation[1] == {"regex": "account_number", "examples": "- \\d{10}\n"}
    assert parse_examples(written["faq_product.yml"]["nlu"][0]["examples"]) == ["how much"]
    assert written["faq_product.yml"]["responses"] == {"utter_faq/plans": [{"text": "RM30"}]}


def test_a_fallback_counts_as_a_miss_when_answered_and_the_report_lists_every_language():
    def prediction(language, label, top1, answered):
        return Prediction(TestExample("x", label, language), top1, answered)

    report = accuracy_by_language([prediction("en", "greet", "greet", "greet"),
                                   prediction("en", "greet", "greet", "nlu_fallback"),
                                   prediction("other", "deny", "affirm", "affirm")])
    assert report["en"] == {"n": 2, "top1": 1.0, "answered": 0.5, "fallback_rate": 0.5}
    assert report["all"]["answered"] == 1 / 3
    table = format_report("CV", report).splitlines()
    assert [line.split()[0] for line in table[2:]] == ["en", "other", "all"]
