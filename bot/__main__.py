"""Command line: python -m bot {train,serve,shell,eval,bench,accounts}."""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time

from bot.paths import REPO_ROOT, VAR_DIR
from bot.services import (
    assistant_services, child_environment, rasa_command, train_command,
)
from bot.settings import load_settings


def cmd_train(args: argparse.Namespace) -> int:
    settings = load_settings()
    started = time.monotonic()
    code = subprocess.call(train_command(), cwd=REPO_ROOT, env=child_environment(settings))
    if code == 0:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        seconds = round(time.monotonic() - started, 1)
        (VAR_DIR / "train_time.json").write_text(json.dumps({"seconds": seconds}))
        print(f"Trained {settings.model_path} in {seconds} s")
    return code


class OutboxRetry:
    """While serving, retry emails the action server could not send (mail server down) every RETRY_SECONDS."""

    RETRY_SECONDS = 30

    def __init__(self, settings):
        self.settings, self.next_at = settings, time.monotonic() + self.RETRY_SECONDS

    def tick(self) -> None:
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.RETRY_SECONDS
        from bot.accounts.outbox import deliver_pending
        from bot.accounts.store import account_store

        try:
            deliver_pending(account_store(self.settings.database_url), self.settings.smtp_url, self.settings.smtp_from)
        except Exception as error:  # noqa: BLE001 - the store may be briefly unavailable; try again later
            print(f"outbox retry failed: {error}", file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    group = assistant_services(settings, with_gateway=True)
    started = time.monotonic()
    stop_requested = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(True))
    try:
        group.start(child_environment(settings))
        print("Starting the action server, Rasa and the gateway (logs in var/logs/) ...", flush=True)
        group.wait_ready()
        print(
            f"\nKSOS assistant ready in {time.monotonic() - started:.1f}s.\n"
            f"  Website chat (widget): http://localhost:{settings.gateway_port}/\n"
            f"  Messenger / X webhooks: http://localhost:{settings.gateway_port}/webhooks/facebook, /webhooks/twitter "
            "(see README to connect a page or account)\n"
            f"  Agent console:          http://localhost:{settings.gateway_port}/agent  (first create an agent: "
            "make agent NAME=aisyah)\n"
            f"  Talk to it over REST:  curl -s -XPOST http://localhost:{settings.rasa_port}/webhooks/rest/webhook "
            "-H 'Content-Type: application/json' -d '{\"sender\":\"me\",\"message\":\"berapa harga pelan starter?\"}'\n"
            f"  HTTP API:              http://localhost:{settings.rasa_port}/model/parse (POST {{\"text\": ...}})\n"
            f"  Action server:         http://localhost:{settings.actions_port}/health\n"
            "  In a terminal:         make shell\n"
            "  Demo accounts:         python -m bot accounts list  (say \"verify me\", give 1000000001 ... 1000000005;\n"
            + ("                         one-time codes go by SMTP_URL)\n" if settings.smtp_url else
               "                         one-time codes are written to var/logs/outbox.log)\n")
            +
            "Press Ctrl-C to stop everything.",
            flush=True,
        )
        retry_emails = OutboxRetry(settings)
        while not stop_requested:
            exited = group.first_exited()
            if exited:
                print(f"{exited.name} stopped unexpectedly:\n{exited.log_tail()}", file=sys.stderr)
                return 1
            retry_emails.tick()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as error:
        print(f"Could not start the assistant: {error}", file=sys.stderr)
        return 1
    finally:
        group.stop()
        print("Stopped.", flush=True)
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    settings = load_settings()
    group = assistant_services(settings, with_rasa=False)
    env = child_environment(settings)
    try:
        group.start(env)
        group.wait_ready()
        return subprocess.call(
            rasa_command("shell", "--model", settings.model_path, "--endpoints", "endpoints.yml"),
            cwd=REPO_ROOT, env=env,
        )
    finally:
        group.stop()


def cmd_eval(args: argparse.Namespace) -> int:
    from bot import evaluation

    return evaluation.main(args)


def without_ml_frameworks() -> None:
    """For processes that run no model (the gateway, the agents command): spaCy's thinc imports TensorFlow, PyTorch
    and JAX just to see whether they are installed (about 450 MB and a few seconds here); mark them unavailable.
    Only in these processes' own entry points: Rasa and the tests need TensorFlow."""
    for name in ("tensorflow", "torch", "jax"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def cmd_gateway(args: argparse.Namespace) -> int:
    without_ml_frameworks()
    from bot.gateway.app import main as gateway_main

    return gateway_main(args.gateway_args)


def cmd_bench(args: argparse.Namespace) -> int:
    from bot import bench

    return bench.main(args.bench_args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="KSOS support assistant")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("train", help="train the model into models/ksos.tar.gz").set_defaults(func=cmd_train)
    commands.add_parser("serve", help="run the action server and Rasa (REST + HTTP API)").set_defaults(func=cmd_serve)
    commands.add_parser("shell", help="talk to the assistant in this terminal").set_defaults(func=cmd_shell)
    evaluate = commands.add_parser("eval", help="held-out NLU accuracy per language")
    evaluate.add_argument("--baseline", action="store_true", help="also train and evaluate Rasa's default pipeline")
    evaluate.add_argument("--min-accuracy", type=float, default=None, help="exit 1 if a language scores below")
    evaluate.add_argument("--model", default=None, help="evaluate this model instead of training a fresh one")
    evaluate.set_defaults(func=cmd_eval)
    gateway = commands.add_parser("gateway", help="the channel gateway: widget, Messenger, X DMs (port 8080)")
    gateway.add_argument("gateway_args", nargs=argparse.REMAINDER)
    gateway.set_defaults(func=cmd_gateway)
    bench = commands.add_parser("bench", help="latency/throughput vs a stock `rasa init` bot")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    from bot.accounts.cli import add_parser as add_accounts_parser

    add_accounts_parser(commands)
    from bot.gateway.agents import add_parser as add_agents_parser

    add_agents_parser(commands)
    from bot.report import add_parser as add_report_parser

    add_report_parser(commands)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["agents"]:
        without_ml_frameworks()
    if argv[:1] == ["bench"]:       # its options belong to bot.bench's own parser
        return cmd_bench(argparse.Namespace(bench_args=argv[1:]))
    if argv[:1] == ["gateway"]:     # likewise bot.gateway.app's
        return cmd_gateway(argparse.Namespace(gateway_args=argv[1:]))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
