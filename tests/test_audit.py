"""`python -m bot audit` (bot/cli/dependency_audit.py) and its data file docs/security/dependency-advisories.yml.
No network: the installed versions and PyPI's answers are faked, except in the tests of the real data file, which
read what is installed in each environment's venv."""
import argparse
import io
import os
import re

import pytest
import yaml

from bot.cli import dependency_audit as audit

FIXTURE = {
    "reviewed_on": "2026-12-01",
    "environments": {
        "rasa": {"venv": ".venv", "requirements": "requirements.txt", "role": "Rasa and the action server"},
        "gateway": {"venv": ".venv-gateway", "requirements": "requirements-gateway.txt", "role": "the gateway"},
    },
    "packages": {
        "rasa": {
            "aiohttp": {"version": "3.9.5", "pinned_by": "rasa: aiohttp<3.10"},
            "sanic": {"version": "21.12.2", "pinned_by": "rasa: sanic<21.13", "note": "no advisory known"},
            "tensorflow": {"version": "2.12.0", "pinned_by": "rasa: tensorflow==2.12.0"},
        },
        "gateway": {
            "aiohttp": {"version": "3.14.5", "pinned_by": "requirements-gateway.txt"},
            "PyYAML": {"version": "6.0.4", "pinned_by": "requirements-gateway.txt"},
        },
    },
    "advisories": [
        {"id": "GHSA-aaaa-aaaa-aaaa", "cve": ["CVE-2025-0001"], "environment": "rasa", "package": "aiohttp",
         "affected": "3.9.5", "fixed_in": "3.10.2", "summary": "static traversal", "reachable": False,
         "why": "no add_static"},
        {"id": "GHSA-bbbb-bbbb-bbbb", "cve": "CVE-2025-0002", "environment": "rasa", "package": "aiohttp",
         "affected": "3.9.5", "fixed_in": "3.13.3", "summary": "zip bomb", "reachable": True,
         "why": "proxy refuses Content-Encoding"},
        {"id": "GHSA-cccc-cccc-cccc", "cve": [], "environment": "rasa", "package": "tensorflow",
         "affected": "2.12.0", "fixed_in": "2.12.1", "summary": "segfault in an op", "reachable": False,
         "why": "our own model"},
        {"id": "GHSA-dddd-dddd-dddd", "cve": [], "environment": "gateway", "package": "aiohttp",
         "affected": "3.14.5", "fixed_in": "3.14.6", "summary": "websocket thing", "reachable": True,
         "why": "public websocket, capped by the proxy"},
    ],
}

INSTALLED = {"rasa": {"aiohttp": "3.9.5", "sanic": "21.12.2", "tensorflow": "2.12.0"},
             "gateway": {"aiohttp": "3.14.5", "pyyaml": "6.0.4"}}
NO_GATEWAY = {"rasa": INSTALLED["rasa"], "gateway": None}


def write(tmp_path, data):
    path = tmp_path / "advisories.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def no_network(package, version):
    raise AssertionError("the offline audit must not ask PyPI")


def gateway_in_venv():
    return str(audit.REPO_ROOT / ".venv-gateway" / "bin" / "python")


def run(tmp_path, data=FIXTURE, installed=INSTALLED, **kwargs):
    out = io.StringIO()
    kwargs.setdefault("fetch", no_network)
    kwargs.setdefault("gateway_interpreter", gateway_in_venv)
    code = audit.run(write(tmp_path, data), installed=installed, out=out, **kwargs)
    return code, out.getvalue()


