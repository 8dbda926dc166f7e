"""NLU evaluation: accuracy per language for our pipeline and for Rasa's default pipeline, on two sets, plus
cross-validation on the training data.

- The development set (tests/nlu/{en,ms,mixed}.yml) is never trained on, but pipeline choices have been tuned
  against it: it is what we tune on.
- The frozen test set (tests/nlu_test/) was written blind to data/ and tests/nlu/ by someone who read only the
  seeds and the intent contract; it is never changed, never trained on and never tuned on: it is what we report.
  Its misses are counted, not listed.
A prediction is the full label: 'faq/billing_cutoff' for retrieval intents (intent + response selector),
otherwise the intent name. "top-1" is the classifier's best label, ignoring the fallback; "answered" (what the
customer feels) also requires that the pipeline did not fall back (nlu_fallback: our FullLabelClassifier, or
the default pipeline's FallbackClassifier): a fallback counts as a miss.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from bot.dialogue.fallback import FALLBACK_INTENT
from bot.dialogue.knowledge import parse_examples, training_examples
from bot.gateway.review import low_confidence_below
from bot.nlu.understanding import understanding_from_parse
from bot.paths import FAQ_DIR, FROZEN_NLU_DIR, NLU_DIR, REPO_ROOT, TESTS_NLU_DIR, VAR_DIR
from bot.services import child_environment, rasa_command
from bot.settings import load_settings
from bot.vocabulary import full_label

LANGUAGE_FILES = ("en", "ms", "mixed")
EVAL_DIR = VAR_DIR / "eval"


@dataclass(frozen=True)
class TestExample:
    text: str
    label: str
    language: str


@dataclass(frozen=True)
class Prediction:
    example: TestExample
    top1: str
    answered: str  # top1, or nlu_fallback when the pipeline fell back
    confidence: float = 1.0     # of top1 (bot/nlu/understanding.py): below the review queue's threshold, reviewed
    parse: Dict[str, Any] = field(default_factory=dict)     # the whole parse, when asked for (keep_parse)


def load_test_set(folder: Path = TESTS_NLU_DIR) -> List[TestExample]:
    examples = []
    for language in LANGUAGE_FILES:
        with open(folder / f"{language}.yml", encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
        for item in data.get("nlu") or []:
            for text in parse_examples(item.get("examples", "")):
                examples.append(TestExample(text=text, label=item["intent"], language=language))
    return examples


def predicted_labels(parse_data: Dict) -> Tuple[str, str]:
    """(top-1 label ignoring the fallback, label actually answered)."""
    answered_intent = (parse_data.get("intent") or {}).get("name")
    ranking = [r.get("name") for r in parse_data.get("intent_ranking") or [] if r.get("name") != FALLBACK_INTENT]
    top_intent = ranking[0] if ranking else answered_intent
    top1 = full_label(parse_data, top_intent)
    answered = FALLBACK_INTENT if answered_intent == FALLBACK_INTENT else top1
    return top1, answered


def predict(model_path: str, examples: Iterable[TestExample], keep_parse: bool = False
            ) -> Tuple[List[Prediction], float]:
    """Parse every example with the model in-process; returns predictions and mean parse time (ms). The model is
    loaded with the variables our processes get (bot/services.py), set for the load only: the caller's
    environment is left as it was (an in-process caller, such as a test session, keeps its own)."""
    added = {k: v for k, v in child_environment(load_settings()).items() if k not in os.environ}
    os.environ.update(added)
    try:
        from rasa.core.agent import Agent
        from rasa.utils.log_utils import configure_structlog

        # Rasa's structured log, unconfigured, prints every parse at debug level: with it, an evaluation would
        # show the frozen set's messages and what they were taken for, which are not for tuning.
        configure_structlog(logging.WARNING)

        agent = Agent.load(model_path)
    finally:
        for name in added:
            os.environ.pop(name, None)

    async def run() -> Tuple[List[Prediction], float]:
        predictions, elapsed = [], 0.0
        for example in examples:
            started = time.perf_counter()
            parse_data = await agent.parse_message(example.text)
            elapsed += time.perf_counter() - started
            top1, answered = predicted_labels(parse_data)
            understanding = understanding_from_parse(parse_data)
            predictions.append(Prediction(example, top1, answered, understanding.confidence if understanding else 0.0,
                                          parse_data if keep_parse else {}))
        return predictions, 1000 * elapsed / max(len(predictions), 1)

    return asyncio.run(run())


def accuracy_by_language(predictions: List[Prediction]) -> Dict[str, Dict[str, float]]:
    groups: Dict[str, List[Prediction]] = defaultdict(list)
    for prediction in predictions:
        groups[prediction.example.language].append(prediction)
        groups["all"].append(prediction)
    report = {}
    for language, items in groups.items():
        report[language] = {
            "n": len(items),
            "top1": sum(p.top1 == p.example.label for p in items) / len(items),
            "answered": sum(p.answered == p.example.label for p in items) / len(items),
            "fallback_rate": sum(p.answered == FALLBACK_INTENT for p in items) / len(items),
        }
    return report


REVIEW_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def confidence_table(predictions: List[Prediction], thresholds: Sequence[float] = REVIEW_THRESHOLDS
                     ) -> List[Tuple[float, int, int, int, int]]:
    """For the review queue's low-confidence threshold (resources/gateway/review.yml), chosen on the
    development set: per threshold, of the answered messages (not fallen back) below it, how many were answered
    right and wrong, and of those at or above it, how many wrong slip past review and how many are right."""
    answered = [p for p in predictions if p.answered != FALLBACK_INTENT]
    rows = []
    for threshold in thresholds:
        below = [p for p in answered if p.confidence < threshold]
        above = [p for p in answered if p.confidence >= threshold]
        rows.append((threshold, sum(p.answered == p.example.label for p in below),
                     sum(p.answered != p.example.label for p in below),
                     sum(p.answered != p.example.label for p in above),
                     sum(p.answered == p.example.label for p in above)))
    return rows


def format_confidence_table(rows: List[Tuple[float, int, int, int, int]], chosen: float) -> str:
    lines = ["Review queue threshold (development set; answered messages below it go to the agents' review):",
             "  threshold  below: right  wrong   at or above: wrong  right"]
    for threshold, right_below, wrong_below, wrong_above, right_above in rows:
        mark = "  <- resources/gateway/review.yml" if abs(threshold - chosen) < 1e-9 else ""
        lines.append(f"  {threshold:>9.2f}  {right_below:>12}  {wrong_below:>5}   {wrong_above:>18}  "
                     f"{right_above:>5}{mark}")
    return "\n".join(lines)


def write_confusion_matrix(predictions: List[Prediction], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = sorted({p.example.label for p in predictions} | {p.top1 for p in predictions})
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for p in predictions:
        matrix[index[p.example.label], index[p.top1]] += 1
    figure, axes = plt.subplots(figsize=(18, 16))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            axes.text(column, row, str(count), ha="center", va="center", fontsize=6,
                      color="white" if row == column else "red")
    axes.set_xlabel("predicted (top-1)")
    axes.set_ylabel("true label")
    axes.set_title(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def train_baseline(output_dir: Path = EVAL_DIR) -> str:
    """Train Rasa's default NLU pipeline (what `rasa init` uses) on the same data."""
    import rasa.engine.recipes

    output_dir.mkdir(parents=True, exist_ok=True)
    config = output_dir / "default_config.yml"
    shutil.copy(Path(rasa.engine.recipes.__file__).parent / "config_files" / "default_config.yml", config)
    nlu_dir = output_dir / "nlu-data"  # `rasa train nlu --nlu` takes one path: stage data/nlu + data/faq
    write_fold_data((), nlu_dir)
    return train_nlu(config, nlu_dir, output_dir, "default-pipeline")


