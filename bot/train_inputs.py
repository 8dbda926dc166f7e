"""What the trained model depends on, for the Makefile's "retrain only when an input changed": config.yml,
domain.yml, every file Rasa trains on (data/), the lexicons the NLU components read (resources/lexicon/), and
every module of bot/ that config.yml's custom components import, directly or not (followed through the imports
of bot/nlu/components.py). Standard library only: `python3 bot/train_inputs.py` runs before any environment exists."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import List, Set

ROOT = Path(__file__).resolve().parent.parent


def component_modules(config: Path) -> Set[str]:
    """The modules of our custom components named in config.yml ("- name: bot.nlu.components.ChatNormalizer")."""
    names = re.findall(r"^\s*-\s*name:\s*(bot\.[\w.]+)", config.read_text(), flags=re.MULTILINE)
    return {name.rpartition(".")[0] for name in names}


def module_path(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported_modules(start: Set[str]) -> Set[str]:
    """`start` and every bot module it imports, transitively (imports inside functions included)."""
    seen: Set[str] = set()
    todo = sorted(start)
    while todo:
        module = todo.pop()
        path = module_path(module)
        if module in seen or not path.exists():
            continue
        seen.add(module)
        for node in ast.walk(ast.parse(path.read_text())):
            names: List[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            todo += [name for name in names if name.startswith("bot.") and module_path(name).exists()]
    return seen


def train_inputs() -> List[str]:
    files = [ROOT / "config.yml", ROOT / "domain.yml"]
    files += sorted((ROOT / "data").rglob("*.yml")) + sorted((ROOT / "resources" / "lexicon").rglob("*.yml"))
    files += sorted(module_path(module) for module in imported_modules(component_modules(ROOT / "config.yml")))
    return [str(path.relative_to(ROOT)) for path in files]


if __name__ == "__main__":
    sys.stdout.write(" ".join(train_inputs()) + "\n")
