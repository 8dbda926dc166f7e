"""`make cluster` (`python -m bot cluster`): the production topology as processes on this machine, two of
everything behind HAProxy, on the local PostgreSQL and Redis, supervised like `serve`.

    HAProxy :8080 ──▶ gateway-1 :8081, gateway-2 :8082   (replicas: leases in PostgreSQL, widget frames via Redis)
                          │ RASA_URLS round-robin
                          ▼
                      rasa-1 :5005, rasa-2 :5006           (tracker store in PostgreSQL, lock store in Redis)
                          │ action endpoint: HAProxy 127.0.0.1:5050
                          ▼
                      actions-1 :5055, actions-2 :5056

Only HAProxy's public port faces outside (CLUSTER_PUBLIC_HOST, default 127.0.0.1); every other port is on
loopback and needs its token, as with `serve`. CLUSTER_DATABASE_URL (default: the local PostgreSQL's `test`
database, schema `ksos_cluster`) holds our tables and Rasa's tracker; CLUSTER_REDIS_URL (default the local Redis)
Rasa's locks and the widget frames. CLUSTER_PORT_OFFSET moves every port by that much (tests run a cluster beside
`make run`)."""
from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import List, Mapping, Optional
from urllib.parse import parse_qs, urlsplit

from bot.paths import RESOURCES_DIR, VAR_DIR
from bot.rasa_runtime.api import api_url
from bot.services import Service, ServiceGroup, child_environment, gateway_command
from bot.settings import Settings, load_settings

HAPROXY_TEMPLATE = RESOURCES_DIR / "cluster" / "haproxy.cfg.tmpl"
CLUSTER_DIR = VAR_DIR / "cluster"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dksos_cluster"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
REPLICAS = 2                # of each process; CLUSTER_REPLICAS (1-4) for the benchmark's comparison


@dataclass(frozen=True)
class Topology:
    public_host: str
    public_port: int
    gateway_ports: List[int]
    rasa_ports: List[int]
    actions_ports: List[int]
    actions_proxy_port: int
    database_url: str
    redis_url: str
    folder: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Topology":
        offset = int(env.get("CLUSTER_PORT_OFFSET", "0") or 0)
        replicas = min(4, max(1, int(env.get("CLUSTER_REPLICAS", "") or REPLICAS)))
        return cls(
            public_host=env.get("CLUSTER_PUBLIC_HOST", "127.0.0.1"), public_port=8080 + offset,
            gateway_ports=[8081 + offset + i for i in range(replicas)],
            rasa_ports=[5005 + offset + i for i in range(replicas)],
            actions_ports=[5055 + offset + i for i in range(replicas)],
            actions_proxy_port=5050 + offset,
            database_url=env.get("CLUSTER_DATABASE_URL") or DEFAULT_DATABASE,
            redis_url=env.get("CLUSTER_REDIS_URL") or DEFAULT_REDIS,
            folder=Path(env.get("CLUSTER_DIR") or CLUSTER_DIR),
        )


def haproxy_config(topology: Topology) -> str:
    def servers(prefix: str, ports: List[int]) -> str:
        return "\n".join(f"    server {prefix}-{i + 1} 127.0.0.1:{port} check" for i, port in enumerate(ports))

    return Template(HAPROXY_TEMPLATE.read_text()).substitute(
        public_host=topology.public_host, public_port=topology.public_port,
        actions_proxy_port=topology.actions_proxy_port,
        gateway_servers=servers("gateway", topology.gateway_ports),
        actions_servers=servers("actions", topology.actions_ports))


def ensure_schema(database_url: str) -> None:
    """The schema named in the URL's search_path, made if missing (PostgreSQL)."""
    options = parse_qs(urlsplit(database_url).query).get("options", [""])[0]
    if "search_path=" not in options:
        return
    schema = options.split("search_path=", 1)[1].split()[0].split(",")[0]
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url.split("?", 1)[0], future=True)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()