def test_offline_prints_a_table_per_environment_and_package_and_exits_0(tmp_path):
    code, text = run(tmp_path)
    assert code == 0
    assert "Environment rasa: .venv (requirements.txt) - installed" in text
    assert "Environment gateway: .venv-gateway (requirements-gateway.txt) - installed" in text
    rasa, gateway = text.split("Environment gateway:")
    assert "aiohttp 3.9.5 - rasa: aiohttp<3.10" in rasa and "2 advisories, 1 reachable" in rasa
    assert "sanic 21.12.2" in rasa and "0 advisories, 0 reachable" in rasa and "no advisory known" in rasa
    assert "aiohttp 3.14.5 - requirements-gateway.txt" in gateway and "GHSA-dddd-dddd-dddd" in gateway
    assert "GHSA-dddd-dddd-dddd" not in rasa and "GHSA-bbbb-bbbb-bbbb" not in gateway
    assert "PyYAML 6.0.4" in gateway                       # the lookup normalises distribution names
    zip_bomb = next(line for line in text.splitlines() if "GHSA-bbbb-bbbb-bbbb" in line)
    assert "CVE-2025-0002" in zip_bomb and "YES" in zip_bomb and zip_bomb.rstrip().endswith("open")
    assert "reachable: proxy refuses Content-Encoding" in text
    assert "not reachable: no add_static" in text
    assert "Did not check online" in text
    assert "4 advisories: 2 reachable" in text and "0 stale" in text
    assert "gateway interpreter (bot/services.py gateway_python())" in text and "WARNING" not in text


def test_a_missing_environment_is_reported_and_does_not_fail_offline(tmp_path):
    code, text = run(tmp_path, installed=NO_GATEWAY)
    assert code == 0
    assert "Environment gateway: .venv-gateway (requirements-gateway.txt) - NOT INSTALLED HERE" in text
    dddd = next(line for line in text.splitlines() if "GHSA-dddd-dddd-dddd" in line)
    assert dddd.rstrip().endswith(audit.ABSENT)
    assert "0 stale, 0 to recheck. 1 not checked: their environment is not installed here." in text


def test_a_gateway_outside_its_venv_is_warned_about(tmp_path):
    _, text = run(tmp_path, gateway_interpreter=lambda: str(audit.REPO_ROOT / ".venv" / "bin" / "python"))
    assert "WARNING: the gateway would run with" in text and "not from .venv-gateway" in text


def test_status_compares_with_the_installed_version():
    advisory = audit.Advisory(id="GHSA-x", cves=(), package="aiohttp", affected="3.9.5", fixed_in="3.13.3",
                              summary="s", reachable=False, why="w", environment="rasa")
    assert audit.status(advisory, "3.9.5") == audit.OPEN
    assert audit.status(advisory, None) == audit.STALE           # removed
    assert audit.status(advisory, "3.13.3") == audit.STALE       # upgraded to the fix
    assert audit.status(advisory, "3.14.5") == audit.STALE
    assert audit.status(advisory, "3.10.0") == audit.RECHECK     # another version, still below the fix
    unfixed = audit.Advisory(id="CVE-x", cves=(), package="tensorflow", affected="2.12.0", fixed_in="none known",
                             summary="s", reachable=False, why="w", environment="rasa")
    assert audit.status(unfixed, "2.12.0") == audit.OPEN
    assert audit.status(unfixed, "2.13.0") == audit.RECHECK


def test_upgraded_or_removed_packages_are_flagged_stale_per_environment(tmp_path):
    installed = {"rasa": {"aiohttp": "3.13.4", "sanic": "21.12.2"}, "gateway": {"aiohttp": "3.14.6"}}
    code, text = run(tmp_path, installed=installed)
    assert code == 0
    assert "aiohttp 3.13.4 (reviewed at 3.9.5)" in text
    assert "aiohttp 3.14.6 (reviewed at 3.14.5)" in text
    assert "tensorflow NOT INSTALLED" in text
    assert "PyYAML NOT INSTALLED" in text
    assert "4 stale" in text


