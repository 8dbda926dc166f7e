"""`python -m bot accounts ...`: seed the demo accounts, import a file, list accounts, sign a test identity
token, and deliver or show the email outbox."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy import select

from bot.accounts import models
from bot.accounts.identifiers import is_account_number, mask_email
from bot.accounts.importer import ImportRejected, demo_records, import_file, validate_records, write_accounts
from bot.accounts.outbox import deliver_pending
from bot.accounts.store import account_store
from bot.accounts.verification import IDENTITY_TOKEN_MAX_LIFETIME, sign_identity_token
from bot.clock import today
from bot.local_secrets import prepare_checkout
from bot.paths import REPO_ROOT, RESOURCES_DIR
from bot.settings import load_settings

DEMO_FILE = RESOURCES_DIR / "accounts" / "demo.yml"


class Progress:
    """'imported 1200/5000 (24%)' on one line, at most a few times a second; only for more than 100 rows."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.last = stream, 0.0

    def __call__(self, done: int, total: int) -> None:
        if total <= 100:
            return
        now = time.monotonic()
        if done == total or now - self.last > 0.2:
            self.last = now
            end = "\n" if done == total else ""
            self.stream.write(f"\rimported {done}/{total} ({done * 100 // total}%)" + end)
            self.stream.flush()


def seed_demo(store, on=None) -> int:
    return write_accounts(store, validate_records(demo_records(DEMO_FILE, on or today())), on or today())


def settings_store():
    """The account store of the configured database, with its encryption key."""
    settings = load_settings()
    return account_store(settings.database_url, settings.data_encryption_key)


def writing_store():
    """The store for commands that write activation codes: a checkout without a key gets one generated."""
    prepare_checkout(["DATA_ENCRYPTION_KEY"])
    return settings_store()


def cmd_seed_demo(args) -> int:
    store = writing_store()
    if args.if_empty and store.account_count() > 0:
        print(f"Account store already has {store.account_count()} account(s); demo data not loaded again.")
        return 0
    count = seed_demo(store)
    print(f"Loaded {count} demo accounts ({DEMO_FILE.relative_to(REPO_ROOT)}):")
    return cmd_list(args)


def cmd_import(args) -> int:
    store = writing_store()
    path = Path(args.file)
    if not path.is_file():
        print(f"No such file: {path}", file=sys.stderr)
        return 2
    try:
        count = import_file(store, path, today(), progress=Progress())
    except ImportRejected as rejected:
        print(f"{path}: nothing imported, {len(rejected.problems)} problem(s):", file=sys.stderr)
        for problem in rejected.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"Imported {count} account(s) from {path}.")
    return 0


def cmd_list(args) -> int:
    store = settings_store()
    with store.session() as session:
        accounts = session.scalars(select(models.Account).order_by(models.Account.account_number)).all()
        for account in accounts:
            plans = ", ".join(s.plan.title() for s in account.subscriptions if s.status == "active") or "-"
            print(f"  {account.account_number}  {account.status:<10} {account.customer.business_name:<32} "
                  f"{plans:<32} email {mask_email(account.customer.email)}")
    return 0


def cmd_token(args) -> int:
    secret = load_settings().identity_token_secret
    if not secret:
        print("IDENTITY_TOKEN_SECRET is not set: the assistant ignores identity tokens without it.", file=sys.stderr)
        return 2
    if not is_account_number(args.account_number):
        print("An account number has 10 digits.", file=sys.stderr)
        return 2
    if not 0 < args.minutes * 60 <= IDENTITY_TOKEN_MAX_LIFETIME:
        print(f"A token lives at most {IDENTITY_TOKEN_MAX_LIFETIME // 60} minutes.", file=sys.stderr)
        return 2
    issued_at = int(time.time())
    print(sign_identity_token(args.account_number, issued_at, issued_at + args.minutes * 60, secret))
    return 0


def cmd_outbox(args) -> int:
    settings = load_settings()
    store = settings_store()
    if args.send:
        print(f"Delivered {deliver_pending(store, settings.smtp_url, settings.smtp_from)} email(s).")
    with store.session() as session:
        emails = session.scalars(select(models.OutboxEmail).order_by(models.OutboxEmail.id.desc())
                                 .limit(args.last)).all()
        for email in reversed(emails):
            state = (f"sent {email.sent_at:%Y-%m-%d %H:%M}Z" if email.sent_at
                     else f"pending ({email.last_error or 'not tried'})")
            print(f"#{email.id} {email.created_at:%Y-%m-%d %H:%M}Z {email.kind:<18} to {mask_email(email.to_address)}: "
                  f"{state}")
    return 0


def add_parser(commands) -> None:
    accounts = commands.add_parser("accounts", help="the account store: demo data, imports, tokens, outbox")
    sub = accounts.add_subparsers(dest="accounts_command", required=True)
    seed = sub.add_parser("seed-demo", help="load the demo accounts of resources/accounts/demo.yml")
    seed.add_argument("--if-empty", action="store_true", help="only when the store has no accounts yet")
    seed.set_defaults(func=cmd_seed_demo)
    importing = sub.add_parser("import", help="import accounts from a .csv or .json file (all or nothing)")
    importing.add_argument("file")
    importing.set_defaults(func=cmd_import)
    sub.add_parser("list", help="list stored accounts").set_defaults(func=cmd_list)
    token = sub.add_parser("token", help="sign an identity token for the website (needs IDENTITY_TOKEN_SECRET)")
    token.add_argument("account_number")
    token.add_argument("--minutes", type=int, default=10, help="valid for this many minutes (default and most: 10)")
    token.set_defaults(func=cmd_token)
    outbox = sub.add_parser("outbox", help="show the latest emails; --send delivers pending ones")
    outbox.add_argument("--send", action="store_true")
    outbox.add_argument("--last", type=int, default=10)
    outbox.set_defaults(func=cmd_outbox)
