"""X API v2 credentials, shared by the gateway's X channel and `python -m bot x`.

X documents two user contexts for the v2 Direct Message endpoints: OAuth 2.0 Authorization Code with PKCE
("recommended"; scopes dm.read dm.write tweet.read users.read, plus offline.access for a refresh token) and OAuth
1.0a user context ("legacy support"); app-only tokens cannot send DMs. The bot account's OAuth 2.0 tokens come
from `python -m bot x authorize`, are kept encrypted in the database (gateway_channel_tokens) and refreshed
before they expire (X's access tokens live two hours; each refresh token works once, so one process at a time
refreshes and the others wait for the new token). Without a stored token the four OAuth 1.0a values are used.
The V2 Webhooks API takes the app-only bearer token (TWITTER_BEARER_TOKEN).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import oauthlib.oauth1
from sqlalchemy import or_, update

from bot.accounts.crypto import Cipher
from bot.clock import now_utc
from bot.gateway.config import GatewaySettings
from bot.gateway.models import ChannelToken
from bot.gateway.store import GatewayStore

logger = logging.getLogger(__name__)

CHANNEL = "twitter"
TOKEN_PATH = "/2/oauth2/token"
SCOPES = ("dm.read", "dm.write", "tweet.read", "users.read", "offline.access")
REFRESH_MARGIN = timedelta(minutes=2)      # refresh an access token this long before it expires
REFRESH_LEASE = timedelta(seconds=30)      # how long one process may hold the refresh
WAIT_FOR_OTHER_REFRESH = 10.0              # seconds another process's refresh is waited for
T = TypeVar("T")
RunDb = Callable[..., Awaitable[Any]]


class XAuthError(Exception):
    """No usable user-context credentials: not authorized yet, the refresh token refused, X unreachable for the
    refresh. The message says what to do."""


@dataclass(frozen=True)
class StoredToken:
    user_id: str
    access_token: str
    refresh_token: Optional[str]
    scope: str
    expires_at: datetime

    def expiring(self, now: Optional[datetime] = None) -> bool:
        return (now or now_utc()) >= self.expires_at - REFRESH_MARGIN


class TokenStore:
    """The bot account's OAuth 2.0 tokens in the gateway database, encrypted with DATA_ENCRYPTION_KEY."""

    def __init__(self, store: GatewayStore, cipher: Callable[[], Cipher], channel: str = CHANNEL):
        self.store, self._cipher, self.channel = store, cipher, channel

    @functools.cached_property
    def cipher(self) -> Cipher:
        return self._cipher()

    def load(self) -> Optional[StoredToken]:
        with self.store.session() as session:
            row = session.get(ChannelToken, self.channel)
            if row is None:
                return None
            return StoredToken(row.user_id, self.cipher.decrypt(row.access_token),
                               self.cipher.decrypt(row.refresh_token) if row.refresh_token else None,
                               row.scope, row.expires_at)

    def save(self, user_id: str, answer: Mapping[str, Any], now: Optional[datetime] = None) -> StoredToken:
        """Store a token endpoint's answer ({access_token, refresh_token, expires_in, scope}); a refresh answer
        without a refresh token keeps the old one. Ends any refresh claim."""
        now = now or now_utc()
        access = str(answer.get("access_token") or "")
        if not access:
            raise XAuthError("X's token answer has no access_token")
        try:
            lifetime = max(60, int(answer.get("expires_in") or 7200))
        except (TypeError, ValueError):
            lifetime = 7200
        with self.store.session() as session:
            row = session.get(ChannelToken, self.channel)
            if row is None:
                row = ChannelToken(channel=self.channel)
                session.add(row)
            refresh = answer.get("refresh_token")
            if refresh:
                row.refresh_token = self.cipher.encrypt(str(refresh))
            elif row.user_id != user_id:
                row.refresh_token = None
            row.user_id, row.access_token = user_id, self.cipher.encrypt(access)
            row.scope = str(answer.get("scope") or row.scope or "")
            row.expires_at = now + timedelta(seconds=lifetime)
            row.refresh_claimed_until, row.updated_at = None, now
        saved = self.load()
        assert saved is not None                     # just written
        return saved

    def claim_refresh(self, now: Optional[datetime] = None) -> bool:
        """True for the one process that may refresh now (the claim lapses after REFRESH_LEASE)."""
        now = now or now_utc()
        with self.store.session() as session:
            claimed = session.execute(
                update(ChannelToken).where(
                    ChannelToken.channel == self.channel,
                    or_(ChannelToken.refresh_claimed_until.is_(None), ChannelToken.refresh_claimed_until < now))
                .values(refresh_claimed_until=now + REFRESH_LEASE)).rowcount
        return claimed == 1

    def release_refresh(self) -> None:
        with self.store.session() as session:
            session.execute(update(ChannelToken).where(ChannelToken.channel == self.channel)
                            .values(refresh_claimed_until=None))

    def expire_now(self) -> None:
        """Mark the access token expired (the next use refreshes it): after X answered 401 to it."""
        with self.store.session() as session:
            session.execute(update(ChannelToken).where(ChannelToken.channel == self.channel)
                            .values(expires_at=now_utc() - REFRESH_MARGIN))


def token_store(settings: GatewaySettings, store: GatewayStore) -> TokenStore:
    """The store, with DATA_ENCRYPTION_KEY read when a token is first stored or read."""
    return TokenStore(store, lambda: Cipher(settings.shared.data_encryption_key))