def test_malformed_data_is_refused(tmp_path, capsys):
    broken = {**FIXTURE, "advisories": [{**FIXTURE["advisories"][0], "reachable": "maybe"},
                                        {k: v for k, v in FIXTURE["advisories"][1].items() if k != "why"},
                                        {**FIXTURE["advisories"][2], "environment": "moon"},
                                        {**FIXTURE["advisories"][3], "package": "sanic"}]}
    with pytest.raises(audit.AuditDataError) as error:
        audit.load_data(write(tmp_path, broken))
    message = str(error.value)
    assert "reachable must be true or false" in message and "missing why" in message
    assert "environment moon is not listed" in message and "add sanic to packages.gateway" in message
    assert audit.run(write(tmp_path, broken), installed=INSTALLED, fetch=no_network) == 2
    assert "missing why" in capsys.readouterr().err


def test_environments_are_required_and_packages_are_keyed_by_them(tmp_path):
    without = {k: v for k, v in FIXTURE.items() if k != "environments"}
    with pytest.raises(audit.AuditDataError, match="environments must map"):
        audit.load_data(write(tmp_path, without))
    stray = {**FIXTURE, "packages": {**FIXTURE["packages"], "moon": {"x": {"version": "1"}}}}
    with pytest.raises(audit.AuditDataError, match="packages.moon: not an environment"):
        audit.load_data(write(tmp_path, stray))


def test_the_same_advisory_may_be_reviewed_in_both_environments(tmp_path):
    twice = dict(FIXTURE["advisories"][3], environment="rasa", affected="3.9.5")
    data = audit.load_data(write(tmp_path, {**FIXTURE, "advisories": [*FIXTURE["advisories"], twice]}))
    assert [a.environment for a in data.advisories if a.id == "GHSA-dddd-dddd-dddd"] == ["gateway", "rasa"]
    dup = {**FIXTURE, "advisories": [*FIXTURE["advisories"], FIXTURE["advisories"][3]]}
    with pytest.raises(audit.AuditDataError, match="duplicate id in environment gateway"):
        audit.load_data(write(tmp_path, dup))