def cluster_services(settings: Settings, topology: Topology, haproxy: str) -> ServiceGroup:
    settings.require("RASA_API_TOKEN", "ACTION_SERVER_TOKEN", "DATA_ENCRYPTION_KEY")
    config = topology.folder / "haproxy.cfg"
    rasa_urls = ",".join(f"http://127.0.0.1:{port}" for port in topology.rasa_ports)
    services = [Service("haproxy", [haproxy, "-f", str(config), "-db"],
                        f"http://127.0.0.1:{topology.actions_proxy_port}/health")]
    for i, port in enumerate(topology.actions_ports):
        services.append(Service(f"actions-{i + 1}", [sys.executable, "-m", "bot", "actions", "--port", str(port),
                                                     "--host", "127.0.0.1"], f"http://127.0.0.1:{port}/health"))
    for i, port in enumerate(topology.rasa_ports):
        services.append(Service(
            f"rasa-{i + 1}", [sys.executable, "-m", "bot", "rasa-server", "--interface", "127.0.0.1", "--port",
                              str(port), "--model", settings.model_path],
            api_url(f"http://127.0.0.1:{port}", "/status", settings.rasa_api_token)))
    for i, port in enumerate(topology.gateway_ports):
        services.append(Service(
            f"gateway-{i + 1}", [*gateway_command(), "--port", str(port), "--host", "127.0.0.1"],
            f"http://127.0.0.1:{port}/healthz",
            env={"GATEWAY_REPLICA_ID": f"gateway-{i + 1}", "GATEWAY_PORT": str(port)}))
    group = ServiceGroup(services, status_file=topology.folder / "services.json")
    group.env = {**child_environment(settings), "RASA_URLS": rasa_urls,
                 "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{topology.actions_proxy_port}/webhook",
                 "GATEWAY_TRUSTED_PROXIES": "127.0.0.1", "SERVICES_STATUS_FILE": str(group.status_file)}
    return group


def find_haproxy() -> Optional[str]:
    return os.environ.get("HAPROXY") or shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)


def run(report=print) -> int:
    """Start everything (migrating first), print where to talk to it, supervise until SIGTERM or Ctrl-C."""
    from bot.database import make_engine
    from bot.schema import upgrade

    topology = Topology.from_env(os.environ)
    haproxy = find_haproxy()
    if haproxy is None:
        report("HAProxy is not installed: `make cluster` installs it (apt-get install haproxy)")
        return 2
    env = {**os.environ, "DATABASE_URL": topology.database_url, "TRACKER_STORE_URL": topology.database_url,
           "REDIS_URL": topology.redis_url, "RASA_URL": f"http://127.0.0.1:{topology.rasa_ports[0]}"}
    settings = load_settings(env)
    ensure_schema(topology.database_url)
    engine = make_engine(topology.database_url)
    upgrade(engine)
    engine.dispose()
    topology.folder.mkdir(parents=True, exist_ok=True)
    (topology.folder / "haproxy.cfg").write_text(haproxy_config(topology))
    group = cluster_services(settings, topology, haproxy)
    stop_requested: List[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(True))
    started = time.monotonic()
    try:
        # Rasa makes its tracker tables when it starts: one Rasa first, then the second beside it.
        first = ["haproxy", "rasa-1", *(f"actions-{i + 1}" for i in range(len(topology.actions_ports)))]
        group.start(group.env, topology.folder / "logs", only=first)
        report(f"Starting HAProxy, 2 action servers and the first Rasa (logs in {topology.folder / 'logs'}) ...")
        group.wait_ready()
        group.start_more([service.name for service in group.services if service.name not in first])
        report(f"Starting the other Rasa servers and {len(topology.gateway_ports)} gateway(s) ...")
        group.wait_ready()
        report(f"\nKSOS assistant cluster ready in {time.monotonic() - started:.1f}s: {len(topology.gateway_ports)} of "
               f"each (gateway, Rasa, action server) on {topology.database_url.split('@')[-1]} and "
               f"{topology.redis_url}.\n"
               f"  Website chat (widget), through HAProxy: http://localhost:{topology.public_port}/\n"
               f"  Agent console: http://localhost:{topology.public_port}/agent   Health: "
               f"http://localhost:{topology.public_port}/healthz (per replica: "
               f"{', '.join(f':{port}' for port in topology.gateway_ports)})\n"
               "A process that stops is started again. Press Ctrl-C to stop everything.")
        while not stop_requested:
            group.supervise(report=lambda line: report(line))
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as error:
        report(f"Could not start the cluster: {error}")
        return 1
    finally:
        group.stop()
        report("Stopped.")
    return 0

