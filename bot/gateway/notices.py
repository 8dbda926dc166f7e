"""The gateway's own notices (hold on, rate limited, too long ...) in English and Malay, from resources/gateway."""
from __future__ import annotations

import functools
from typing import Dict, Optional

import yaml

from bot.paths import RESOURCES_DIR

NOTICES_FILE = RESOURCES_DIR / "gateway" / "notices.yml"
LANGUAGES = ("en", "ms")


@functools.lru_cache(maxsize=None)
def _notices() -> Dict[str, Dict[str, str]]:
    with open(NOTICES_FILE, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    notices = data["notices"]
    for key, entry in notices.items():
        missing = [language for language in LANGUAGES if not entry.get(language)]
        if missing:
            raise ValueError(f"{NOTICES_FILE}: notice {key} has no text for {', '.join(missing)}")
    return notices


def notice(key: str, language: Optional[str], **values: str) -> str:
    """Notice `key` in `language` (English when there is none), with {placeholders} filled from `values`."""
    entry = _notices()[key]
    text = entry.get(language or "en") or entry["en"]
    return text.format(**values) if values else text


def notice_keys():
    return sorted(_notices())