def test_versions_are_read_from_a_venv_without_importing_it(tmp_path):
    site = tmp_path / "venv" / "lib" / "python3.10" / "site-packages"
    for name, version in (("aiohttp", "3.14.5"), ("PyYAML", "6.0.4")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    versions = audit.venv_versions(tmp_path / "venv")
    assert versions == {"aiohttp": "3.14.5", "pyyaml": "6.0.4"}
    assert audit.installed_version({"gateway": versions}, "gateway", "PyYAML") == "6.0.4"
    assert audit.venv_versions(tmp_path / "absent") is None


def test_missing_advisories_match_on_ids_and_aliases():
    advisories = [audit.Advisory(id="GHSA-aaaa-aaaa-aaaa", cves=("CVE-2025-0001",), package="aiohttp",
                                 affected="3.9.5", fixed_in="3.10.2", summary="s", reachable=False, why="w",
                                 environment="rasa", aliases=("PYSEC-2026-9",))]
    live = [
        {"id": "GHSA-aaaa-aaaa-aaaa", "aliases": []},                      # same id
        {"id": "PYSEC-2026-1", "aliases": ["cve-2025-0001"]},              # republished under another id
        {"id": "PYSEC-2026-9", "aliases": []},                             # one of our aliases
        {"id": "GHSA-new1-new1-new1", "aliases": ["CVE-2026-9999"]},      # new
        {"id": "GHSA-gone-gone-gone", "aliases": [], "withdrawn": "2026-01-01T00:00:00Z"},
    ]
    assert [v["id"] for v in audit.missing_advisories(advisories, live)] == ["GHSA-new1-new1-new1"]


def test_online_asks_per_environment_and_reports_missing_advisories(tmp_path):
    asked = []

    def fetch(package, version):
        asked.append((package, version))
        if (package, version) == ("aiohttp", "3.9.5"):
            return [{"id": "PYSEC-2026-7", "aliases": ["CVE-2025-0002"]},
                    {"id": "GHSA-new1-new1-new1", "aliases": ["CVE-2026-9999"], "fixed_in": ["3.14.1"],
                     "summary": "something new"}]
        if (package, version) == ("aiohttp", "3.14.5"):
            return [{"id": "GHSA-bbbb-bbbb-bbbb"}]           # known for rasa only: missing for the gateway
        return []

    code, text = run(tmp_path, online=True, fetch=fetch)
    assert code == 1
    assert asked == [("aiohttp", "3.9.5"), ("sanic", "21.12.2"), ("tensorflow", "2.12.0"),
                     ("aiohttp", "3.14.5"), ("PyYAML", "6.0.4")]
    assert "MISSING GHSA-new1-new1-new1 (CVE-2026-9999), fixed in 3.14.1" in text and "something new" in text
    assert "online: gateway/aiohttp 3.14.5: PyPI lists 1 advisories, 1 missing" in text
    assert "PYSEC-2026-7" not in text
    assert "2 advisories missing" in text


def test_online_with_nothing_missing_exits_0(tmp_path):
    def fetch(package, version):
        return [{"id": "GHSA-cccc-cccc-cccc"}] if package == "tensorflow" else []

    code, text = run(tmp_path, online=True, fetch=fetch)
    assert code == 0
    assert "covers every advisory" in text


def test_online_without_an_environment_is_incomplete(tmp_path):
    code, text = run(tmp_path, online=True, fetch=lambda package, version: [], installed=NO_GATEWAY)
    assert code == 2
    assert "environment gateway is not installed here" in text and "incomplete" in text


def test_online_without_pypi_says_so_and_exits_2(tmp_path):
    asked = []

    def unreachable(package, version):
        asked.append(package)
        raise audit.OnlineCheckFailed(f"{package} {version}: timed out", unreachable=True)

    code, text = run(tmp_path, online=True, fetch=unreachable)
    assert code == 2
    assert asked == ["aiohttp"]                       # no point waiting for more timeouts
    assert "could not check" in text and "incomplete" in text


def test_fetch_vulnerabilities_reads_pypi_json(monkeypatch):
    class Answer(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    seen = {}

    def urlopen(request, timeout):
        seen["url"], seen["timeout"] = request.full_url, timeout
        return Answer(b'{"info": {}, "vulnerabilities": [{"id": "GHSA-x", "aliases": ["CVE-1"]}, "junk"]}')

    monkeypatch.setattr(audit.urllib.request, "urlopen", urlopen)
    assert audit.fetch_vulnerabilities("aiohttp", "3.9.5") == [{"id": "GHSA-x", "aliases": ["CVE-1"]}]
    assert seen == {"url": "https://pypi.org/pypi/aiohttp/3.9.5/json", "timeout": audit.TIMEOUT_SECONDS}


def test_add_parser_registers_the_audit_command(tmp_path, monkeypatch):
    parser = argparse.ArgumentParser()
    audit.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["audit", "--online"])
    assert args.online is True and args.data == audit.DATA_FILE
    calls = []
    monkeypatch.setattr(audit, "run", lambda data, online: calls.append((data, online)) or 0)
    assert args.func(args) == 0 and calls == [(audit.DATA_FILE, True)]
    assert audit.main(["--data", str(tmp_path / "x.yml")]) == 0 and calls[-1] == (tmp_path / "x.yml", False)


# --- the real data file -------------------------------------------------------------------------------------

ID = re.compile(r"^(GHSA(-[23456789cfghjmpqrvwx]{4}){3}|PYSEC-\d{4}-\d+|CVE-\d{4}-\d{4,})$")


def test_the_data_file_parses_and_every_entry_is_complete():
    raw = yaml.safe_load(audit.DATA_FILE.read_text(encoding="utf-8"))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(raw["reviewed_on"]))
    assert set(raw["environments"]) == {"rasa", "gateway"}
    assert raw["environments"]["rasa"]["venv"] == ".venv"
    assert raw["environments"]["gateway"]["venv"] == ".venv-gateway"
    assert raw["environments"]["gateway"]["requirements"] == "requirements-gateway.txt"
    for entry in raw["advisories"]:
        assert set(audit.ENTRY_FIELDS) <= set(entry), entry.get("id")
        assert isinstance(entry["reachable"], bool), entry["id"]
        assert isinstance(entry["cve"], list), entry["id"]
        assert all(re.fullmatch(r"CVE-\d{4}-\d{4,}", cve) for cve in entry["cve"]), entry["id"]
        assert all(ID.match(alias) for alias in entry.get("aliases", [])), entry["id"]
        assert ID.match(entry["id"]), entry["id"]
        assert entry["environment"] in raw["environments"], entry["id"]
        assert entry["package"] in raw["packages"][entry["environment"]], \
            f"{entry['id']}: add {entry['package']} to packages.{entry['environment']}"
        assert len(str(entry["why"]).split()) >= 5, f"{entry['id']}: say why"
    data = audit.load_data()                     # the loader's own checks: no duplicates, nothing empty
    assert len(data.advisories) == len(raw["advisories"]) > 0
    assert {"aiohttp", "sanic", "tensorflow"} <= set(data.packages["rasa"])
    assert {"aiohttp", "cryptography", "sqlalchemy", "spacy", "numpy", "pydantic"} <= set(data.packages["gateway"])


