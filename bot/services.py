"""Start, watch and stop the assistant's processes: the Rasa SDK action server, the Rasa server and the gateway.

`serve` supervises them: a child that exits unexpectedly is started again after a backoff (1, 2, 4 ... 30 s; back to
1 s once it has run for a minute), which its own log and the supervisor's output say, and which the status file
(SERVICES_STATUS_FILE, var/run/services.json) records for the gateway's /healthz."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from bot.backoff import exponential_delay
from bot.paths import REPO_ROOT, VAR_DIR
from bot.rasa_runtime.api import api_url
from bot.settings import Settings

TRAINING_DATA = ["data"]          # everything Rasa trains on, and nothing else (resources/ holds the rest)
LOG_DIR = VAR_DIR / "logs"
STATUS_FILE = VAR_DIR / "run" / "services.json"
RESTART_CAP_SECONDS = 30.0
STABLE_AFTER_SECONDS = 60.0          # a child that ran this long starts again from the shortest backoff


def child_environment(settings: Settings) -> Dict[str, str]:
    """Environment for Rasa processes: ours, the endpoints.yml variables, our package importable, quiet TF."""
    env = dict(os.environ)
    for key, value in settings.rasa_environment().items():
        env[key] = value
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    return env


def rasa_command(*args: str) -> List[str]:
    """Rasa's command line, through bot/rasa_runtime/launcher.py (which keeps Rasa's crash reports on this machine)."""
    return [sys.executable, "-m", "bot", "rasa", *args]


def train_command(output_dir: str = "models", fixed_name: str = "ksos", config: str = "config.yml") -> List[str]:
    # --force: Rasa's training cache fingerprints config and data but not our components' code or lexicons,
    # so a cached featurizer could survive a change of bot/nlu/text.py; `make` only trains when an input changed.
    return rasa_command(
        "train", "--force", "--config", config, "--domain", "domain.yml", "--data", *TRAINING_DATA,
        "--out", output_dir, "--fixed-model-name", fixed_name,
    )


def actions_command(settings: Settings) -> List[str]:
    """The private action server (bot/rasa_runtime/action_server.py): loopback, token required."""
    return [sys.executable, "-m", "bot", "actions", "--port", str(settings.actions_port),
            "--host", settings.actions_interface]


def rasa_server_command(settings: Settings) -> List[str]:
    """Rasa with its HTTP API behind RASA_API_TOKEN and only our gateway channel (bot/rasa_runtime/launcher.py)."""
    return [sys.executable, "-m", "bot", "rasa-server", "--interface", settings.rasa_interface,
            "--port", str(settings.rasa_port), "--model", settings.model_path]


def http_json(url: str, timeout: float = 2.0) -> Optional[dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8") or "{}")
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, OSError):
        return None


@dataclass
class Service:
    name: str
    argv: List[str]
    ready_url: str
    process: Optional[subprocess.Popen] = None
    log_path: Optional[Path] = None
    restarts: int = 0                       # unexpected exits so far
    last_exit: Optional[int] = None         # the exit code (negative: the signal) of the last unexpected exit
    started_at: float = 0.0                 # time.monotonic() of the last start
    restart_at: Optional[float] = None      # when it is due to start again (None: running or stopped)
    failures_in_a_row: int = 0
    env: Dict[str, str] = field(default_factory=dict)     # on top of the group's environment

    def is_ready(self) -> bool:
        answer = http_json(self.ready_url)
        if answer is None:
            return False
        return bool(answer.get("model_file", True))  # Rasa: a model is loaded; action server: any answer

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def state(self) -> str:
        if self.restart_at is not None:
            return "restarting"
        return "running" if self.process and self.process.poll() is None else "stopped"

    def to_json(self) -> Dict[str, object]:
        return {"state": self.state(), "restarts": self.restarts, "last_exit": self.last_exit,
                "pid": self.process.pid if self.process and self.process.poll() is None else None}


@dataclass
class ServiceGroup:
    """The running processes; stop() ends them all (also on Ctrl-C via `serve`); supervise() restarts a child
    that exited."""

    services: List[Service] = field(default_factory=list)
    env: Dict[str, str] = field(default_factory=dict)
    status_file: Optional[Path] = None
    log_dir: Path = LOG_DIR

    def start(self, env: Dict[str, str], log_dir: Path = LOG_DIR, only: Optional[List[str]] = None) -> None:
        """Start the services (those named in `only`, the others later with start_more)."""
        log_dir.mkdir(parents=True, exist_ok=True)
        self.env, self.log_dir = env, log_dir
        self.start_more(only if only is not None else [service.name for service in self.services])

    def start_more(self, names: List[str]) -> None:
        for service in self.services:
            if service.name in names and service.process is None:
                if service.is_ready():
                    # Another process (one left from an earlier run) already answers on this service's port: the
                    # child would fail to bind while wait_ready() took the stranger for it.
                    raise RuntimeError(f"{service.name}: something already answers at {service.ready_url}; stop "
                                       "it first (a process left from an earlier run?)")
                service.log_path = self.log_dir / f"{service.name}.log"
                self._launch(service, mode="w")
        self.write_status()

    def _launch(self, service: Service, mode: str = "a") -> None:
        assert service.log_path is not None
        with open(service.log_path, mode) as log:     # the child keeps its own copy of the descriptor
            service.process = subprocess.Popen(
                service.argv, cwd=REPO_ROOT, env={**self.env, **service.env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service.started_at = time.monotonic()
        service.restart_at = None

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        pending = [service for service in self.services if service.process is not None]
        while pending:
            for service in list(pending):
                if service.process and service.process.poll() is not None:
                    raise RuntimeError(f"{service.name} exited:\n{service.log_tail()}")
                if service.is_ready():
                    pending.remove(service)
            if pending and time.monotonic() > deadline:
                names = ", ".join(service.name for service in pending)
                raise TimeoutError(f"not ready after {timeout:.0f}s: {names}")
            if pending:
                time.sleep(0.25)

    def supervise(self, report=print) -> List[str]:
        """One round of supervision: note each child that exited since the last round and schedule its restart
        after a backoff; start the ones whose time has come. Returns what happened, one line each (also in the
        child's log and through `report`)."""
        now, events = time.monotonic(), []

        def happened(service: Service, line: str) -> None:
            events.append(line)
            report(f"supervisor: {line}")
            if service.log_path:
                with open(service.log_path, "a") as log:
                    log.write(f"--- supervisor: {line}\n")

        for service in self.services:
            if service.restart_at is None and service.process and service.process.poll() is not None:
                code = service.process.returncode
                ran = now - service.started_at
                service.failures_in_a_row = 1 if ran >= STABLE_AFTER_SECONDS else service.failures_in_a_row + 1
                delay = exponential_delay(service.failures_in_a_row - 1, 1.0, RESTART_CAP_SECONDS)
                service.restarts += 1
                service.last_exit = code
                service.restart_at = now + delay
                happened(service, f"{service.name} exited with code {code} after {ran:.1f} s; starting it again in "
                                  f"{delay:.0f} s (restart {service.restarts})")
            elif service.restart_at is not None and now >= service.restart_at:
                self._launch(service)
                happened(service, f"{service.name} started again "
                                  f"(pid {service.process.pid if service.process else '?'})")
        if events:
            self.write_status()
        return events

    def write_status(self) -> None:
        """What each child is doing, for the gateway's /healthz (written atomically)."""
        if self.status_file is None:
            return
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.status_file.with_suffix(".tmp")
        partial.write_text(json.dumps({service.name: service.to_json() for service in self.services}))
        os.replace(partial, self.status_file)

    def stop(self) -> None:
        for service in self.services:
            service.restart_at = None
            if service.process and service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGTERM)
        for service in self.services:
            if service.process:
                try:
                    service.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(service.process.pid, signal.SIGKILL)
        self.write_status()


