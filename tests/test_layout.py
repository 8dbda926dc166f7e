"""The shape of `bot/` (and `tools/`): no import cycle, counting every import (at the top, inside functions, under
TYPE_CHECKING alike: a lazy import only hides a cycle); and nothing in the gateway's lower modules imports the app
that builds them."""
from pathlib import Path
from typing import Dict, List, Set

from bot.paths import REPO_ROOT
from bot.train_inputs import imported_names

PACKAGES = (REPO_ROOT / "bot", REPO_ROOT / "tools")      # the runtime package, and evaluation and benchmarks


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> Dict[str, Set[str]]:
    modules = {module_name(path): path for package in PACKAGES for path in package.rglob("*.py")
               if "versions" not in path.parts}
    graph: Dict[str, Set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target in imported_names(path, name):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + ".") and target not in ("bot", "tools"):
                graph[name].add(target)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_in_bot():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_runtime_package_needs_no_evaluation_or_benchmark_code():
    """Only the command line (python -m bot eval / bench) reaches into tools/."""
    importers = {name for name, targets in import_graph().items()
                 if name.startswith("bot") and any(target.startswith("tools") for target in targets)}
    assert importers <= {"bot.__main__"}, importers


def test_only_the_entry_points_import_the_gateway_app():
    importers = {name for name, targets in import_graph().items() if "bot.gateway.app" in targets}
    assert importers <= {"bot.__main__"}, importers


def test_the_shared_vocabulary_matches_what_uses_it():
    import yaml

    from bot.accounts.answers import ANSWERS
    from bot.vocabulary import ACCOUNT_INTENTS, COMPUTED_ACCOUNT_INTENTS, RETRIEVAL_INTENTS

    assert set(ANSWERS) == set(COMPUTED_ACCOUNT_INTENTS)
    intents = set(yaml.safe_load((REPO_ROOT / "domain.yml").read_text())["intents"])
    assert set(ACCOUNT_INTENTS) | set(RETRIEVAL_INTENTS) <= intents


def test_data_holds_only_what_rasa_trains_on_and_the_training_inputs_are_derived():
    import yaml

    from bot.train_inputs import train_inputs

    for path in (REPO_ROOT / "data").rglob("*"):
        if path.is_file():
            keys = set(yaml.safe_load(path.read_text()) or {})
            assert keys <= {"version", "nlu", "rules", "stories", "responses"}, (path, keys)
    inputs = train_inputs()
    assert {"config.yml", "domain.yml", "data/rules.yml", "resources/lexicon/shortforms.yml", "bot/nlu/components.py",
            "bot/nlu/text.py", "bot/dialogue/fallback.py"} <= set(inputs)   # fallback.py: imported by the components
    assert not any(name.startswith(("resources/accounts", "resources/gateway", "bot/gateway")) for name in inputs)
