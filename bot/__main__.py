"""Command line: python -m bot {train,serve,shell,eval,db,accounts,agents,report,review,audit} and the commands
with their own options: {gateway,x,actions,rasa-server,rasa,bench,purge}."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Tuple

from bot.database import OutdatedSchema
from bot.local_secrets import prepare_checkout
from bot.paths import REPO_ROOT, VAR_DIR
from bot.services import assistant_services, child_environment, log_dir, status_file, train_command
from bot.settings import InvalidSettings, MissingSecret, load_settings


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
    without_ml_frameworks()         # this process only watches the others (and purges old data)
    from bot.privacy.retention import DailyPurge

    prepare_checkout()
    settings = load_settings()
    from bot.database import make_engine
    from bot.schema import upgrade

    engine = make_engine(settings.database_url)      # migrate once, before the processes that share the database
    upgrade(engine)
    engine.dispose()
    group = assistant_services(settings, with_gateway=True)
    group.status_file = status_file()
    started = time.monotonic()
    stop_requested = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(True))
    try:
        group.start({**child_environment(settings), "SERVICES_STATUS_FILE": str(group.status_file)}, log_dir())
        print(f"Starting the action server, Rasa and the gateway (logs in {log_dir()}) ...", flush=True)
        group.wait_ready()
        print(
            f"\nKSOS assistant ready in {time.monotonic() - started:.1f}s.\n"
            f"  Website chat (widget): http://localhost:{settings.gateway_port}/\n"
            f"  Messenger / X webhooks: http://localhost:{settings.gateway_port}/webhooks/facebook, /webhooks/x "
            "(see README to connect a page or account)\n"
            f"  Agent console:          http://localhost:{settings.gateway_port}/agent  (first create an agent: "
            "make agent NAME=aisyah DISPLAY=Aisyah)\n"
            "  In a terminal:         make shell\n"
            f"  Internal, loopback only, token in {settings.secrets_file}: Rasa HTTP API "
            f"http://127.0.0.1:{settings.rasa_port} (?token=$RASA_API_TOKEN), action server "
            f"http://127.0.0.1:{settings.actions_port}\n"
            "  Demo accounts:         python -m bot accounts list  "
            "(say \"verify me\", give 1000000001 ... 1000000005;\n"
            + ("                         one-time codes go by SMTP_URL)\n" if settings.smtp_url else
               "                         one-time codes are written to var/logs/outbox.log)\n")
            +
            "A process that stops is started again (var/run/services.json, /healthz). Press Ctrl-C to stop "
            "everything.",
            flush=True,
        )
        retry_emails = OutboxRetry(settings)
        daily_purge = DailyPurge(settings, report=lambda line: print(line, flush=True))
        while not stop_requested:
            group.supervise(report=lambda line: print(line, file=sys.stderr, flush=True))
            retry_emails.tick()
            daily_purge.tick()
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


def cmd_cluster(args: argparse.Namespace) -> int:
    without_ml_frameworks()         # this process only watches the others
    from bot.cluster import run

    prepare_checkout()
    return run(report=lambda line: print(line, flush=True))


def cmd_shell(args: argparse.Namespace) -> int:
    from bot.cli.shell import talk

    prepare_checkout()
    settings = load_settings()
    group = assistant_services(settings)
    try:
        group.start(child_environment(settings), log_dir())
        print(f"Starting the action server and Rasa (logs in {log_dir()}) ...", flush=True)
        group.wait_ready()
        return talk(settings)
    finally:
        group.stop()


def cmd_db(args: argparse.Namespace) -> int:
    """`db upgrade`: migrate DATABASE_URL to the newest revision; `db current`: the revision it is at."""
    from bot.database import make_engine
    from bot.schema import current_revision, head_revision, upgrade

    engine = make_engine(load_settings().database_url)
    try:
        if args.action == "upgrade":
            done = upgrade(engine)
            where = engine.url.render_as_string(hide_password=True)
            if done.before == done.reached:
                print(f"{where}: at {done.reached}, the newest revision")
            else:
                print(f"{where}: {'new database' if done.fresh else done.before or 'made before migrations'} → "
                      f"{done.reached}")
            return 0
        with engine.connect() as connection:
            current = current_revision(connection)
        head = head_revision()
        print(f"{current or '(none)'}{' (newest)' if current == head else f'; newest is {head}'}")
        return 0 if current == head else 1
    finally:
        engine.dispose()


def cmd_eval(args: argparse.Namespace) -> int:
    from tools import evaluation

    return evaluation.main(args)


def without_ml_frameworks() -> None:
    """For processes that run no model (the gateway, the agents command): spaCy's thinc imports TensorFlow, PyTorch
    and JAX just to see whether they are installed (about 450 MB and a few seconds here); mark them unavailable.
    Only in these processes' own entry points: Rasa and the tests need TensorFlow."""
    for name in ("tensorflow", "torch", "jax"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def cmd_gateway(argv: List[str]) -> int:
    without_ml_frameworks()
    from bot.gateway.app import main as gateway_main

    return gateway_main(argv)


def cmd_x(argv: List[str]) -> int:
    without_ml_frameworks()
    from bot.gateway.x_setup import main as x_main

    prepare_checkout(["DATA_ENCRYPTION_KEY"])        # the stored X token is encrypted with the gateway's key

    return x_main(argv)


def cmd_bench(argv: List[str]) -> int:
    from tools import bench

    prepare_checkout()
    return bench.main(argv)


def cmd_bench_cluster(argv: List[str]) -> int:
    from tools import bench_cluster

    prepare_checkout()
    return bench_cluster.main(argv)


def cmd_purge(argv: List[str]) -> int:
    without_ml_frameworks()
    from bot.privacy.retention import main as purge_main

    return purge_main(argv)


def cmd_actions(argv: List[str]) -> int:
    from bot.rasa_runtime.action_server import main as actions_main

    return actions_main(argv)


def cmd_rasa_server(argv: List[str]) -> int:
    from bot.rasa_runtime.launcher import server_main

    return server_main(argv)


def cmd_rasa(argv: List[str]) -> int:
    from bot.rasa_runtime.launcher import cli_main

    return cli_main(argv)


# Commands whose options belong to their own parser: they get the rest of the command line as it is.
PASS_THROUGH: Dict[str, Tuple[Callable[[List[str]], int], str]] = {
    "gateway": (cmd_gateway, "the channel gateway: widget, Messenger, X DMs (port 8080)"),
    "x": (cmd_x, "connect the X account: authorize, setup --url, status (X Activity API, v2 DMs)"),
    "actions": (cmd_actions, "the private action server (127.0.0.1:5055, token required)"),
    "rasa-server": (cmd_rasa_server, "Rasa with its API behind RASA_API_TOKEN (127.0.0.1:5005)"),
    "rasa": (cmd_rasa, "Rasa's own command line, with its crash reports kept here"),
    "bench": (cmd_bench, "latency/throughput vs a stock `rasa init` bot"),
    "bench-cluster": (cmd_bench_cluster, "1 vs 2 replicas of each behind HAProxy vs a stock Rasa server"),
    "purge": (cmd_purge, "delete conversations, transcripts and emails older than RETENTION_DAYS (90)"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="KSOS support assistant")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("train", help="train the model into models/ksos.tar.gz").set_defaults(func=cmd_train)
    commands.add_parser("serve", help="run the action server, Rasa and the gateway").set_defaults(func=cmd_serve)
    commands.add_parser("cluster", help="two of everything behind HAProxy, on PostgreSQL and Redis "
                        "(make cluster)").set_defaults(func=cmd_cluster)
    commands.add_parser("shell", help="talk to the assistant in this terminal").set_defaults(func=cmd_shell)
    evaluate = commands.add_parser("eval", help="NLU accuracy per language: development set, frozen test set, "
                                                "cross-validation")
    evaluate.add_argument("--baseline", action="store_true", help="also train and evaluate Rasa's default pipeline")
    evaluate.add_argument("--folds", type=int, default=0,
                          help="also cross-validate our pipeline on the training data with this many folds")
    evaluate.add_argument("--min-accuracy", type=float, default=None,
                          help="exit 1 if a language of the frozen set scores below (a fallback counts as a miss)")
    evaluate.add_argument("--model", default=None, help="evaluate this model instead of $RASA_MODEL "
                          "(models/ksos.tar.gz) as it is; make eval trains that first when its inputs changed")
    evaluate.add_argument("--baseline-model", default=None,
                          help="with --baseline: Rasa's default pipeline already trained on the same data (its "
                               "training takes about 30 minutes here), e.g. var/eval/default-pipeline.tar.gz")
    evaluate.set_defaults(func=cmd_eval)
    database = commands.add_parser("db", help="the database schema (Alembic migrations)")
    database.add_argument("action", choices=["upgrade", "current"],
                          help="upgrade: migrate DATABASE_URL to the newest revision; current: the revision it is at")
    database.set_defaults(func=cmd_db)
    from bot.accounts.cli import add_parser as add_accounts_parser

    add_accounts_parser(commands)
    from bot.gateway.agents import add_parser as add_agents_parser

    add_agents_parser(commands)
    from bot.analytics.report import add_parser as add_report_parser

    add_report_parser(commands)
    from bot.gateway.review_export import add_parser as add_review_parser

    add_review_parser(commands)
    from bot.cli.dependency_audit import add_parser as add_audit_parser

    add_audit_parser(commands)
    for name, (_command, help_text) in PASS_THROUGH.items():   # listed in --help; dispatched below
        commands.add_parser(name, help=help_text, add_help=False)
    argv = sys.argv[1:] if argv is None else list(argv)
    os.umask(0o077)                 # whatever a command creates (databases, logs, models) is private
    if argv[:1] in (["agents"], ["review"]):
        without_ml_frameworks()
    try:
        if argv[:1] and argv[0] in PASS_THROUGH:
            return PASS_THROUGH[argv[0]][0](argv[1:])
        args = parser.parse_args(argv)
        return args.func(args)
    except (MissingSecret, OutdatedSchema, InvalidSettings) as error:
        print(f"Cannot start: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
