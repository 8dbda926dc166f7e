"""Console agents: password hashing (scrypt, a slow memory-hard KDF), login throttling and the `python -m bot
agents` command line (add, list, password, display-name, disable)."""
from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import re
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Dict, Optional

from bot.backoff import exponential_delay
from bot.gateway.ratelimit import SlidingWindow, Window

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1          # about 32 MB and 0.1 s per hash on this machine class
SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD_CHARS = 10
AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,39}$")
# What customers see, e.g. "Aisyah" or "Aisyah R.": letters (any script), spaces and . ' - only, no digits.
DISPLAY_NAME = re.compile(r"^[^\W\d_](?:[^\W\d_]|[ .'-]){0,39}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """'scrypt$N$r$p$salt$hash' for storing; the parameters travel with the hash so they can be raised later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: Optional[str]) -> bool:
    """True if `password` matches the stored hash. Without a stored hash (unknown agent) a hash is still
    computed, so a wrong name takes as long as a wrong password."""
    try:
        scheme, n, r, p, salt, digest = (stored or "").split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        n_, r_, p_ = int(n), int(r), int(p)
        expected, salt_bytes = _unb64(digest), _unb64(salt)
    except ValueError:
        hash_password(password)
        return False
    actual = hashlib.scrypt(password.encode(), salt=salt_bytes, n=n_, r=r_, p=p_, maxmem=SCRYPT_MAXMEM,
                            dklen=len(expected))
    return hmac.compare_digest(actual, expected)


def password_problem(password: str) -> Optional[str]:
    if len(password) < MIN_PASSWORD_CHARS:
        return f"the password needs at least {MIN_PASSWORD_CHARS} characters"
    if password.strip() != password:
        return "the password must not start or end with a space"
    return None


@dataclass(frozen=True)
class Backoff:
    """After `free` failures in the window, each further attempt waits base * 2^(failures - free) seconds after
    the last failure, at most `cap`."""
    free: int
    cap: float
    base: float = 1.0

    def delay(self, failures: int) -> float:
        return 0.0 if failures < self.free else exponential_delay(failures - self.free, self.base, self.cap)


LOGIN_WINDOW_SECONDS = 900.0
PAIR_BACKOFF = Backoff(3, 300.0)        # one address guessing one name
ADDRESS_BACKOFF = Backoff(10, 300.0)    # one address trying many names
NAME_BACKOFF = Backoff(10, 30.0)        # many addresses at one name: capped low, for the agent themself


class LoginThrottle:
    """Growing delays for failed logins, never a lock-out: a hard lock after N failures would let anyone who knows
    an agent's login lock them out. Failures are counted over `window` seconds per (name, address) — one guesser
    at one name: 3 free, then 1, 2, 4 ... up to 5 min —, per address (one address trying many names) and per name
    (many addresses at one name), the last capped at 30 s so that the agent themself, from their own address,
    never waits longer than that. A success clears the name's counts."""

    def __init__(self, pair: Backoff = PAIR_BACKOFF, per_address: Backoff = ADDRESS_BACKOFF,
                 per_name: Backoff = NAME_BACKOFF, window: float = LOGIN_WINDOW_SECONDS,
                 failures: Optional[Window] = None):
        self.rules = {"pair": pair, "ip": per_address, "name": per_name}
        self.window = window
        self._failures: Window = failures or SlidingWindow(window)

    @property
    def shared(self) -> bool:
        """Counted in the database with the other replicas (the calls block: run them in the thread pool)."""
        return self._failures.blocking

    @staticmethod
    def _keys(name: str, address: str) -> Dict[str, str]:
        """The counters an attempt counts in. Without a known client address only the name's (capped at 30 s), so
        that nobody can slow down every agent behind one unknown address."""
        name = name.lower()
        keys = {"name": f"name:{name}"}
        if address:
            keys.update(pair=f"pair:{name}:{address}", ip=f"ip:{address}")
        return keys

    def wait(self, name: str, address: str, now: Optional[float] = None) -> float:
        """Seconds before a login as `name` from `address` may be tried (0: now)."""
        now = time.time() if now is None else now
        waits = [0.0]
        for kind, key in self._keys(name, address).items():
            failures = self._failures.recent(key, now)
            if failures:
                waits.append(failures[-1] + self.rules[kind].delay(len(failures)) - now)
        return max(waits)

    def failed(self, name: str, address: str, now: Optional[float] = None) -> float:
        """Count an attempt as failed. The console counts every attempt so before it checks the password (which
        takes 0.1 s): guesses sent all at once are counted as they arrive, not let through together. Returns the
        attempt's time, for succeeded()."""
        now = time.time() if now is None else now
        for key in self._keys(name, address).values():
            self._failures.add(key, now)
        return now

    def succeeded(self, name: str, address: str, attempt: Optional[float] = None) -> None:
        """The password was right: the name's failures are forgiven, and the address's for this attempt."""
        keys = self._keys(name, address)
        for kind in ("pair", "name"):
            self._failures.clear(keys.get(kind, ""))
        if attempt is not None and "ip" in keys:
            self._failures.remove(keys["ip"], attempt)