def mistakes(predictions: List[Prediction]) -> List[str]:
    return [
        f"  [{p.example.language}] {p.example.text!r}: expected {p.example.label}, got {p.answered}"
        for p in predictions
        if p.answered != p.example.label
    ]


def format_report(name: str, report: Dict[str, Dict[str, float]], parse_ms: Optional[float] = None) -> str:
    """One table: per language, top-1 (the classifier's best label, the fallback ignored), answered (the label
    the customer was answered with: a fallback counts as a miss) and the fallback rate."""
    timing = f" (mean in-process parse {parse_ms:.1f} ms)" if parse_ms is not None else ""
    lines = [f"{name}{timing}",
             f"  {'language':<8} {'n':>4} {'top-1':>7} {'answered':>9} {'fallback':>9}"]
    languages = [language for language in (*LANGUAGE_FILES, "other") if language in report]
    languages += sorted(set(report) - set(languages) - {"all"}) + ["all"]
    for language in languages:
        row = report[language]
        lines.append(f"  {language:<8} {row['n']:>4} {row['top1']:>7.3f} {row['answered']:>9.3f} "
                     f"{row['fallback_rate']:>9.3f}")
    return "\n".join(lines)


# --- two questions in one message ---------------------------------------------------------------------------

TWO_QUESTIONS_FILE = REPO_ROOT / "tests" / "nlu_multi" / "two_questions.yml"


