"""Configuration from the environment, with the defaults of a local checkout. Every variable is in README."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

from bot.paths import REPO_ROOT, VAR_DIR


@dataclass(frozen=True)
class Settings:
    rasa_port: int
    actions_port: int
    action_endpoint_url: str
    tracker_store_url: str
    model_path: str

    def rasa_environment(self) -> Dict[str, str]:
        """The variables endpoints.yml expands."""
        return {
            "ACTION_ENDPOINT_URL": self.action_endpoint_url,
            "TRACKER_STORE_URL": self.tracker_store_url,
        }


def load_settings(environ: Optional[Mapping[str, str]] = None) -> Settings:
    env = os.environ if environ is None else environ
    rasa_port = int(env.get("RASA_PORT", "5005"))
    actions_port = int(env.get("ACTIONS_PORT", "5055"))
    return Settings(
        rasa_port=rasa_port,
        actions_port=actions_port,
        action_endpoint_url=env.get("ACTION_ENDPOINT_URL", f"http://127.0.0.1:{actions_port}/webhook"),
        tracker_store_url=env.get("TRACKER_STORE_URL", f"sqlite:///{VAR_DIR / 'tracker.db'}"),
        model_path=env.get("RASA_MODEL", str(REPO_ROOT / "models" / "ksos.tar.gz")),
    )
