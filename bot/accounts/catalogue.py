"""The plan catalogue of FAQ 2, read from resources/accounts/plans.yml."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Tuple

import yaml

from bot.paths import RESOURCES_DIR

PLANS_FILE = RESOURCES_DIR / "accounts" / "plans.yml"


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    monthly_fee: Decimal
    allowances: Dict[str, int]


@dataclass(frozen=True)
class Catalogue:
    source: str
    contract_months: int
    default_bill_day: int
    device_types: Tuple[str, ...]
    plans: Dict[str, Plan]

    def plan(self, name_or_key: str) -> Plan:
        """A plan by key or display name, case-insensitive ('Standard', 'standard')."""
        wanted = (name_or_key or "").strip().lower()
        for plan in self.plans.values():
            if wanted in (plan.key, plan.name.lower()):
                return plan
        raise KeyError(f"unknown plan {name_or_key!r}; known: {', '.join(p.name for p in self.plans.values())}")

    def plan_names(self) -> List[str]:
        return [plan.name for plan in self.plans.values()]

    def smaller_plans(self, plan: Plan) -> List[Plan]:
        """Plans with a lower monthly fee, largest first (the downgrade targets)."""
        return sorted((p for p in self.plans.values() if p.monthly_fee < plan.monthly_fee),
                      key=lambda p: p.monthly_fee, reverse=True)


def load_catalogue(path: Path = PLANS_FILE) -> Catalogue:
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    plans = {
        key: Plan(key=key, name=entry["name"], monthly_fee=Decimal(str(entry["monthly_fee"])),
                  allowances={k: int(v) for k, v in entry["allowances"].items()})
        for key, entry in raw["plans"].items()
    }
    return Catalogue(
        source=raw["source"],
        contract_months=int(raw["contract_months"]),
        default_bill_day=int(raw["default_bill_day"]),
        device_types=tuple(raw["device_types"]),
        plans=plans,
    )


@functools.lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    return load_catalogue()
