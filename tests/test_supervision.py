"""`python -m bot serve` keeps the assistant up: a child that dies is started again with backoff (bot/services.py),
its log and the supervisor's output say so, and the gateway's /healthz shows it."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from bot.services import RESTART_CAP_SECONDS, STABLE_AFTER_SECONDS, Service, ServiceGroup
from conftest import TEST_SECRETS, RestClient, free_port
from gateway_helpers import wait_for

# --- the restart rule, on fake processes ----------------------------------------------------------------------


class FakeProcess:
    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        return self.returncode


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def fake_group(monkeypatch, tmp_path):
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    group = ServiceGroup([Service("rasa", ["rasa"], "http://x"), Service("actions", ["actions"], "http://y")],
                         status_file=tmp_path / "run" / "services.json")
    launched = []

    def launch(service, mode="a"):
        launched.append(service.name)
        service.process = FakeProcess(100 + len(launched))
        service.started_at = time.monotonic()
        service.restart_at = None

    monkeypatch.setattr(group, "_launch", launch)
    for service in group.services:
        service.log_path = tmp_path / f"{service.name}.log"
        launch(service)
    launched.clear()
    return group, clock, launched


def status(group):
    return json.loads(group.status_file.read_text())


def test_a_dead_child_is_started_again_after_a_growing_backoff(fake_group):
    group, clock, launched = fake_group
    rasa = group.services[0]
    reported = []
    delays = []
    for attempt in range(1, 8):
        rasa.process.returncode = -9                  # killed again right after each start
        events = group.supervise(report=reported.append)
        assert events and "rasa exited with code -9" in events[0] and f"(restart {attempt})" in events[0]
        assert status(group)["rasa"] == {"state": "restarting", "restarts": attempt, "last_exit": -9, "pid": None}
        assert status(group)["actions"]["state"] == "running"     # the others are left alone
        delay = rasa.restart_at - clock.now
        delays.append(delay)
        clock.now += delay - 0.01
        assert group.supervise() == [] and launched == ["rasa"] * (attempt - 1)     # not before its time
        clock.now += 0.02
        assert "rasa started again" in group.supervise()[0]
        assert status(group)["rasa"]["state"] == "running"
    assert delays == [1, 2, 4, 8, 16, RESTART_CAP_SECONDS, RESTART_CAP_SECONDS]
    assert all(line.startswith("supervisor: rasa ") for line in reported)
    log = (rasa.log_path).read_text()
    assert log.count("--- supervisor: rasa exited with code -9") == 7 and "--- supervisor: rasa started again" in log


def test_a_child_that_ran_a_while_starts_again_from_the_shortest_backoff(fake_group):
    group, clock, _launched = fake_group
    rasa = group.services[0]
    for _ in range(3):
        rasa.process.returncode = 1
        group.supervise()
        clock.now = rasa.restart_at
        group.supervise()
    clock.now += STABLE_AFTER_SECONDS
    rasa.process.returncode = 1
    group.supervise()
    assert rasa.restart_at - clock.now == 1


def test_stop_ends_pending_restarts(fake_group):
    group, _clock, launched = fake_group
    group.services[0].process.returncode = -9
    group.supervise(report=lambda line: None)
    group.services[1].process.returncode = 0          # stop() signals only the live ones; these have exited
    group.stop()
    assert status(group)["rasa"]["state"] == "stopped" and launched == []


# --- the real thing: serve, the model, kill -9 ----------------------------------------------------------------


def healthz(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            return json.loads(response.read().decode())
    except (OSError, ValueError):
        return {}


def all_running(health: dict) -> bool:
    services = health.get("services") or {}
    return set(services) == {"actions", "rasa", "gateway"} and all(
        child["state"] == "running" for child in services.values()) and health.get("rasa") == "ok"


def test_serve_starts_a_killed_rasa_action_server_and_gateway_again(model_path, tmp_path):
    rasa_port, actions_port, gateway_port = free_port(), free_port(), free_port()
    ours = ("RASA_", "GATEWAY_", "ACTION", "REDIS_", "SERVICES_", "DATABASE_", "TRACKER_")
    inherited = {name: value for name, value in os.environ.items() if not name.startswith(ours)}
    env = {
        **inherited, **TEST_SECRETS,
        "SECRETS_FILE": str(tmp_path / "no-secrets.env"),
        "RASA_PORT": str(rasa_port), "ACTIONS_PORT": str(actions_port), "GATEWAY_PORT": str(gateway_port),
        "RASA_URL": f"http://127.0.0.1:{rasa_port}",
        "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{actions_port}/webhook",
        "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'tracker.db'}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'assistant.db'}",
        "SERVICES_STATUS_FILE": str(tmp_path / "services.json"), "SERVICES_LOG_DIR": str(tmp_path / "logs"),
        "RASA_MODEL": model_path, "SMTP_URL": "", "GATEWAY_HOST": "127.0.0.1",
    }
    out = open(tmp_path / "serve.out", "w")
    serve = subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        wait_for(lambda: all_running(healthz(gateway_port)), timeout=240, interval=0.5)
        for name in ("actions", "gateway", "rasa"):
            pid = healthz(gateway_port)["services"][name]["pid"]
            os.kill(pid, signal.SIGKILL)
            health = wait_for(lambda n=name: (lambda h: h if all_running(h) and h["services"][n]["restarts"] == 1
                                              else None)(healthz(gateway_port)), timeout=240, interval=0.5)
            assert health["services"][name]["last_exit"] == -9 and health["services"][name]["pid"] != pid
        assert serve.poll() is None                               # serve itself never stopped
        reply = RestClient(f"http://127.0.0.1:{rasa_port}").text("after-restarts", "how much is the starter plan?")
        assert "RM" in reply
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
        out.close()
    output = (tmp_path / "serve.out").read_text()
    for name in ("actions", "gateway", "rasa"):
        assert f"supervisor: {name} exited with code -9" in output and f"supervisor: {name} started again" in output
        assert f"--- supervisor: {name} exited with code -9" in (tmp_path / "logs" / f"{name}.log").read_text()
    assert serve.returncode == 0 and "Stopped." in output


@pytest.mark.integration
def test_a_port_someone_else_answers_on_is_refused_before_anything_starts(tmp_path):
    """A server left from an earlier run answers /status: starting our own would fail to bind while the wait for
    readiness took the stranger for it (how a killed test run's Rasa once answered the next run's tests)."""
    import http.server
    import threading

    class Status(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    stranger = http.server.HTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=stranger.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{stranger.server_address[1]}/status"
        group = ServiceGroup([Service("rasa", ["/bin/false"], url)])
        with pytest.raises(RuntimeError, match="something already answers"):
            group.start({}, log_dir=tmp_path)
        assert group.services[0].process is None                  # nothing was started
    finally:
        stranger.shutdown()
