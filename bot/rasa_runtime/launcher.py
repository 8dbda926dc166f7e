"""Rasa's own command line, run in this process with two changes:

- `python -m bot rasa-server ...` is `rasa run` with the HTTP API behind RASA_API_TOKEN, only our gateway channel
  (credentials.yml) and our endpoints (endpoints.yml: the action server's token, the redacting tracker store). The
  token reaches Rasa without ever being on a command line, which any local user can read in `ps`.
- Every Rasa command (`train` too) runs with Rasa's crash reporting off. Rasa 3.6 sends uncaught exceptions to
  Sentry (with the key its package ships) whenever its telemetry is on, which `rasa telemetry enable` or
  RASA_TELEMETRY_ENABLED=true switches on for a whole machine; nothing of a conversation may leave it that way,
  whatever that setting. (Our services also start Rasa with RASA_TELEMETRY_ENABLED=false: bot/services.py.)
"""
from __future__ import annotations

import sys
from typing import List, Optional

from bot.settings import load_settings


def rasa_run_arguments(token: str, argv: List[str]) -> List[str]:
    return ["run", "--enable-api", "--auth-token", token,
            "--endpoints", "endpoints.yml", "--credentials", "credentials.yml", *argv]


def run_rasa(arguments: List[str]) -> int:
    """Rasa's CLI with `arguments` (as after `rasa`), error reporting to Sentry disabled."""
    import rasa.telemetry
    from rasa.__main__ import main as rasa_main

    rasa.telemetry.initialize_error_reporting = lambda: None
    sys.argv = ["rasa", *arguments]
    try:
        rasa_main()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


def server_main(argv: Optional[List[str]] = None) -> int:
    settings = load_settings()
    settings.require("RASA_API_TOKEN", "ACTION_SERVER_TOKEN")
    return run_rasa(rasa_run_arguments(settings.rasa_api_token, list(sys.argv[1:] if argv is None else argv)))


def cli_main(argv: Optional[List[str]] = None) -> int:
    return run_rasa(list(sys.argv[1:] if argv is None else argv))
