"""The Rasa SDK action server, private: `python -m bot actions`.

Stock `python -m rasa_sdk` listens on 0.0.0.0, allows CORS from any origin, needs no credentials and echoes the
request body in its error replies, while the actions it runs answer for whatever conversation id the caller
names (balances, emails, log-outs). Here the same Rasa SDK app
- listens on ACTIONS_INTERFACE (default 127.0.0.1);
- requires `Authorization: Bearer <ACTION_SERVER_TOKEN>` on every route but `/health` (Rasa sends it through
  the `action_endpoint` headers in endpoints.yml); a missing or wrong token gets 401 and runs nothing;
- sends no CORS headers and answers errors without echoing the request.
"""
from __future__ import annotations

import logging
from typing import List, Optional

from sanic import Sanic, response
from sanic.request import Request

from bot.secret_compare import bearer, same_secret
from bot.settings import load_settings

logger = logging.getLogger(__name__)

ACTIONS_PACKAGE = "actions"
OPEN_PATHS = ("/health",)


def create_action_app(token: str, package: str = ACTIONS_PACKAGE) -> Sanic:
    from rasa_sdk.endpoint import create_app

    if not token:
        raise ValueError("the action server needs a token")
    app = create_app(package, cors_origins=[])

    @app.middleware("request")
    async def require_token(request: Request) -> Optional[response.HTTPResponse]:
        if request.path in OPEN_PATHS:
            return None
        if not same_secret(bearer(request.headers.get("Authorization")), token):
            logger.warning("action server: %s %s without a valid token refused", request.method, request.path)
            return response.json({"error": "unauthorized"}, status=401)
        return None

    @app.exception(Exception)
    async def failed(request: Request, exception: Exception) -> response.HTTPResponse:
        status = getattr(exception, "status_code", 500) or 500
        if status >= 500:
            logger.error("action server: %s %s failed", request.method, request.path, exc_info=exception)
        return response.json({"error": "bad request" if status < 500 else "internal error"}, status=status)

    return app


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    from rasa_sdk.plugin import plugin_manager

    parser = argparse.ArgumentParser(prog="python -m bot actions", description="the private Rasa SDK action server")
    parser.add_argument("--port", type=int, default=None, help="default: ACTIONS_PORT or 5055")
    parser.add_argument("--host", default=None, help="default: ACTIONS_INTERFACE or 127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    settings.require("ACTION_SERVER_TOKEN")
    app = create_action_app(settings.action_server_token)
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    host, port = args.host or settings.actions_interface, args.port or settings.actions_port
    logger.info("action server on http://%s:%s (token required)", host, port)
    app.run(host, port, workers=1, access_log=False, motd=False)
    return 0