@dataclass(frozen=True)
class TwoQuestionResult:
    text: str
    language: str
    expected: Tuple[str, ...]    # the first answer, and the second one if the message asks two questions
    first: str                   # what the message was answered with (nlu_fallback for a fallback)
    second: Optional[str]        # the second answer given (entity second_question), if any


def predict_two_questions(model_path: str, path: Path = TWO_QUESTIONS_FILE) -> List[TwoQuestionResult]:
    """Every message of the two-questions development set through the model: its answer and second answer."""
    from bot.vocabulary import SECOND_QUESTION_ENTITY

    items = yaml.safe_load(path.read_text(encoding="utf-8"))["messages"]
    examples = [TestExample(item["text"], item["answers"][0], item["language"]) for item in items]
    predictions, _ = predict(model_path, examples, keep_parse=True)
    results = []
    for item, prediction in zip(items, predictions, strict=True):
        seconds = [entity.get("value") for entity in prediction.parse.get("entities") or []
                   if entity.get("entity") == SECOND_QUESTION_ENTITY]
        results.append(TwoQuestionResult(item["text"], item["language"], tuple(item["answers"]), prediction.answered,
                                         seconds[0] if seconds else None))
    return results


def format_two_questions(results: List[TwoQuestionResult]) -> str:
    """Two questions: how many got both answers right; one question told at length: how many got a second
    answer they did not ask for."""
    two = [r for r in results if len(r.expected) == 2]
    one = [r for r in results if len(r.expected) == 1]
    both = sum(r.first == r.expected[0] and r.second == r.expected[1] for r in two)
    first = sum(r.first == r.expected[0] for r in results)
    wrong_second = sum(r.second is not None and r.second != r.expected[1] for r in two)
    unasked = sum(r.second is not None for r in one)
    lines = [f"Two questions in one message (development set, {TWO_QUESTIONS_FILE.relative_to(REPO_ROOT)}):",
             f"  first answer right: {first} of {len(results)}",
             f"  two questions, both answered right: {both} of {len(two)} (a wrong second answer: {wrong_second})",
             f"  one question told at length, a second answer not asked for: {unasked} of {len(one)}"]
    lines += [f"  [{r.language}] {r.text!r}: expected {' + '.join(r.expected)}, got {r.first}"
              f"{' + ' + r.second if r.second else ''}"
              for r in results if (r.first, r.second) != (*r.expected, None)[:2]]
    return "\n".join(lines)


# --- cross-validation on the training data ----------------------------------------------------------------------

def cross_validation_folds(examples: Dict[str, List[str]], folds: int, seed: int = 42
                           ) -> List[List[Tuple[str, str]]]:
    """Stratified folds of (label, text): each label's examples, shuffled with `seed`, dealt round-robin, so
    every fold holds about 1/`folds` of every label and every example is in exactly one fold."""
    rng = random.Random(seed)
    dealt: List[List[Tuple[str, str]]] = [[] for _ in range(folds)]
    position = 0
    for label in sorted(examples):
        texts = sorted(set(examples[label]))
        rng.shuffle(texts)
        for text in texts:
            dealt[position % folds].append((label, text))
            position += 1
    return dealt


