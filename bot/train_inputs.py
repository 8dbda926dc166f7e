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


def imported_names(path: Path, module: str) -> List[str]:
    """Every dotted name an import of `module` (its file at `path`) refers to, wherever the import stands (inside
    functions and under TYPE_CHECKING too): "a.b" for `import a.b`, "a" and "a.c" for `from a import c`; relative
    imports resolved against the module's package."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: List[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return names


def imported_modules(start: Set[str]) -> Set[str]:
    """`start` and every bot module it imports, transitively."""
    seen: Set[str] = set()
    todo = sorted(start)
    while todo:
        module = todo.pop()
        path = module_path(module)
        if module in seen or not path.exists():
            continue
        seen.add(module)
        todo += [name for name in imported_names(path, module)
                 if name.startswith("bot.") and module_path(name).exists()]
    return seen


def train_inputs() -> List[str]:
    files = [ROOT / "config.yml", ROOT / "domain.yml"]
    files += sorted((ROOT / "data").rglob("*.yml")) + sorted((ROOT / "resources" / "lexicon").rglob("*.yml"))
    files += sorted(module_path(module) for module in imported_modules(component_modules(ROOT / "config.yml")))
    return [str(path.relative_to(ROOT)) for path in files]


if __name__ == "__main__":
    sys.stdout.write(" ".join(train_inputs()) + "\n")
