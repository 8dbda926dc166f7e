"""The knowledge base: every answer in data/faq/*.yml with its source, titles and texts in both languages.

Rasa itself reads the same files as training data; this module gives the rest of the product (the fallback's
"did you mean" buttons, tests, later agent assist) one place to look answers up without parsing YAML again.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import yaml

from bot.paths import DATA_DIR, FAQ_DIR, NLU_DIR, REPO_ROOT, RESOURCES_DIR

RESPONSE_PREFIX = "utter_"
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Answer:
    """One answer of the knowledge base, e.g. key 'faq/plans' answered by response 'utter_faq/plans'."""

    key: str
    response: str
    source: str
    titles: Dict[str, str]
    texts: Dict[str, str]
    examples: Tuple[str, ...] = field(default=())

    def title(self, language: Optional[str]) -> str:
        return self.titles.get(language or DEFAULT_LANGUAGE, self.titles[DEFAULT_LANGUAGE])

    def text(self, language: Optional[str]) -> str:
        return self.texts.get(language or DEFAULT_LANGUAGE, self.texts[DEFAULT_LANGUAGE])


def variation_language(variation: dict) -> Optional[str]:
    """'ms' for a variation conditioned on language=ms, 'en' for the unconditioned default, None otherwise."""
    conditions = variation.get("condition") or []
    if not conditions:
        return DEFAULT_LANGUAGE
    languages = [c.get("value") for c in conditions if c.get("type") == "slot" and c.get("name") == "language"]
    return languages[0] if len(languages) == 1 and len(conditions) == 1 else None


def _yaml_files(folder: Path) -> List[Path]:
    return sorted(list(folder.glob("*.yml")) + list(folder.glob("*.yaml")))


def _read(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def parse_examples(block: str) -> List[str]:
    """The examples of a Rasa `examples: |` block ("- text" lines)."""
    return [line.strip()[2:].strip() for line in block.splitlines() if line.strip().startswith("- ")]


def training_examples(folders: Iterable[Path] = (NLU_DIR, FAQ_DIR)) -> Dict[str, List[str]]:
    """intent or retrieval key -> its training examples, from the Rasa NLU files in `folders`."""
    examples: Dict[str, List[str]] = {}
    for folder in folders:
        for path in _yaml_files(folder):
            for item in _read(path).get("nlu") or []:
                if "intent" in item:
                    examples.setdefault(item["intent"], []).extend(parse_examples(item.get("examples", "")))
    return examples


class KnowledgeBase:
    """All answers, by key ('faq/plans', 'support/feedback', 'ask_termination_penalty')."""

    def __init__(self, answers: Iterable[Answer]):
        self._answers = {answer.key: answer for answer in answers}

    def __contains__(self, key: str) -> bool:
        return key in self._answers

    def __iter__(self) -> Iterator[Answer]:
        return iter(self._answers.values())

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> Optional[Answer]:
        return self._answers.get(key)

    def keys(self) -> List[str]:
        return list(self._answers)


def load_knowledge_base(faq_dir: Path = FAQ_DIR, data_dir: Path = DATA_DIR) -> KnowledgeBase:
    """Read every response of data/faq/*.yml; examples come from all NLU files under data/."""
    examples = training_examples([data_dir / "nlu", faq_dir])
    answers = []
    for path in _yaml_files(faq_dir):
        for response, variations in (_read(path).get("responses") or {}).items():
            key = response[len(RESPONSE_PREFIX):]
            titles, texts, sources = {}, {}, set()
            for variation in variations:
                language = variation_language(variation)
                if language is None:
                    continue
                metadata = variation.get("metadata") or {}
                texts[language] = variation.get("text", "")
                titles[language] = metadata.get("title", "")
                sources.add(metadata.get("source", ""))
            answers.append(
                Answer(
                    key=key,
                    response=response,
                    source=" / ".join(sorted(sources)),
                    titles=titles,
                    texts=texts,
                    examples=tuple(examples.get(key, ())),
                )
            )
    return KnowledgeBase(answers)


@functools.lru_cache(maxsize=1)
def knowledge_base() -> KnowledgeBase:
    """The knowledge base of this checkout, loaded once per process."""
    return load_knowledge_base()


@functools.lru_cache(maxsize=1)
def ui_labels() -> Dict[str, Dict[str, str]]:
    """Button labels that are not answers (resources/ui.yml): label name -> language -> text."""
    return _read(RESOURCES_DIR / "ui.yml")["labels"]


@functools.lru_cache(maxsize=1)
def domain_responses() -> Dict[str, list]:
    """Every response of the assistant (domain.yml and data/faq/*.yml), as Rasa's domain["responses"] holds them:
    what the account answers are written with outside the action server (agent assist)."""
    responses: Dict[str, list] = dict(_read(REPO_ROOT / "domain.yml").get("responses") or {})
    for path in _yaml_files(FAQ_DIR):
        responses.update(_read(path).get("responses") or {})
    return responses