# --- python -m bot agents ------------------------------------------------------------------------------------

def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != first:
        raise SystemExit("the passwords differ; nothing changed")
    return first


def cmd_agents(args: argparse.Namespace) -> int:
    from bot.gateway.agent_audit import AgentAuditLog
    from bot.gateway.agent_directory import AgentDirectory
    from bot.gateway.store import GatewayStore
    from bot.settings import load_settings

    gateway_store = GatewayStore(load_settings().database_url)
    store = AgentDirectory(gateway_store)
    try:
        if args.agents_command == "audit":
            entries = AgentAuditLog(gateway_store).entries(args.conversation, args.last)
            for entry in reversed(entries):
                times = (entry["at"] if entry["count"] == 1
                         else f"{entry['at']} .. {entry['last_at']} ({entry['count']}x)")
                print(f"{times}  {entry['agent'] or '?':<20} {entry['action']:<8} {entry['conversation_id']}")
            if not entries:
                print("no console access recorded" + (f" for {args.conversation}" if args.conversation else ""))
            return 0
        if args.agents_command == "list":
            agents = store.list_agents()
            for agent in agents:
                print(f"{agent['name']:<40} {agent['display_name'] or '(a Unifi agent)':<28} "
                      f"{'disabled' if agent['disabled'] else 'active':<9} {agent['created_at']}")
            if not agents:
                print("no agents yet: python -m bot agents add NAME")
            return 0
        if args.agents_command == "disable":
            if not store.disable_agent(args.name):
                print(f"no agent called {args.name!r}", file=sys.stderr)
                return 1
            print(f"agent {args.name} disabled; their console sessions have ended")
            return 0
        display_name = (getattr(args, "display_name", None) or "").strip()
        if display_name and not DISPLAY_NAME.match(display_name):
            print("a display name is 1-40 letters, spaces and . ' - (no digits)", file=sys.stderr)
            return 2
        if args.agents_command == "display-name":
            if not store.set_display_name(args.name, display_name):
                print(f"no agent called {args.name!r}", file=sys.stderr)
                return 1
            print(f"customers now see {display_name or 'a Unifi agent'!r} when {args.name} joins a chat")
            return 0
        if not AGENT_NAME.match(args.name):
            print("an agent name is 2-40 letters, digits, dots, dashes or underscores", file=sys.stderr)
            return 2
        password = _read_password(args)
        problem = password_problem(password)
        if problem:
            print(problem, file=sys.stderr)
            return 2
        if args.agents_command == "add":
            try:
                store.add_agent(args.name, hash_password(password), display_name=display_name)
            except ValueError as error:
                print(error, file=sys.stderr)
                return 1
            print(f"agent {args.name} added: log in at the gateway's /agent page; customers see "
                  f"{display_name or 'a Unifi agent'!r} (the login name is never shown to them)")
            return 0
        if not store.set_password(args.name, hash_password(password)):
            print(f"no agent called {args.name!r}", file=sys.stderr)
            return 1
        print(f"password of {args.name} changed; their console sessions have ended")
        return 0
    finally:
        gateway_store.dispose()


def add_parser(commands) -> None:
    agents = commands.add_parser("agents", help="human agents of the console at /agent")
    sub = agents.add_subparsers(dest="agents_command", required=True)
    for name, help_text in (("add", "create an agent (asks for a password)"),
                            ("password", "set a new password (ends the agent's sessions)")):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("name")
        command.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        if name == "add":
            command.add_argument("--display-name", default="",
                                 help="the name customers see (default: none, they see 'a Unifi agent')")
    display = sub.add_parser("display-name", help="set the name customers see when the agent joins a chat")
    display.add_argument("name")
    display.add_argument("display_name", nargs="?", default="", help="empty: customers see 'a Unifi agent'")
    disable = sub.add_parser("disable", help="stop an agent from logging in (ends their sessions)")
    disable.add_argument("name")
    sub.add_parser("list", help="the agents")
    audit = sub.add_parser("audit", help="who opened, read, replied to or resolved which conversation, and when")
    audit.add_argument("--conversation", default=None, help="only this conversation (e.g. widget:AbC...)")
    audit.add_argument("--last", type=int, default=200, help="the latest N entries (default 200)")
    agents.set_defaults(func=cmd_agents)
