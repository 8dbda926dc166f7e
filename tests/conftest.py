"""Shared fixtures. Tests marked `model` run against the trained model with real Rasa and action servers,
started on their own ports (RASA_TEST_PORT / ACTIONS_TEST_PORT) so they don't clash with `make run`."""
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from bot.paths import REPO_ROOT
from bot.rasa_runtime.api import CHANNEL_PATH, api_url, channel_headers
from bot.services import assistant_services, child_environment, gateway_command
from bot.settings import load_settings


def api_path(path: str, token: str) -> str:
    """`path` with Rasa's API token in its query."""
    return api_url("", path, token)


# Test tiers (pytest.ini): unit (no process, no socket, no PostgreSQL: `make test-unit`), integration (real
# servers on loopback: PostgreSQL, gateways, local fakes, subprocesses), model (the trained model, Rasa and the
# action server), browser (Chromium). A unit test that starts a process or opens a socket fails and says so.
PROCESS_FIXTURES = {"background_loop", "gateway_url", "agent_gateway", "smtp_server"}


def pytest_collection_modifyitems(items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "browser" in fixtures:
            item.add_marker(pytest.mark.browser)
        if fixtures & {"assistant", "model_path"}:
            item.add_marker(pytest.mark.model)
        callspec = getattr(item, "callspec", None)
        postgres = callspec is not None and "postgresql" in callspec.params.values()
        if postgres or fixtures & PROCESS_FIXTURES:
            item.add_marker(pytest.mark.integration)
        if not any(item.get_closest_marker(tier) for tier in ("model", "browser", "integration")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def unit_tests_start_no_process_and_open_no_socket(request, monkeypatch):
    if request.node.get_closest_marker("unit") is None:
        return

    def refused(*args, **kwargs):
        raise RuntimeError(f"{request.node.nodeid} is a unit test: it may start no process and open no socket "
                           "(mark it integration)")

    monkeypatch.setattr(subprocess.Popen, "__init__", refused)
    monkeypatch.setattr(socket.socket, "connect", refused)
    monkeypatch.setattr(socket.socket, "bind", refused)


IDENTITY_TOKEN_SECRET = "conversation-test-secret"
# The tests' own secrets (never the checkout's var/secrets.env, which the SECRETS_FILE below keeps out of reach).
RASA_API_TOKEN = "test-rasa-api-token"
ACTION_SERVER_TOKEN = "test-action-server-token"
DATA_ENCRYPTION_KEY = "dGVzdC1kYXRhLWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU="   # base64 of 32 bytes, tests only
TEST_SECRETS = {"RASA_API_TOKEN": RASA_API_TOKEN, "ACTION_SERVER_TOKEN": ACTION_SERVER_TOKEN,
                "DATA_ENCRYPTION_KEY": DATA_ENCRYPTION_KEY}


@pytest.fixture(scope="session")
def test_settings(tmp_path_factory):
    var = tmp_path_factory.mktemp("var")
    return load_settings(
        {
            **os.environ,
            **TEST_SECRETS,
            "SECRETS_FILE": str(var / "no-secrets.env"),
            "RASA_PORT": os.environ.get("RASA_TEST_PORT", "5105"),
            "ACTIONS_PORT": os.environ.get("ACTIONS_TEST_PORT", "5155"),
            "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{os.environ.get('ACTIONS_TEST_PORT', '5155')}/webhook",
            "TRACKER_STORE_URL": f"sqlite:///{var / 'tracker.db'}",
            "DATABASE_URL": f"sqlite:///{var / 'accounts.db'}",
            "IDENTITY_TOKEN_SECRET": IDENTITY_TOKEN_SECRET,
            "SMTP_URL": "",
        }
    )


@pytest.fixture(scope="session")
def model_path(test_settings) -> str:
    if not Path(test_settings.model_path).exists():
        pytest.fail(f"no trained model at {test_settings.model_path}: run `make train` (make test does)")
    return test_settings.model_path


class RestClient:
    """Talks to Rasa like the gateway does: the private gateway channel and the HTTP API, with the token."""

    def __init__(self, base_url: str, token: str = RASA_API_TOKEN):
        self.base_url, self.token = base_url, token

    def post(self, path: str, payload: Dict, headers: Optional[Dict] = None) -> object:
        request = urllib.request.Request(
            self.base_url + path, data=json.dumps(payload).encode(), method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read().decode())

    def send(self, sender: str, message: str, metadata: Optional[Dict] = None,
             channel: Optional[str] = None) -> List[Dict]:
        body = {"sender": sender, "message": message, "metadata": metadata or {}}
        if channel:
            body["input_channel"] = channel
        return self.post(CHANNEL_PATH, body, channel_headers(self.token))

    def text(self, sender: str, message: str, channel: Optional[str] = None) -> str:
        """All bot texts of one turn (each response arrives whole), one paragraph apart."""
        return "\n\n".join(m.get("text", "") for m in self.send(sender, message, channel=channel))

    def parse(self, text: str) -> Dict:
        return self.post(api_path("/model/parse", self.token), {"text": text})

    def tracker(self, sender: str) -> Dict:
        url = self.base_url + api_path(f"/conversations/{sender}/tracker", self.token)
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read().decode())


@pytest.fixture(scope="session")
def assistant(test_settings, model_path, tmp_path_factory):
    from bot.accounts.cli import seed_demo
    from bot.accounts.store import AccountStore

    seed_demo(AccountStore(test_settings.database_url, DATA_ENCRYPTION_KEY))    # the demo accounts, as of today
    group = assistant_services(test_settings)
    group.start(child_environment(test_settings), log_dir=tmp_path_factory.mktemp("logs"))
    try:
        group.wait_ready(timeout=240)
        yield RestClient(f"http://127.0.0.1:{test_settings.rasa_port}")
    finally:
        group.stop()


# --- Account store on both databases --------------------------------------------------------------------------

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def postgres_schema():
    """The URL of a fresh schema in the real local PostgreSQL, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"ksos_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, future=True)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def account_store_url(request, tmp_path):
    """An empty account database: a SQLite file, or a fresh schema in the real local PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'accounts.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def store(account_store_url):
    from bot.accounts.store import AccountStore

    account_store = AccountStore(account_store_url, DATA_ENCRYPTION_KEY)
    account_store.create_schema()
    yield account_store
    account_store.engine.dispose()


@pytest.fixture
def demo_store(store):
    """The demo accounts seeded as of 22 November 2026."""
    from datetime import date

    from bot.accounts.cli import seed_demo

    seed_demo(store, date(2026, 11, 22))
    return store


# --- The gateway as a real process --------------------------------------------------------------------------


FACEBOOK_APP_SECRET = "test-facebook-app-secret"
FACEBOOK_VERIFY_TOKEN = "test-verify-token"
TWITTER_CONSUMER_SECRET = "test-twitter-consumer-secret"
TWITTER_BOT_USER_ID = "4242"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.asynccontextmanager
async def local_server(app):
    """An aiohttp application served on a free loopback port for the length of the block; yields its base URL."""
    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class BackgroundLoop:
    """An asyncio loop in a thread, for the aiohttp test servers (fake Graph/X APIs, the Rasa switch) that the
    gateway process talks to while the test itself runs synchronously."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="session")
def background_loop():
    loop = BackgroundLoop()
    yield loop
    loop.close()


class GatewayProcess:
    """`python -m bot gateway` (in the gateway's own environment, as `make run` starts it) with its own database
    and log file."""

    def __init__(self, env: Dict[str, str], log_path: Path, port: int):
        self.env, self.log_path, self.port = env, log_path, port
        self.url = f"http://127.0.0.1:{port}"
        self.process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 60) -> "GatewayProcess":
        log = open(self.log_path, "a")
        self.process = subprocess.Popen([*gateway_command(), "--port", str(self.port), "--host", "127.0.0.1"],
                                        cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"gateway not ready:\n{self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def gateway_environment(test_settings, database_url: str, rasa_url: str, **overrides: str) -> Dict[str, str]:
    env = child_environment(test_settings)
    for name in list(env):
        if name.startswith(("FACEBOOK_", "TWITTER_", "WIDGET_", "GATEWAY_")):
            del env[name]
    # The console's cookie is Secure by default, which urllib's cookie jar keeps off plain http; the tests run the
    # console on http://127.0.0.1 (test_console_security checks the default).
    env.update({"DATABASE_URL": database_url, "RASA_URL": rasa_url, "GATEWAY_RETRY_MAX_SECONDS": "1",
                "CONSOLE_INSECURE_COOKIE": "1"})
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def gateway_url(assistant, test_settings, tmp_path_factory):
    """A gateway on the real assistant (widget only: no Messenger/X secrets), for the browser tests."""
    folder = tmp_path_factory.mktemp("gateway-widget")
    env = gateway_environment(test_settings, f"sqlite:///{folder / 'gateway.db'}", assistant.base_url)
    gateway = GatewayProcess(env, folder / "gateway.log", free_port()).start()
    yield gateway.url
    gateway.stop()


class ConsoleClient:
    """An agent using the console's JSON API (cookie session + CSRF token), as the console page does."""

    def __init__(self, base_url: str):
        import http.cookiejar

        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.csrf: Optional[str] = None

    def call(self, method: str, path: str, body: Optional[Dict] = None, csrf: bool = True):
        """(status, JSON body) of one API call."""
        import urllib.error

        headers = {"Content-Type": "application/json"}
        if csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, json.loads(response.read().decode() or "{}")
        except urllib.error.HTTPError as failure:
            return failure.code, json.loads(failure.read().decode() or "{}")

    def login(self, name: str, password: str) -> "ConsoleClient":
        status, body = self.call("POST", "/api/agent/login", {"name": name, "password": password}, csrf=False)
        assert status == 200, body
        self.csrf = body["csrf_token"]
        return self


def add_agent(env: Dict[str, str], name: str, password: str, display_name: str = "") -> None:
    """`python -m bot agents add NAME [--display-name X] --password-stdin` against the database in `env`."""
    command = [sys.executable, "-m", "bot", "agents", "add", name, "--password-stdin"]
    if display_name:
        command += ["--display-name", display_name]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, input=password + "\n", capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


class AgentGateway:
    """A gateway on the real assistant (widget enabled) whose console agents tests can create."""

    def __init__(self, process: GatewayProcess):
        self.process, self.url = process, process.url

    def add_agent(self, name: str, password: str, display_name: str = "") -> None:
        add_agent(self.process.env, name, password, display_name)

    def console(self, name: str, password: str) -> ConsoleClient:
        return ConsoleClient(self.url).login(name, password)


@pytest.fixture(scope="session")
def agent_gateway(assistant, test_settings, tmp_path_factory):
    # The action server's database: the console shows the account a conversation was verified for there. (The
    # only gateway process on that database, as in production.)
    folder = tmp_path_factory.mktemp("gateway-agents")
    env = gateway_environment(test_settings, test_settings.database_url, assistant.base_url)
    gateway = GatewayProcess(env, folder / "gateway.log", free_port()).start()
    yield AgentGateway(gateway)
    gateway.stop()


# --- browser tests (headless Chromium from Debian's `chromium` package, driven by Playwright) -------------------

CHROMIUM = "/usr/bin/chromium"


def skip_without_chromium(what: str) -> None:
    """Called first by a browser test module: without Chromium it is skipped, except in CI, where it fails."""
    if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
        pytest.skip(f"no {CHROMIUM}: `apt-get install chromium` to run the {what} browser tests",
                    allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()