async def token_request(session: aiohttp.ClientSession, settings: GatewaySettings,
                        form: Dict[str, str]) -> Dict[str, Any]:
    """POST to X's token endpoint: a confidential client (TWITTER_CLIENT_SECRET set) authenticates with HTTP
    Basic, a public one names its client_id in the form."""
    auth = None
    if settings.twitter_client_secret:
        auth = aiohttp.BasicAuth(settings.twitter_client_id, settings.twitter_client_secret)
    else:
        form = {**form, "client_id": settings.twitter_client_id}
    try:
        async with session.post(settings.twitter_api_url + TOKEN_PATH, data=form, auth=auth,
                                timeout=aiohttp.ClientTimeout(total=20)) as response:
            text = await response.text()
            if response.status != 200:
                raise XAuthError(f"X's token endpoint answered HTTP {response.status}: {text[:200]}")
            answer = await response.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
        raise XAuthError(f"X's token endpoint could not be used: {type(error).__name__}: {error}") from None
    if not isinstance(answer, dict) or not answer.get("access_token"):
        raise XAuthError("X's token endpoint answered without an access_token")
    return answer


def oauth1_header(method: str, url: str, params: Mapping[str, str], consumer_key: str, consumer_secret: str,
                  token: str, token_secret: str, nonce: Optional[str] = None,
                  timestamp: Optional[int] = None) -> str:
    """OAuth 1.0a HMAC-SHA1 Authorization header (RFC 5849, signed by oauthlib). `params`: query parameters (a
    JSON body is not signed)."""
    client = oauthlib.oauth1.Client(consumer_key, client_secret=consumer_secret, resource_owner_key=token,
                                    resource_owner_secret=token_secret, nonce=nonce,
                                    timestamp=None if timestamp is None else str(timestamp))
    signed_url = f"{url}?{urlencode(params, quote_via=quote)}" if params else url
    _, headers, _ = client.sign(signed_url, http_method=method.upper())
    return headers["Authorization"]


def oauth1_configured(settings: GatewaySettings) -> bool:
    return all((settings.twitter_consumer_key, settings.twitter_consumer_secret, settings.twitter_access_token,
                settings.twitter_access_token_secret))


async def run_here(function: Callable[..., T], *args: Any) -> T:
    """RunDb for a command-line process: the store call, right here."""
    return function(*args)


def _newer(token: StoredToken, than: StoredToken) -> bool:
    """A token refreshed since `than` was read, and not about to expire."""
    return token.access_token != than.access_token and not token.expiring()


class UserAuth:
    """The Authorization header of a call on the bot account's behalf: its OAuth 2.0 token when one is stored
    (refreshed when it is about to expire or X refused it), otherwise OAuth 1.0a when configured."""

    def __init__(self, settings: GatewaySettings, tokens: TokenStore, session: aiohttp.ClientSession,
                 run_db: RunDb = run_here):
        self.settings, self.tokens, self.session, self.run_db = settings, tokens, session, run_db
        self._lock = asyncio.Lock()

    async def headers(self, method: str, url: str) -> Dict[str, str]:
        token = await self.run_db(self.tokens.load)
        if token is not None:
            if token.expiring():
                token = await self.refresh(token)
            return {"Authorization": f"Bearer {token.access_token}"}
        if oauth1_configured(self.settings):
            s = self.settings
            return {"Authorization": oauth1_header(method, url, {}, s.twitter_consumer_key, s.twitter_consumer_secret,
                                                   s.twitter_access_token, s.twitter_access_token_secret)}
        raise XAuthError("the X account is not authorized: run `python -m bot x authorize` (or set the four "
                         "TWITTER_* OAuth 1.0a values)")

    async def refused(self, headers: Mapping[str, str]) -> bool:
        """X answered 401 to a call made with `headers`: with OAuth 2.0, have the token refreshed and return True
        (call again); False when there is nothing to refresh."""
        authorization = headers.get("Authorization", "")
        token = await self.run_db(self.tokens.load)
        if token is None or not authorization.startswith("Bearer "):
            return False
        if authorization == f"Bearer {token.access_token}":
            await self.run_db(self.tokens.expire_now)
        return True

    async def refresh(self, stale: StoredToken) -> StoredToken:
        async with self._lock:                       # one refresh per process ...
            current = await self._stored()
            if _newer(current, stale):
                return current                       # ... done by a caller just before us
            if not await self.run_db(self.tokens.claim_refresh):
                return await self._refreshed_elsewhere(current)
            try:
                # Read again under the claim: another process may have refreshed between our read and our claim
                # (its claim ends when it saves), and its refresh token is the only one still valid.
                current = await self._stored()
                if _newer(current, stale):
                    return current
                if not current.refresh_token:
                    raise XAuthError("X gave no refresh token (authorize with the offline.access scope): run "
                                     "`python -m bot x authorize` again")
                answer = await token_request(self.session, self.settings, {
                    "grant_type": "refresh_token", "refresh_token": current.refresh_token})
                refreshed = await self.run_db(self.tokens.save, current.user_id, answer)
                logger.info("twitter: OAuth 2.0 access token refreshed (valid until %s UTC)",
                            refreshed.expires_at.isoformat(timespec="seconds"))
                return refreshed
            finally:
                await self.run_db(self.tokens.release_refresh)

    async def _stored(self) -> StoredToken:
        token = await self.run_db(self.tokens.load)
        if token is None:
            raise XAuthError("the X account's token was removed: run `python -m bot x authorize`")
        return token

    async def _refreshed_elsewhere(self, current: StoredToken) -> StoredToken:
        """... and one per database: another process holds the refresh; wait for its new token."""
        deadline = time.monotonic() + WAIT_FOR_OTHER_REFRESH
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            newer = await self.run_db(self.tokens.load)
            if newer is not None and _newer(newer, current):
                return newer
        raise XAuthError("another gateway process is refreshing the X token and has not finished")