def test_the_data_file_covers_every_gateway_requirement():
    """Every package pinned in requirements-gateway.txt is reviewed for the gateway environment."""
    data = audit.load_data()
    pinned = {audit.canonical_name(line.split("==")[0].strip())
              for line in (audit.REPO_ROOT / "requirements-gateway.txt").read_text().splitlines()
              if "==" in line and not line.lstrip().startswith("#")}
    reviewed = {audit.canonical_name(name) for name in data.packages["gateway"]}
    helpers = {"blis", "packaging"}              # build/helper pins without advisories, named in the spaCy note
    assert pinned - helpers <= reviewed, f"review {sorted(pinned - helpers - reviewed)} for the gateway"


def _environments_to_check():
    data = audit.load_data()
    installed = audit.read_installed(data)
    for name, environment in data.environments.items():
        if installed[name] is None:
            if name == audit.GATEWAY and not os.environ.get("CI"):
                pytest.skip(f"{environment.venv} is not built here (make install builds it; CI always has it)")
            pytest.fail(f"{environment.venv} does not exist: run make install")
    return data, installed


def test_the_data_file_matches_the_venvs():
    """Every reviewed package is installed at exactly the reviewed version in its environment, so an upgrade (or a
    removal) fails here until the data file is updated: drop the advisories it fixed, re-review the others. Only
    the gateway venv may be missing, and only outside CI."""
    data, installed = _environments_to_check()
    for environment, packages in data.packages.items():
        for name, info in packages.items():
            version = audit.installed_version(installed, environment, name)
            assert version is not None, f"{name} is reviewed for {environment} but not installed there"
            assert version == str(info["version"]), \
                f"{environment}: {name} is {version}, reviewed at {info['version']}"
    for advisory in data.advisories:
        version = audit.installed_version(installed, advisory.environment, advisory.package)
        assert audit.status(advisory, version) == audit.OPEN, \
            f"{advisory.id}: {advisory.package} is {version} in {advisory.environment}, " \
            f"the entry was written for {advisory.affected}"


def test_the_real_audit_runs_offline():
    data, installed = _environments_to_check()
    out = io.StringIO()
    assert audit.run(out=out, fetch=no_network) == 0
    text = out.getvalue()
    assert "this interpreter's aiohttp HTTP parser: C (llhttp)" in text
    assert " 0 stale, 0 to recheck" in text
    assert "not checked" not in text
    if not os.environ.get("GATEWAY_PYTHON"):
        assert "gateway aiohttp HTTP parser: C extension present" in text
        assert "gateway interpreter (bot/services.py gateway_python())" in text and "WARNING" not in text