def log_dir() -> Path:
    """Where `serve` keeps its children's logs (SERVICES_LOG_DIR; default var/logs)."""
    return Path(os.environ.get("SERVICES_LOG_DIR") or LOG_DIR)


def status_file() -> Path:
    """Where `serve` writes its children's state (SERVICES_STATUS_FILE; default var/run/services.json)."""
    return Path(os.environ.get("SERVICES_STATUS_FILE") or STATUS_FILE)


def prepare_sqlite_tracker_store(url: str) -> None:
    """Put a SQLite tracker store file in WAL mode before Rasa opens it. The mode is stored in the file, so Rasa's
    own connections then read while another conversation writes, instead of waiting for the lock."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return
    import sqlite3

    path = Path(url[len("sqlite:///"):])
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


GATEWAY_VENV = REPO_ROOT / ".venv-gateway"


def gateway_python() -> str:
    """The interpreter of the gateway's own environment (requirements-gateway.txt: a current aiohttp, where Rasa
    pins 3.9), made by `make install`; GATEWAY_PYTHON overrides it. Without it the gateway runs in this
    environment, and says so in its log (bot/gateway/app.py)."""
    explicit = os.environ.get("GATEWAY_PYTHON")
    if explicit:
        return explicit
    candidate = GATEWAY_VENV / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def gateway_command() -> List[str]:
    return [gateway_python(), "-m", "bot", "gateway"]


def rasa_status_url(settings: Settings) -> str:
    """The local Rasa server's /status (which needs the API token, in the query as Rasa expects it)."""
    return api_url(f"http://127.0.0.1:{settings.rasa_port}", "/status", settings.rasa_api_token)


def assistant_services(settings: Settings, with_rasa: bool = True, with_gateway: bool = False) -> ServiceGroup:
    settings.require("RASA_API_TOKEN", "ACTION_SERVER_TOKEN", "DATA_ENCRYPTION_KEY")
    prepare_sqlite_tracker_store(settings.tracker_store_url)
    services = [
        Service("actions", actions_command(settings), f"http://127.0.0.1:{settings.actions_port}/health"),
    ]
    if with_rasa:
        services.append(Service("rasa", rasa_server_command(settings), rasa_status_url(settings)))
    if with_gateway:
        services.append(Service("gateway", gateway_command(), f"http://127.0.0.1:{settings.gateway_port}/healthz"))
    return ServiceGroup(services)
