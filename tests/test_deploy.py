"""compose.yaml, the Dockerfile and deploy/haproxy.cfg agree with each other and with the code (no Docker engine
runs on the machines that test this: the structure is checked, docs/deploy.md says so)."""
import re

import yaml

from bot.paths import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
ASSISTANT = {name: service for name, service in SERVICES.items() if service.get("image") == "ksos-assistant:latest"}


def test_two_of_each_replica_and_only_the_proxy_is_published():
    kinds = sorted(re.sub(r"-\d$", "", name) for name in ASSISTANT)
    assert kinds == ["actions", "actions", "gateway", "gateway", "rasa", "rasa"]
    assert {"postgres", "redis", "proxy"} <= set(SERVICES)
    assert [name for name, service in SERVICES.items() if service.get("ports")] == ["proxy"]


def test_every_replica_has_the_shared_stores_and_requires_the_secrets():
    for name, service in ASSISTANT.items():
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://") and env["REDIS_URL"].startswith("redis://"), name
        for secret in ("RASA_API_TOKEN", "ACTION_SERVER_TOKEN", "DATA_ENCRYPTION_KEY"):
            assert env[secret].startswith(f"${{{secret}:?"), (name, secret)      # compose refuses to start without
    gateways = [service for name, service in ASSISTANT.items() if name.startswith("gateway")]
    assert len({g["environment"]["GATEWAY_REPLICA_ID"] for g in gateways}) == 2
    assert all(g["command"][0] == ".venv-gateway/bin/python" for g in gateways)       # the gateway's own aiohttp
    rasa_urls = gateways[0]["environment"]["RASA_URLS"].split(",")
    assert [url.split("//")[1].split(":")[0] for url in rasa_urls] == ["rasa-1", "rasa-2"]
    proxy = SERVICES["proxy"]["networks"]["default"]["ipv4_address"]
    assert all(g["environment"]["GATEWAY_TRUSTED_PROXIES"] == proxy for g in gateways)


def test_haproxy_sends_to_services_that_exist():
    config = (REPO_ROOT / "deploy" / "haproxy.cfg").read_text()
    targets = re.findall(r"^\s+server \S+ ([\w-]+):(\d+)", config, re.M)
    assert sorted(host for host, _port in targets) == ["actions-1", "actions-2", "gateway-1", "gateway-2"]
    for host, port in targets:
        assert f"--port\", \"{port}" in str(SERVICES[host]["command"]).replace("'", '"'), host
    assert ASSISTANT["rasa-1"]["environment"]["ACTION_ENDPOINT_URL"] == "http://proxy:5050/webhook"


def test_the_image_trains_the_model_and_runs_unprivileged():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "python -m bot train" in dockerfile and re.search(r"^USER ksos$", dockerfile, re.M)
    assert "var" in (REPO_ROOT / ".dockerignore").read_text().split()       # no checkout secrets in the image
