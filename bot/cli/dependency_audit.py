"""`python -m bot audit`: the known advisories of the packages in the deployment's Python environments (the Rasa
environment `.venv` with the versions Rasa 3.6 pins, and the gateway's `.venv-gateway`), and why each one is or is
not reachable here (docs/security/dependency-advisories.yml).

Offline (the default) it prints the reviewed advisories per environment and package, checks them against what is
installed (an entry whose package is no longer installed at an affected version is flagged "stale (upgraded?)";
an environment whose venv does not exist on this machine is reported as not installed here) and exits 0. The
installed versions are read from each venv's site-packages metadata, so no environment's code is imported.
With --online it also asks PyPI's JSON API (https://pypi.org/pypi/<package>/<version>/json, field
"vulnerabilities") for the live list of each reviewed package and reports advisories the data file lacks:
exit 1 if any are missing, 0 if none, 2 if PyPI could not be asked for every package.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set

import yaml
from packaging.version import InvalidVersion, Version

from bot.paths import REPO_ROOT

DATA_FILE = REPO_ROOT / "docs" / "security" / "dependency-advisories.yml"
ENTRY_FIELDS = ("id", "cve", "environment", "package", "affected", "fixed_in", "summary", "reachable", "why")
ENVIRONMENT_FIELDS = ("venv", "requirements", "role")
GATEWAY = "gateway"
PYPI_URL = "https://pypi.org/pypi/{package}/{version}/json"
TIMEOUT_SECONDS = 10.0
WIDTH = 110

OPEN, STALE, RECHECK, ABSENT = "open", "stale (upgraded?)", "recheck", "environment not installed here"

# Installed versions per environment: {environment: {canonical package name: version}}, or None for an
# environment whose venv does not exist on this machine.
Installed = Mapping[str, Optional[Mapping[str, str]]]


class AuditDataError(ValueError):
    """The data file is missing, unreadable or malformed."""


class OnlineCheckFailed(RuntimeError):
    """PyPI's JSON API could not be asked (network, HTTP error, unexpected answer). `unreachable`: no answer at
    all, so asking for the other packages would only wait for more timeouts."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class Environment:
    name: str
    venv: str
    requirements: str
    role: str

    @property
    def path(self) -> Path:
        venv = Path(self.venv)
        return venv if venv.is_absolute() else REPO_ROOT / venv


@dataclass(frozen=True)
class Advisory:
    id: str
    cves: tuple
    package: str
    affected: str
    fixed_in: str
    summary: str
    reachable: bool
    why: str
    environment: str = ""
    aliases: tuple = ()

    @property
    def known_ids(self) -> Set[str]:
        return {name.upper() for name in (self.id, *self.cves, *self.aliases) if name}


@dataclass
class AuditData:
    reviewed_on: str
    environments: Dict[str, Environment]
    packages: Dict[str, Dict[str, Dict[str, Any]]]      # environment -> package -> {version, pinned_by, note}
    advisories: List[Advisory] = field(default_factory=list)

    def advisories_for(self, environment: str, package: Optional[str] = None) -> List[Advisory]:
        return [a for a in self.advisories if a.environment == environment
                and (package is None or canonical_name(a.package) == canonical_name(package))]


def canonical_name(name: str) -> str:
    """PEP 503 normalisation, so `PyYAML`, `pyyaml` and `py_yaml` name the same distribution."""
    return re.sub(r"[-_.]+", "-", str(name)).lower()


