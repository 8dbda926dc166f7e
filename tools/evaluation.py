"""Held-out NLU evaluation: top-1 accuracy per language for our pipeline and for Rasa's default pipeline.

The held-out set (tests/nlu/{en,ms,mixed}.yml) is written separately from data/ and never trained on.
A prediction is the full label: 'faq/billing_cutoff' for retrieval intents (intent + response selector),
otherwise the intent name. "top-1" is the classifier's best label, ignoring the FallbackClassifier;
"answered" also requires that the FallbackClassifier did not replace it with nlu_fallback.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

import yaml

from bot.dialogue.fallback import FALLBACK_INTENT
from bot.dialogue.knowledge import parse_examples
from bot.paths import REPO_ROOT, TESTS_NLU_DIR, VAR_DIR
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
    answered: str  # top1, or nlu_fallback when the FallbackClassifier fired


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


def predict(model_path: str, examples: Iterable[TestExample]) -> Tuple[List[Prediction], float]:
    """Parse every example with the model in-process; returns predictions and mean parse time (ms). The model is
    loaded with the variables our processes get (bot/services.py), set for the load only: the caller's
    environment is left as it was (an in-process caller, such as a test session, keeps its own)."""
    added = {k: v for k, v in child_environment(load_settings()).items() if k not in os.environ}
    os.environ.update(added)
    try:
        from rasa.core.agent import Agent

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
            predictions.append(Prediction(example, top1, answered))
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
    shutil.rmtree(nlu_dir, ignore_errors=True)
    nlu_dir.mkdir()
    for folder in ("nlu", "faq"):
        for path in sorted((REPO_ROOT / "data" / folder).glob("*.yml")):
            shutil.copy(path, nlu_dir / f"{folder}_{path.name}")
    command = rasa_command(
        "train", "nlu", "--config", str(config), "--domain", "domain.yml", "--nlu", str(nlu_dir),
        "--out", str(output_dir), "--fixed-model-name", "default-pipeline",
    )
    subprocess.run(command, cwd=REPO_ROOT, env=child_environment(load_settings()), check=True,
                   stdout=subprocess.DEVNULL)
    return str(output_dir / "default-pipeline.tar.gz")


def mistakes(predictions: List[Prediction]) -> List[str]:
    return [
        f"  [{p.example.language}] {p.example.text!r}: expected {p.example.label}, got {p.top1}"
        for p in predictions
        if p.top1 != p.example.label
    ]


def format_report(name: str, report: Dict[str, Dict[str, float]], parse_ms: float) -> str:
    lines = [f"{name} (mean in-process parse {parse_ms:.1f} ms)",
             f"  {'language':<8} {'n':>4} {'top-1':>7} {'answered':>9} {'fallback':>9}"]
    for language in (*LANGUAGE_FILES, "all"):
        row = report[language]
        lines.append(f"  {language:<8} {row['n']:>4} {row['top1']:>7.3f} {row['answered']:>9.3f} "
                     f"{row['fallback_rate']:>9.3f}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    examples = load_test_set()
    model = args.model or load_settings().model_path
    results: Dict[str, Dict[str, Any]] = {}
    predictions, parse_ms = predict(model, examples)
    results["ours"] = {"report": accuracy_by_language(predictions), "parse_ms": parse_ms}
    write_confusion_matrix(predictions, EVAL_DIR / "confusion_matrix.png", "KSOS pipeline, held-out set")
    print(format_report("Our pipeline (config.yml)", results["ours"]["report"], parse_ms))
    errors = mistakes(predictions)
    print(f"{len(errors)} top-1 mistakes:" if errors else "no top-1 mistakes")
    print("\n".join(errors))
    if args.baseline:
        started = time.monotonic()
        baseline_model = train_baseline()
        baseline_predictions, baseline_ms = predict(baseline_model, examples)
        results["default_pipeline"] = {
            "report": accuracy_by_language(baseline_predictions), "parse_ms": baseline_ms,
            "train_seconds": round(time.monotonic() - started, 1),
        }
        write_confusion_matrix(baseline_predictions, EVAL_DIR / "confusion_matrix_default_pipeline.png",
                               "Rasa default pipeline, held-out set")
        print()
        print(format_report("Rasa default pipeline (rasa init config)", results["default_pipeline"]["report"],
                            baseline_ms))
    EVAL_DIR.mkdir(parents=True, exist_ok=True)
    (EVAL_DIR / "report.json").write_text(json.dumps(results, indent=2))
    print(f"\nConfusion matrix: {EVAL_DIR / 'confusion_matrix.png'}; report: {EVAL_DIR / 'report.json'}")
    if args.min_accuracy is not None:
        failing = {lang: row["top1"] for lang, row in results["ours"]["report"].items()
                   if row["top1"] < args.min_accuracy}
        if failing:
            print(f"FAILED: top-1 accuracy below {args.min_accuracy}: {failing}")
            return 1
        print(f"OK: top-1 accuracy >= {args.min_accuracy} in every language")
    return 0
