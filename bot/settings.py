"""Configuration from the environment, with the defaults of a local checkout. Every variable is in README."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

from bot.paths import REPO_ROOT, VAR_DIR


@dataclass(frozen=True)
class Settings:
    rasa_port: int
    rasa_interface: str
    actions_port: int
    action_endpoint_url: str
    tracker_store_url: str
    model_path: str
    database_url: str
    identity_token_secret: str
    smtp_url: str
    smtp_from: str
    gateway_port: int
    rasa_url: str

    def rasa_environment(self) -> Dict[str, str]:
        """The variables endpoints.yml expands."""
        return {
            "ACTION_ENDPOINT_URL": self.action_endpoint_url,
            "TRACKER_STORE_URL": self.tracker_store_url,
            # The action server reads these through load_settings(); passing them on keeps both processes and
            # the command line on the same database and secrets.
            "DATABASE_URL": self.database_url,
            "IDENTITY_TOKEN_SECRET": self.identity_token_secret,
            "SMTP_URL": self.smtp_url,
            "SMTP_FROM": self.smtp_from,
            # The gateway reaches Rasa here and listens on GATEWAY_PORT.
            "RASA_URL": self.rasa_url,
            "GATEWAY_PORT": str(self.gateway_port),
        }


def load_settings(environ: Optional[Mapping[str, str]] = None) -> Settings:
    env = os.environ if environ is None else environ
    rasa_port = int(env.get("RASA_PORT", "5005"))
    actions_port = int(env.get("ACTIONS_PORT", "5055"))
    database_url = env.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'ksos.db'}"
    # The tracker store may share the account database (set DATABASE_URL only); the SQLite default keeps the
    # conversation history in its own file so the two don't wait on one another's writes.
    default_tracker = env.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'tracker.db'}"
    return Settings(
        rasa_port=rasa_port,
        # Rasa's HTTP API has no authentication here: keep it on loopback unless a proxy guards it.
        rasa_interface=env.get("RASA_INTERFACE", "127.0.0.1"),
        actions_port=actions_port,
        action_endpoint_url=env.get("ACTION_ENDPOINT_URL", f"http://127.0.0.1:{actions_port}/webhook"),
        tracker_store_url=env.get("TRACKER_STORE_URL") or default_tracker,
        model_path=env.get("RASA_MODEL", str(REPO_ROOT / "models" / "ksos.tar.gz")),
        database_url=database_url,
        identity_token_secret=env.get("IDENTITY_TOKEN_SECRET", ""),
        smtp_url=env.get("SMTP_URL", ""),
        smtp_from=env.get("SMTP_FROM", "KSOS assistant <ksos-assistant@localhost>"),
        gateway_port=int(env.get("GATEWAY_PORT", "8080")),
        rasa_url=env.get("RASA_URL", f"http://127.0.0.1:{rasa_port}").rstrip("/"),
    )