def _as_list(value: Any) -> List[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return [str(value)]


def _load_environments(raw: Mapping, problems: List[str]) -> Dict[str, Environment]:
    environments = raw.get("environments")
    if not isinstance(environments, Mapping) or not environments:
        problems.append("environments must map each environment name to {venv, requirements, role}")
        return {}
    loaded: Dict[str, Environment] = {}
    for name, info in environments.items():
        if not isinstance(info, Mapping):
            problems.append(f"environments.{name}: not a mapping")
            continue
        missing = [key for key in ENVIRONMENT_FIELDS if not str(info.get(key) or "").strip()]
        if missing:
            problems.append(f"environments.{name}: missing {', '.join(missing)}")
            continue
        loaded[str(name)] = Environment(str(name), str(info["venv"]), str(info["requirements"]),
                                        " ".join(str(info["role"]).split()))
    return loaded


def _load_packages(raw: Mapping, environments: Mapping[str, Environment],
                   problems: List[str]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    packages = raw.get("packages") or {}
    if not isinstance(packages, Mapping):
        problems.append("packages must map each environment to {package: {version, pinned_by}}")
        return {}
    loaded: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for environment, entries in packages.items():
        environment = str(environment)
        if environment not in environments:
            problems.append(f"packages.{environment}: not an environment listed under environments")
            continue
        if not isinstance(entries, Mapping):
            problems.append(f"packages.{environment}: must map package names to {{version, pinned_by}}")
            continue
        loaded[environment] = {}
        for name, info in entries.items():
            if not isinstance(info, Mapping) or not info.get("version"):
                problems.append(f"packages.{environment}.{name}: needs a version")
                continue
            loaded[environment][str(name)] = dict(info)
    return loaded


def load_data(path: Path = DATA_FILE) -> AuditData:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise AuditDataError(f"{path}: {error}") from error
    if not isinstance(raw, Mapping):
        raise AuditDataError(f"{path}: expected a mapping at the top level")
    problems: List[str] = []
    if not raw.get("reviewed_on"):
        problems.append("reviewed_on is missing")
    environments = _load_environments(raw, problems)
    packages = _load_packages(raw, environments, problems)
    advisories: List[Advisory] = []
    seen: Set[tuple] = set()
    for index, entry in enumerate(raw.get("advisories") or []):
        where = f"advisories[{index}]" + (f" ({entry.get('id')})" if isinstance(entry, Mapping) else "")
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: not a mapping")
            continue
        missing = [name for name in ENTRY_FIELDS if name not in entry]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        if not isinstance(entry["reachable"], bool):
            problems.append(f"{where}: reachable must be true or false")
            continue
        empty = [name for name in ("id", "environment", "package", "affected", "fixed_in", "summary", "why")
                 if not str(entry[name] or "").strip()]
        if empty:
            problems.append(f"{where}: empty {', '.join(empty)}")
            continue
        environment, package = str(entry["environment"]), str(entry["package"])
        if environment not in environments:
            problems.append(f"{where}: environment {environment} is not listed under environments")
            continue
        reviewed = {canonical_name(name) for name in packages.get(environment, {})}
        if canonical_name(package) not in reviewed:
            problems.append(f"{where}: add {package} to packages.{environment}")
        key = (environment, str(entry["id"]).upper())
        if key in seen:
            problems.append(f"{where}: duplicate id in environment {environment}")
        seen.add(key)
        advisories.append(Advisory(
            id=str(entry["id"]), cves=tuple(_as_list(entry["cve"])), package=package,
            affected=str(entry["affected"]), fixed_in=str(entry["fixed_in"]),
            summary=" ".join(str(entry["summary"]).split()), reachable=entry["reachable"],
            why=" ".join(str(entry["why"]).split()), environment=environment,
            aliases=tuple(_as_list(entry.get("aliases"))),
        ))
    if problems:
        raise AuditDataError(f"{path}:\n  " + "\n  ".join(problems))
    return AuditData(str(raw["reviewed_on"]), environments, packages, advisories)


# --- what is installed --------------------------------------------------------------------------------------

def site_packages(venv: Path) -> List[Path]:
    return sorted(path for pattern in ("lib/python*/site-packages", "lib64/python*/site-packages")
                  for path in Path(venv).glob(pattern) if path.is_dir())


def venv_versions(venv: Path) -> Optional[Dict[str, str]]:
    """{canonical name: version} of the distributions installed in `venv`, read from their .dist-info metadata
    (nothing is imported or run); None when the venv does not exist here."""
    directories = site_packages(venv)
    if not directories:
        return None
    versions: Dict[str, str] = {}
    for distribution in metadata.distributions(path=[str(path) for path in directories]):
        name, version = distribution.metadata["Name"], distribution.version
        if name and version:
            versions.setdefault(canonical_name(name), str(version))
    return versions


def read_installed(data: AuditData) -> Dict[str, Optional[Dict[str, str]]]:
    return {name: venv_versions(environment.path) for name, environment in data.environments.items()}


def installed_version(installed: Installed, environment: str, package: str) -> Optional[str]:
    versions = installed.get(environment)
    if not versions:
        return None
    wanted = canonical_name(package)
    for name, version in versions.items():
        if canonical_name(name) == wanted:
            return str(version)
    return None


def _version(text: str) -> Optional[Version]:
    try:
        return Version(text)
    except (InvalidVersion, TypeError):
        return None


def status(advisory: Advisory, installed: Optional[str]) -> str:
    """open: installed at the reviewed version; stale: not installed, or at or past the fixed version (the entry
    should go); recheck: a different version that is still below the fix (the `why` was written for another)."""
    if installed is None:
        return STALE
    if installed == advisory.affected:
        return OPEN
    current, fixed = _version(installed), _version(advisory.fixed_in)
    if current is not None and fixed is not None and current >= fixed:
        return STALE
    return RECHECK


# --- the live list ------------------------------------------------------------------------------------------

def fetch_vulnerabilities(package: str, version: str, timeout: float = TIMEOUT_SECONDS) -> List[Dict[str, Any]]:
    """PyPI's advisories for one release (OSV data): [{"id", "aliases", "summary", "fixed_in", "withdrawn"...}]."""
    url = PYPI_URL.format(package=package, version=version)
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "ksos-audit"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        raise OnlineCheckFailed(f"{url}: HTTP {error.code}") from error
    except (urllib.error.URLError, OSError) as error:
        raise OnlineCheckFailed(f"{url}: {getattr(error, 'reason', error)}", unreachable=True) from error
    except ValueError as error:
        raise OnlineCheckFailed(f"{url}: not JSON ({error})") from error
    vulnerabilities = answer.get("vulnerabilities") if isinstance(answer, dict) else None
    if not isinstance(vulnerabilities, list):
        raise OnlineCheckFailed(f"{url}: no vulnerabilities list in the answer")
    return [v for v in vulnerabilities if isinstance(v, dict)]


def missing_advisories(known: Iterable[Advisory], live: Iterable[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """Live advisories (not withdrawn) none of whose ids or aliases the data file names."""
    known_ids: Set[str] = set()
    for advisory in known:
        known_ids |= advisory.known_ids
    missing = []
    for vulnerability in live:
        if vulnerability.get("withdrawn"):
            continue
        names = {str(name).upper() for name in [vulnerability.get("id"), *(vulnerability.get("aliases") or [])]
                 if name}
        if names and not names & known_ids:
            missing.append(vulnerability)
    return missing


# --- output -------------------------------------------------------------------------------------------------

def _gateway_interpreter() -> Optional[str]:
    """The interpreter bot/services.py would start the gateway with (GATEWAY_PYTHON, else .venv-gateway's)."""
    try:
        from bot.services import gateway_python
    except Exception:  # noqa: BLE001 - a fact we could not read is reported, not fatal
        return None
    return gateway_python()


def _inside(path: str, directory: Path) -> bool:
    try:
        return Path(os.path.abspath(path)).is_relative_to(Path(os.path.abspath(directory)))
    except (OSError, ValueError):
        return False


def environment_facts(data: AuditData, installed: Installed,
                      gateway_interpreter: Callable[[], Optional[str]] = _gateway_interpreter) -> List[str]:
    """What several `why`s depend on. The current interpreter's facts are read by importing; the other
    environments' by looking at their files."""
    optimize = os.environ.get("PYTHONOPTIMIZE")
    facts = [f"python -O (asserts stripped): {'on' if sys.flags.optimize else 'off'}"
             + (f" (PYTHONOPTIMIZE={optimize} is set: child processes run optimized)" if optimize else "")]
    flag = os.environ.get("AIOHTTP_NO_EXTENSIONS")
    if flag:
        facts.append(f"AIOHTTP_NO_EXTENSIONS={flag}: aiohttp uses its pure-Python parser in every process")
    try:
        from aiohttp import http_parser

        kind = "C (llhttp)" if http_parser.HttpRequestParser.__module__ == "aiohttp._http_parser" else "pure Python"
        facts.append(f"this interpreter's aiohttp HTTP parser: {kind}")
    except Exception as error:  # noqa: BLE001
        facts.append(f"this interpreter's aiohttp HTTP parser: unknown ({type(error).__name__})")
    try:
        from google.protobuf.internal import api_implementation

        facts.append(f"protobuf backend: {api_implementation.Type()}")
    except Exception as error:  # noqa: BLE001
        facts.append(f"protobuf backend: unknown ({type(error).__name__})")
    gateway = data.environments.get(GATEWAY)
    if gateway is not None:
        if installed.get(GATEWAY) is not None:
            compiled = any(True for directory in site_packages(gateway.path)
                           for _ in directory.glob("aiohttp/_http_parser*.so"))
            facts.append(f"{GATEWAY} aiohttp HTTP parser: "
                         + ("C extension present (aiohttp/_http_parser*.so)" if compiled
                            else "pure Python (no compiled aiohttp/_http_parser)"))
        interpreter = gateway_interpreter()
        if interpreter is None:
            facts.append("gateway interpreter: unknown (bot/services.py gateway_python() could not be read)")
        elif _inside(interpreter, gateway.path):
            facts.append(f"gateway interpreter (bot/services.py gateway_python()): {interpreter}")
        else:
            facts.append(f"WARNING: the gateway would run with {interpreter}, not from {gateway.venv}: the entries "
                         f"that count on the gateway running aiohttp from {gateway.venv} do not hold")
    return facts


def _wrap(text: str, indent: str) -> List[str]:
    return textwrap.wrap(text, width=WIDTH, initial_indent=indent, subsequent_indent=indent) or [indent]


def _report_package(name: str, info: Mapping[str, Any], installed: Optional[str], entries: List[Advisory],
                    environment_present: bool, counts: Dict[str, int], out) -> None:
    reachable = sum(1 for a in entries if a.reachable)
    shown = installed or ("NOT INSTALLED" if environment_present else "")
    head = f"  {name} {shown}".rstrip()
    if info.get("version") and installed != str(info["version"]):
        head += f" (reviewed at {info['version']})"
    if info.get("pinned_by"):
        head += f" - {info['pinned_by']}"
    print(head, file=out)
    print(f"    {len(entries)} advisor{'y' if len(entries) == 1 else 'ies'}, {reachable} reachable", file=out)
    if info.get("note"):
        out.write("\n".join(_wrap(" ".join(str(info["note"]).split()), "    ")) + "\n")
    if entries:
        print(f"    {'ADVISORY':<21} {'CVE':<16} {'REACHABLE':<9} {'FIXED IN':<12} STATUS", file=out)
    for advisory in entries:
        state = status(advisory, installed) if environment_present else ABSENT
        counts[state] += 1
        counts["reachable"] += advisory.reachable
        cve = ", ".join(advisory.cves) or "-"
        label = state if state != RECHECK else f"recheck (installed {installed})"
        print(f"    {advisory.id:<21} {cve:<16} {'YES' if advisory.reachable else 'no':<9} "
              f"{advisory.fixed_in:<12} {label}", file=out)
        out.write("\n".join(_wrap(advisory.summary, "        ")) + "\n")
        out.write("\n".join(_wrap(("reachable: " if advisory.reachable else "not reachable: ") + advisory.why,
                                  "        ")) + "\n")


def report(data: AuditData, installed: Installed, out=sys.stdout) -> Dict[str, int]:
    """Print the table per environment and package; returns counts by status and reachability."""
    counts = {OPEN: 0, STALE: 0, RECHECK: 0, ABSENT: 0, "reachable": 0}
    for name, environment in data.environments.items():
        present = installed.get(name) is not None
        where = "installed" if present else f"NOT INSTALLED HERE (no {environment.venv} on this machine)"
        print(f"Environment {name}: {environment.venv} ({environment.requirements}) - {where}", file=out)
        out.write("\n".join(_wrap(environment.role, "  ")) + "\n")
        reviewed = data.packages.get(name, {})
        by_package: Dict[str, List[Advisory]] = {}
        for advisory in data.advisories_for(name):
            by_package.setdefault(canonical_name(advisory.package), []).append(advisory)
        names = list(reviewed) + [a.package for a in data.advisories_for(name)
                                  if canonical_name(a.package) not in {canonical_name(n) for n in reviewed}]
        for package in dict.fromkeys(names):
            version = installed_version(installed, name, package) if present else None
            _report_package(package, reviewed.get(package, {}), version,
                            by_package.get(canonical_name(package), []), present, counts, out)
        print(file=out)
    return counts


def check_online(data: AuditData, installed: Installed, fetch: Callable[[str, str], List[Dict[str, Any]]],
                 out=sys.stdout) -> int:
    missing_total, failures = 0, []
    stop = False
    for environment, packages in data.packages.items():
        if stop:
            break
        if installed.get(environment) is None:
            failures.append(f"environment {environment} is not installed here: its packages were not asked")
            continue
        for name in packages:
            version = installed_version(installed, environment, name)
            if version is None:
                continue
            try:
                live = fetch(name, version)
            except OnlineCheckFailed as error:
                failures.append(f"could not check {error}")
                if error.unreachable:
                    failures.append("PyPI unreachable: the remaining packages were not asked")
                    stop = True
                    break
                continue
            missing = missing_advisories(data.advisories_for(environment, name), live)
            missing_total += len(missing)
            print(f"online: {environment}/{name} {version}: PyPI lists {len(live)} advisories, {len(missing)} "
                  "missing from the data file", file=out)
            for vulnerability in missing:
                aliases = ", ".join(vulnerability.get("aliases") or []) or "-"
                fixed = ", ".join(vulnerability.get("fixed_in") or []) or "?"
                print(f"  MISSING {vulnerability.get('id')} ({aliases}), fixed in {fixed}", file=out)
                summary = " ".join(str(vulnerability.get("summary") or vulnerability.get("details") or "").split())
                if summary:
                    out.write("\n".join(_wrap(summary[:300], "      ")) + "\n")
    for failure in failures:
        print(f"online: {failure}", file=out)
    if missing_total:
        print(f"{missing_total} advisor{'y' if missing_total == 1 else 'ies'} missing from "
              f"{DATA_FILE.relative_to(REPO_ROOT)}: add them with a reachability assessment.", file=out)
        return 1
    if failures:
        print("Online check incomplete: PyPI could not be asked for every package (see above).", file=out)
        return 2
    print("Online check: the data file covers every advisory PyPI lists.", file=out)
    return 0


def run(data_path: Path = DATA_FILE, online: bool = False, installed: Optional[Installed] = None,
        fetch: Callable[[str, str], List[Dict[str, Any]]] = fetch_vulnerabilities, out=sys.stdout,
        gateway_interpreter: Callable[[], Optional[str]] = _gateway_interpreter) -> int:
    try:
        data = load_data(data_path)
    except AuditDataError as error:
        print(f"audit: {error}", file=sys.stderr)
        return 2
    if installed is None:
        installed = read_installed(data)
    print(f"Dependency advisories reviewed on {data.reviewed_on} ({Path(data_path).name})", file=out)
    for fact in environment_facts(data, installed, gateway_interpreter):
        print(f"  {fact}", file=out)
    print(file=out)
    counts = report(data, installed, out)
    summary = (f"{len(data.advisories)} advisories: {counts['reachable']} reachable (see their mitigations), "
               f"{counts[STALE]} stale, {counts[RECHECK]} to recheck.")
    if counts[ABSENT]:
        summary += f" {counts[ABSENT]} not checked: their environment is not installed here."
    print(summary, file=out)
    if counts[STALE] or counts[RECHECK]:
        print("Stale entries: the package was upgraded or removed; drop or update them. Recheck: the installed "
              "version differs from the reviewed one.", file=out)
    if not online:
        print("Did not check online for new advisories (run with --online).", file=out)
        return 0
    print(file=out)
    return check_online(data, installed, fetch, out)


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--online", action="store_true",
                        help="also ask PyPI for advisories missing from the data file (exit 1 if any)")
    parser.add_argument("--data", type=Path, default=DATA_FILE, help=argparse.SUPPRESS)
    return parser


def cmd_audit(args: argparse.Namespace) -> int:
    return run(args.data, online=args.online)


def add_parser(commands) -> None:
    audit = commands.add_parser("audit", description=__doc__.split("\n\n")[0],
                                help="known advisories of the pinned dependencies, and their reachability")
    _configure(audit).set_defaults(func=cmd_audit)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _configure(argparse.ArgumentParser(prog="python -m bot audit", description=__doc__.split("\n\n")[0]))
    return cmd_audit(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