def write_fold_data(held_out: Iterable[Tuple[str, str]], target: Path,
                    folders: Iterable[Path] = (NLU_DIR, FAQ_DIR)) -> None:
    """The training data without `held_out`, as Rasa NLU files in `target` (responses, regexes, lookups kept)."""
    held = set(held_out)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for folder in folders:
        for path in sorted(folder.glob("*.yml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for item in data.get("nlu") or []:
                if "intent" in item:
                    kept = [t for t in parse_examples(item.get("examples", "")) if (item["intent"], t) not in held]
                    item["examples"] = "".join(f"- {text}\n" for text in kept)
            (target / f"{folder.name}_{path.name}").write_text(
                yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=10_000), encoding="utf-8")


def train_nlu(config: Path, nlu_dir: Path, output_dir: Path, name: str) -> str:
    command = rasa_command(
        "train", "nlu", "--config", str(config), "--domain", "domain.yml", "--nlu", str(nlu_dir),
        "--out", str(output_dir), "--fixed-model-name", name,
    )
    subprocess.run(command, cwd=REPO_ROOT, env=child_environment(load_settings()), check=True,
                   stdout=subprocess.DEVNULL)
    return str(output_dir / f"{name}.tar.gz")


def cross_validate(folds: int, config: Path = REPO_ROOT / "config.yml", output_dir: Path = EVAL_DIR / "cv"
                   ) -> List[Prediction]:
    """`folds`-fold cross-validation of the pipeline in `config` on the training data; each example's language
    is the detected one (en, ms, or other: too short or unclear to tell)."""
    from bot.nlu.language import detect_language

    predictions: List[Prediction] = []
    for number, fold in enumerate(cross_validation_folds(training_examples(), folds), start=1):
        started = time.monotonic()
        write_fold_data(fold, output_dir / f"fold-{number}-data")
        model = train_nlu(config, output_dir / f"fold-{number}-data", output_dir, f"fold-{number}")
        examples = [TestExample(text, label, detect_language(text, statistical=False) or "other")
                    for label, text in fold]
        fold_predictions, _ = predict(model, examples)
        predictions += fold_predictions
        correct = sum(p.answered == p.example.label for p in fold_predictions) / max(len(fold_predictions), 1)
        print(f"  fold {number}/{folds}: {len(fold)} examples, answered {correct:.3f} "
              f"({time.monotonic() - started:.0f} s)", flush=True)
    return predictions


EVALUATION_SETS = (("development", "development set (tests/nlu/, tuned on)", TESTS_NLU_DIR),
                   ("frozen", "frozen test set (tests/nlu_test/, written blind, reported)", FROZEN_NLU_DIR))


def main(args: argparse.Namespace) -> int:
    model = args.model or load_settings().model_path
    pipelines = [("ours", "Our pipeline (config.yml)", model)]
    results: Dict[str, Dict[str, Any]] = {}
    if args.baseline and getattr(args, "baseline_model", None):
        pipelines.append(("default_pipeline", "Rasa default pipeline (rasa init config, trained before)",
                          args.baseline_model))
    elif args.baseline:
        started = time.monotonic()
        pipelines.append(("default_pipeline", "Rasa default pipeline (rasa init config)", train_baseline()))
        results["default_pipeline_train_seconds"] = {"seconds": round(time.monotonic() - started, 1)}
    for key, title, folder in EVALUATION_SETS:
        examples = load_test_set(folder)
        print(f"== {title}: {len(examples)} messages ==")
        for pipeline, name, pipeline_model in pipelines:
            predictions, parse_ms = predict(pipeline_model, examples)
            report = accuracy_by_language(predictions)
            results[f"{pipeline}/{key}"] = {"report": report, "parse_ms": parse_ms}
            print(format_report(name, report, parse_ms))
            if pipeline == "ours":
                write_confusion_matrix(predictions, EVAL_DIR / f"confusion_matrix_{key}.png",
                                       f"KSOS pipeline, {title}")
                errors = mistakes(predictions)
                if key == "development":
                    print(format_confidence_table(confidence_table(predictions), low_confidence_below()))
                if key == "development" and errors:            # the frozen set's misses are not for tuning
                    print(f"{len(errors)} answered wrongly or not at all:")
                    print("\n".join(errors))
                elif errors:
                    print(f"{len(errors)} answered wrongly or not at all (not listed: the frozen set is not for "
                          "tuning)")
        print()
    if TWO_QUESTIONS_FILE.exists():
        print(format_two_questions(predict_two_questions(model)))
        print()
    if args.folds:
        print(f"== {args.folds}-fold cross-validation of our pipeline on the training data ==", flush=True)
        predictions = cross_validate(args.folds)
        report = accuracy_by_language(predictions)
        results[f"ours/cross_validation_{args.folds}"] = {"report": report}
        print(format_report(f"Our pipeline, {args.folds}-fold cross-validation (detected language)", report))
        print()
    EVAL_DIR.mkdir(parents=True, exist_ok=True)
    (EVAL_DIR / "report.json").write_text(json.dumps(results, indent=2))
    print(f"Confusion matrices: {EVAL_DIR}/confusion_matrix_*.png; report: {EVAL_DIR / 'report.json'}")
    if args.min_accuracy is not None:
        failing = {lang: round(row["answered"], 3) for lang, row in results["ours/frozen"]["report"].items()
                   if row["answered"] < args.min_accuracy}
        if failing:
            print(f"FAILED: frozen-set accuracy (fallback counted as a miss) below {args.min_accuracy}: {failing}")
            return 1
        print(f"OK: frozen-set accuracy (fallback counted as a miss) >= {args.min_accuracy} in every language")
    return 0
