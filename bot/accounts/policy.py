"""The operator policy of resources/accounts/policy.yml: how the figures the source documents leave open are
estimated (a started contract month, proration, which devices a downgrade keeps), with each rule's plain-words
explanation for the customer."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Tuple

import yaml

from bot.paths import RESOURCES_DIR

POLICY_FILE = RESOURCES_DIR / "accounts" / "policy.yml"
RULES = {"part_month": ("round_up", "whole_months"), "proration": ("by_days",),
         "downgrade_devices": ("first_connected_per_type",)}
LANGUAGES = ("en", "ms")


@dataclass(frozen=True)
class Rule:
    name: str
    explain: Mapping[str, str]

    def explained(self, language: str) -> str:
        return self.explain.get(language) or self.explain["en"]


@dataclass(frozen=True)
class Policy:
    part_month: Rule
    proration: Rule
    downgrade_devices: Rule
    faq_downgrade: Tuple[str, str]          # (from plan key, to plan key): the change FAQ 19 itself describes


class InvalidPolicy(ValueError):
    pass


def _rule(raw: Mapping, section: str) -> Rule:
    entry = raw.get(section) or {}
    name = entry.get("rule")
    if name not in RULES[section]:
        raise InvalidPolicy(f"{section}.rule must be one of {', '.join(RULES[section])}, not {name!r}")
    explain: Dict[str, str] = dict(entry.get("explain") or {})
    missing = [language for language in LANGUAGES if not str(explain.get(language) or "").strip()]
    if missing:
        raise InvalidPolicy(f"{section}.explain needs a text in {', '.join(missing)}")
    return Rule(name, explain)


def load_policy(path: Path = POLICY_FILE) -> Policy:
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle) or {}
    change = (raw.get("downgrade_devices") or {}).get("faq_change") or {}
    return Policy(part_month=_rule(raw, "part_month"), proration=_rule(raw, "proration"),
                  downgrade_devices=_rule(raw, "downgrade_devices"),
                  faq_downgrade=(str(change.get("from", "")), str(change.get("to", ""))))


@functools.lru_cache(maxsize=1)
def policy() -> Policy:
    return load_policy()
