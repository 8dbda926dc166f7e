"""Gateway configuration from the environment (every variable is listed in README and .env.example)."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Optional, Tuple

from bot.gateway.clients import Network, parse_networks
from bot.settings import Environment, Settings, load_settings

FACEBOOK_GRAPH_URL = "https://graph.facebook.com/v21.0"
TWITTER_API_URL = "https://api.x.com"
TWITTER_AUTHORIZE_URL = "https://x.com/i/oauth2/authorize"
# X's Account Activity API reaches end of life on 1 January 2027: its bodies are accepted until then.
TWITTER_AAA_UNTIL = "2027-01-01"


@dataclass(frozen=True)
class GatewaySettings:
    shared: Settings                 # the settings every process reads (database, secrets, verification)
    rasa_url: str
    rasa_urls: Tuple[str, ...]
    rasa_api_token: str
    port: int
    host: str
    database_url: str
    widget_allowed_origins: Tuple[str, ...]
    facebook_verify_token: str
    facebook_app_secret: str
    facebook_page_access_token: str
    facebook_graph_url: str
    facebook_human_agent_tag: bool
    twitter_consumer_key: str
    twitter_consumer_secret: str
    twitter_access_token: str
    twitter_access_token_secret: str
    twitter_bot_user_id: str
    twitter_api_url: str
    twitter_client_id: str           # OAuth 2.0 (X's recommended user context for v2 DMs)
    twitter_client_secret: str       # also signs X's webhooks and CRC answers when set
    twitter_bearer_token: str        # app-only: `python -m bot x setup/status` manage webhooks with it
    twitter_redirect_uri: str        # the callback URL registered for the app (`python -m bot x authorize`)
    twitter_authorize_url: str
    twitter_aaa_until: datetime      # Account Activity API bodies accepted before this (naive UTC) instant
    rate_limit_per_minute: int
    retry_max_seconds: float
    rasa_timeout_seconds: float
    handoff_wait_minutes: float
    trusted_proxies: Tuple[Network, ...]
    console_insecure_cookie: bool
    replica_id: str                  # this gateway among those sharing the database (its claims' owner)
    lease_seconds: float             # how long a claim lasts unless its replica renews it
    services_status_file: str        # written by `serve` (bot/services.py): its children's state, for /healthz

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "GatewaySettings":
        env = os.environ if environ is None else environ
        shared = load_settings(env)
        read = Environment(env)          # the database and Rasa's address, with the same defaults as serve
        origins = tuple(o.strip().rstrip("/") for o in env.get("WIDGET_ALLOWED_ORIGINS", "").split(",") if o.strip())
        settings = cls(
            shared=shared,
            rasa_url=shared.rasa_url,
            rasa_urls=shared.rasa_urls,
            rasa_api_token=shared.rasa_api_token,
            port=shared.gateway_port,
            host=env.get("GATEWAY_HOST", "0.0.0.0"),
            database_url=shared.database_url,
            widget_allowed_origins=origins,
            facebook_verify_token=env.get("FACEBOOK_VERIFY_TOKEN", ""),
            facebook_app_secret=env.get("FACEBOOK_APP_SECRET", ""),
            facebook_page_access_token=env.get("FACEBOOK_PAGE_ACCESS_TOKEN", ""),
            facebook_graph_url=env.get("FACEBOOK_GRAPH_URL", FACEBOOK_GRAPH_URL).rstrip("/"),
            facebook_human_agent_tag=read.flag("FACEBOOK_HUMAN_AGENT_TAG"),
            twitter_consumer_key=env.get("TWITTER_CONSUMER_KEY", ""),
            twitter_consumer_secret=env.get("TWITTER_CONSUMER_SECRET", ""),
            twitter_access_token=env.get("TWITTER_ACCESS_TOKEN", ""),
            twitter_access_token_secret=env.get("TWITTER_ACCESS_TOKEN_SECRET", ""),
            twitter_bot_user_id=env.get("TWITTER_BOT_USER_ID", ""),
            twitter_api_url=env.get("TWITTER_API_URL", TWITTER_API_URL).rstrip("/"),
            twitter_client_id=env.get("TWITTER_CLIENT_ID", ""),
            twitter_client_secret=env.get("TWITTER_CLIENT_SECRET", ""),
            twitter_bearer_token=env.get("TWITTER_BEARER_TOKEN", ""),
            twitter_redirect_uri=env.get("TWITTER_REDIRECT_URI", ""),
            twitter_authorize_url=env.get("TWITTER_AUTHORIZE_URL", TWITTER_AUTHORIZE_URL),
            twitter_aaa_until=read.day("TWITTER_AAA_UNTIL", TWITTER_AAA_UNTIL),
            rate_limit_per_minute=read.number("GATEWAY_RATE_LIMIT_PER_MINUTE", 20, int, minimum=0),
            retry_max_seconds=read.number("GATEWAY_RETRY_MAX_SECONDS", 30, float, minimum=0.1),
            rasa_timeout_seconds=read.number("GATEWAY_RASA_TIMEOUT_SECONDS", 60, float, minimum=1),
            # A handoff no agent has taken after this long goes back to the assistant (0: wait for ever).
            handoff_wait_minutes=read.number("HANDOFF_WAIT_MINUTES", 15, float, minimum=0),
            trusted_proxies=parse_networks(env.get("GATEWAY_TRUSTED_PROXIES", "")),
            # The console's cookie is Secure (HTTPS only) unless this is set, for plain-http development.
            console_insecure_cookie=read.flag("CONSOLE_INSECURE_COOKIE"),
            replica_id=(env.get("GATEWAY_REPLICA_ID", "").strip()
                        or f"{socket.gethostname()}:{shared.gateway_port}")[:100],
            lease_seconds=read.number("GATEWAY_LEASE_SECONDS", 30, float, minimum=3),
            services_status_file=env.get("SERVICES_STATUS_FILE", ""),
        )
        read.check()
        return settings
