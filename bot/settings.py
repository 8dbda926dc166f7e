"""Configuration from the environment, with the defaults of a local checkout. Every variable is in README.

Secrets (RASA_API_TOKEN, ACTION_SERVER_TOKEN, DATA_ENCRYPTION_KEY) come from the environment or, for a local
checkout, from the file bot/local_secrets.py generates (`var/secrets.env`); never from the repository.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Tuple

from bot.local_secrets import read_secrets, secrets_file
from bot.paths import REPO_ROOT, VAR_DIR

LOOPBACK = "127.0.0.1"


class MissingSecret(RuntimeError):
    """A service was asked to start without a secret it needs."""


class InvalidSettings(ValueError):
    """One or more variables have values that cannot be used; the message names each, one per line."""


class Environment:
    """Typed reads of the environment that collect every bad value instead of stopping at the first:
    `check()` then raises InvalidSettings naming them all."""

    def __init__(self, env: Mapping[str, str]):
        self.env: Mapping[str, str] = env
        self.problems: List[str] = []

    def number(self, name: str, default: float, kind: type = int, minimum: Optional[float] = None,
               maximum: Optional[float] = None) -> Any:
        raw = self.env.get(name, "")
        if raw.strip() == "":
            return kind(default)
        try:
            value = kind(raw.strip())
        except ValueError:
            self.problems.append(f"{name}={raw!r}: not a {'whole ' if kind is int else ''}number")
            return kind(default)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"from {minimum:g}" + (f" to {maximum:g}" if maximum is not None else "")
            self.problems.append(f"{name}={raw!r}: must be {bounds}")
            return kind(default)
        return value

    def port(self, name: str, default: int) -> int:
        return int(self.number(name, default, int, 1, 65535))

    def flag(self, name: str) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if raw not in ("", "0", "1", "true", "false", "yes", "no"):
            self.problems.append(f"{name}={raw!r}: use 1 or 0")
        return raw in ("1", "true", "yes")

    def day(self, name: str, default: str) -> datetime:
        """A date as YYYY-MM-DD, as a naive UTC midnight (as bot.clock.now_utc)."""
        raw = self.env.get(name, "").strip() or default
        try:
            return datetime.strptime(raw, "%Y-%m-%d")
        except ValueError:
            self.problems.append(f"{name}={raw!r}: a date as YYYY-MM-DD")
            return datetime.strptime(default, "%Y-%m-%d")

    def check(self) -> None:
        if self.problems:
            raise InvalidSettings("invalid settings:\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class Settings:
    rasa_port: int
    rasa_interface: str
    actions_port: int
    actions_interface: str
    action_endpoint_url: str
    tracker_store_url: str
    model_path: str
    database_url: str
    identity_token_secret: str
    smtp_url: str
    smtp_from: str
    gateway_port: int
    rasa_url: str
    rasa_urls: Tuple[str, ...]       # every Rasa server the gateway may use (RASA_URLS; default: RASA_URL)
    rasa_api_token: str
    action_server_token: str
    data_encryption_key: str
    secrets_file: str
    verification_ttl_minutes: float
    retention_days: int
    redis_url: str                   # empty: no Redis (one process of each kind)

    def require(self, *names: str) -> None:
        """Raise MissingSecret naming every secret of `names` (environment variable names) that is empty."""
        values = {"RASA_API_TOKEN": self.rasa_api_token, "ACTION_SERVER_TOKEN": self.action_server_token,
                  "DATA_ENCRYPTION_KEY": self.data_encryption_key}
        missing = [name for name in names if not values[name]]
        if missing:
            raise MissingSecret(
                f"{', '.join(missing)} not set: set {'them' if len(missing) > 1 else 'it'} in the environment, or "
                f"run `make run` once to generate {self.secrets_file}")

    def rasa_environment(self) -> Dict[str, str]:
        """The variables endpoints.yml and credentials.yml expand, and what the action server reads."""
        return {
            "ACTION_ENDPOINT_URL": self.action_endpoint_url,
            "TRACKER_STORE_URL": self.tracker_store_url,
            # The action server reads these through load_settings(); passing them on keeps both processes and
            # the command line on the same database and secrets.
            "DATABASE_URL": self.database_url,
            "IDENTITY_TOKEN_SECRET": self.identity_token_secret,
            "SMTP_URL": self.smtp_url,
            "SMTP_FROM": self.smtp_from,
            "RASA_API_TOKEN": self.rasa_api_token,
            "ACTION_SERVER_TOKEN": self.action_server_token,
            "DATA_ENCRYPTION_KEY": self.data_encryption_key,
            "VERIFICATION_TTL_MINUTES": f"{self.verification_ttl_minutes:g}",
            "RETENTION_DAYS": str(self.retention_days),
            # The gateway reaches Rasa here and listens on GATEWAY_PORT.
            "RASA_URL": self.rasa_url,
            "GATEWAY_PORT": str(self.gateway_port),
            # Rasa's lock store (endpoints.yml) and the gateway's cross-replica messages.
            "REDIS_URL": self.redis_url,
        }


def load_settings(environ: Optional[Mapping[str, str]] = None) -> Settings:
    env = os.environ if environ is None else environ
    path = secrets_file(env)
    stored = read_secrets(path)

    def secret(name: str) -> str:
        return env.get(name) or stored.get(name, "")

    read = Environment(env)
    rasa_port = read.port("RASA_PORT", 5005)
    actions_port = read.port("ACTIONS_PORT", 5055)
    database_url = env.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'ksos.db'}"
    # The tracker store may share the account database (set DATABASE_URL only); the SQLite default keeps the
    # conversation history in its own file so the two don't wait on one another's writes.
    default_tracker = env.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'tracker.db'}"
    rasa_url = env.get("RASA_URL", f"http://{LOOPBACK}:{rasa_port}").rstrip("/")
    redis_url = env.get("REDIS_URL", "").strip()
    if redis_url and not redis_url.startswith(("redis://", "rediss://")):
        read.problems.append(f"REDIS_URL={redis_url!r}: a redis:// or rediss:// URL")
    settings = Settings(
        rasa_port=rasa_port,
        # Internal services listen on loopback; only the gateway is meant to be reached from outside.
        rasa_interface=env.get("RASA_INTERFACE", LOOPBACK),
        actions_port=actions_port,
        actions_interface=env.get("ACTIONS_INTERFACE", LOOPBACK),
        action_endpoint_url=env.get("ACTION_ENDPOINT_URL", f"http://{LOOPBACK}:{actions_port}/webhook"),
        tracker_store_url=env.get("TRACKER_STORE_URL") or default_tracker,
        model_path=env.get("RASA_MODEL", str(REPO_ROOT / "models" / "ksos.tar.gz")),
        database_url=database_url,
        identity_token_secret=env.get("IDENTITY_TOKEN_SECRET", ""),
        smtp_url=env.get("SMTP_URL", ""),
        smtp_from=env.get("SMTP_FROM", "KSOS assistant <ksos-assistant@localhost>"),
        gateway_port=read.port("GATEWAY_PORT", 8080),
        rasa_url=rasa_url,
        rasa_urls=tuple(url.strip().rstrip("/") for url in env.get("RASA_URLS", "").split(",") if url.strip())
        or (rasa_url,),
        rasa_api_token=secret("RASA_API_TOKEN"),
        action_server_token=secret("ACTION_SERVER_TOKEN"),
        data_encryption_key=secret("DATA_ENCRYPTION_KEY"),
        secrets_file=str(path),
        verification_ttl_minutes=read.number("VERIFICATION_TTL_MINUTES", 30, float, minimum=1),
        retention_days=read.number("RETENTION_DAYS", 90, int, minimum=1),
        redis_url=redis_url,
    )
    read.check()
    return settings
