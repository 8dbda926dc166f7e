"""The line the widget shows under an answer naming the documents it comes from (resources/gateway/sources.yml):
"Source: KSOS FAQ (Unifi, Aug 2023)". Built from the response's metadata `source` ("FAQ 22, 23"), whose numbers
stay with the agents."""
from __future__ import annotations

import functools
from typing import Any, Dict, List, Optional

import yaml

from bot.nlu.language import SUPPORTED_LANGUAGES
from bot.paths import RESOURCES_DIR

SOURCES_FILE = RESOURCES_DIR / "gateway" / "sources.yml"


@functools.lru_cache(maxsize=None)
def _sources() -> Dict[str, Any]:
    with open(SOURCES_FILE, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    for entry in [*data["documents"], data["line"], data["separator"]]:
        missing = [language for language in SUPPORTED_LANGUAGES if language not in entry]
        if missing:
            raise ValueError(f"{SOURCES_FILE}: {entry} has no text for {', '.join(missing)}")
    # Longest prefix first, so that a prefix of another prefix never takes its documents.
    data["documents"] = sorted(data["documents"], key=lambda document: -len(document["prefix"]))
    return data


def documents(source: Optional[str]) -> List[Dict[str, str]]:
    """The documents `source` names, each once, in its order ("Support Rules 2.2; FAQ 11" -> both)."""
    found: List[Dict[str, str]] = []
    for part in (source or "").split(";"):
        part = part.strip()
        for document in _sources()["documents"]:
            prefix = document["prefix"]
            if part == prefix or part.startswith(prefix + " ") or part.startswith(prefix + ","):
                if document not in found:
                    found.append(document)
                break
    return found


def source_line(source: Optional[str], language: Optional[str]) -> Optional[str]:
    """"Source: …" in `language` (English when unknown) for an answer's `source`; None when it names no document
    we know (an account answer, a greeting)."""
    named = documents(source)
    if not named:
        return None
    language = language if language in SUPPORTED_LANGUAGES else "en"
    data = _sources()
    return data["line"][language].format(
        documents=data["separator"][language].join(document[language] for document in named))


def for_customer(entry: Dict[str, Any], language: Optional[str]) -> Dict[str, Any]:
    """A transcript entry as a customer's widget gets it: the source's numbers replaced by the line naming its
    documents."""
    if "source" not in entry:
        return entry
    shown = {key: value for key, value in entry.items() if key != "source"}
    line = source_line(entry["source"], entry.get("language") or language)
    if line:
        shown["source_line"] = line
    return shown
