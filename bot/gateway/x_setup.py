"""`python -m bot x {authorize,setup,status}`: connect the bot's X account to the gateway through the X Activity
API, against TWITTER_API_URL (https://api.x.com, or a local fake in the tests).

- `authorize`: OAuth 2.0 Authorization Code with PKCE for the bot account (scopes dm.read dm.write tweet.read
  users.read offline.access). Prints the address to approve in a browser signed in as the bot account, reads
  back the address X redirects to (TWITTER_REDIRECT_URI?code=…&state=…), exchanges the code, checks the
  token is TWITTER_BOT_USER_ID's, and stores it encrypted in the gateway database.
- `setup --url https://…/webhooks/x`: registers the webhook with the V2 Webhooks API (or, when it is already
  registered, triggers its CRC check again), then makes sure one `dm.received` subscription filtered on
  TWITTER_BOT_USER_ID delivers to it (created in the bot account's user context, as X requires for private
  events). Safe to run again.
- `status`: the webhooks, the subscriptions, the stored authorization and the Account Activity cutoff.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import secrets
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlencode, urlparse

import aiohttp

from bot.gateway.config import GatewaySettings
from bot.gateway.store import GatewayStore
from bot.gateway.x_api import SCOPES, TokenStore, UserAuth, XAuthError, oauth1_configured, token_request, token_store

SUBSCRIPTION_TAG = "ksos-assistant"
Out = Callable[[str], None]
Read = Callable[[str], str]


class ApiProblem(Exception):
    """X answered an error (the message carries its status and words)."""


async def call(session: aiohttp.ClientSession, method: str, url: str, headers: Dict[str, str],
               body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    try:
        async with session.request(method, url, headers=headers, json=body,
                                   timeout=aiohttp.ClientTimeout(total=30)) as response:
            text = await response.text()
            if response.status >= 300:
                raise ApiProblem(f"{method} {urlparse(url).path}: HTTP {response.status}: {text[:300]}")
            try:
                answer = await response.json(content_type=None) if text else {}
            except ValueError:
                raise ApiProblem(f"{method} {urlparse(url).path}: not JSON: {text[:120]}") from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        raise ApiProblem(f"{method} {url}: {type(error).__name__}: {error}") from None
    return answer if isinstance(answer, dict) else {}


def _records(answer: Dict[str, Any]) -> List[Dict[str, Any]]:
    data = answer.get("data")
    records = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    return [record for record in records if isinstance(record, dict)]


def _missing(pairs: List[Tuple[str, str]]) -> List[str]:
    return [name for name, value in pairs if not value]


def pkce_pair() -> Tuple[str, str]:
    """(code_verifier, S256 code_challenge) of RFC 7636."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


async def authorize(settings: GatewaySettings, args: argparse.Namespace, out: Out, read: Read) -> int:
    missing = _missing([("TWITTER_CLIENT_ID", settings.twitter_client_id),
                        ("TWITTER_REDIRECT_URI", settings.twitter_redirect_uri),
                        ("TWITTER_BOT_USER_ID", settings.twitter_bot_user_id),
                        ("DATA_ENCRYPTION_KEY", settings.shared.data_encryption_key)])
    if missing:
        out(f"Set {', '.join(missing)} first (README, \"Connecting X\").")
        return 2
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    address = settings.twitter_authorize_url + "?" + urlencode({
        "response_type": "code", "client_id": settings.twitter_client_id,
        "redirect_uri": settings.twitter_redirect_uri, "scope": " ".join(SCOPES), "state": state,
        "code_challenge": challenge, "code_challenge_method": "S256"})
    out("1. Open this address in a browser signed in to X as the bot account, and approve the app:")
    out(address)
    out(f"2. X then sends the browser to {settings.twitter_redirect_uri}?code=…; paste that whole address here:")
    query = parse_qs(urlparse(read("> ").strip()).query)
    if query.get("state", [""])[0] != state:
        out("Refused: that address does not answer this request (its state differs). Run the command again.")
        return 1
    if "error" in query:
        out(f"X did not authorize the app: {query['error'][0]}")
        return 1
    code = query.get("code", [""])[0]
    if not code:
        out("Refused: the address carries no code.")
        return 1
    async with aiohttp.ClientSession() as session:
        try:
            answer = await token_request(session, settings, {
                "grant_type": "authorization_code", "code": code, "redirect_uri": settings.twitter_redirect_uri,
                "code_verifier": verifier})
            me = _records(await call(session, "GET", settings.twitter_api_url + "/2/users/me",
                                     {"Authorization": f"Bearer {answer['access_token']}"}))
        except (XAuthError, ApiProblem) as problem:
            out(f"Not authorized: {problem}")
            return 1
    user = me[0] if me else {}
    if str(user.get("id")) != settings.twitter_bot_user_id:
        out(f"Refused: the approval came from @{user.get('username', '?')} ({user.get('id', '?')}), not from "
            f"TWITTER_BOT_USER_ID {settings.twitter_bot_user_id}. Sign in to X as the bot account and run again.")
        return 1
    granted = set(str(answer.get("scope") or "").split())
    lacking = [scope for scope in SCOPES if granted and scope not in granted]
    store = GatewayStore(settings.database_url)
    try:
        saved = token_store(settings, store).save(settings.twitter_bot_user_id, answer)
    finally:
        store.dispose()
    out(f"Authorized as @{user.get('username', '?')} ({saved.user_id}). The access token is valid until "
        f"{saved.expires_at.isoformat(timespec='seconds')} UTC and "
        + ("is renewed automatically." if saved.refresh_token else "cannot be renewed (no refresh token)."))
    if lacking:
        out(f"Warning: X did not grant {' '.join(lacking)}; DMs may be refused.")
    return 0


async def setup(settings: GatewaySettings, args: argparse.Namespace, out: Out, read: Read) -> int:
    missing = _missing([("TWITTER_BEARER_TOKEN", settings.twitter_bearer_token),
                        ("TWITTER_BOT_USER_ID", settings.twitter_bot_user_id)])
    if missing:
        out(f"Set {', '.join(missing)} first (README, \"Connecting X\").")
        return 2
    url = args.url
    parsed = urlparse(url)
    if parsed.scheme != "https" or parsed.port is not None:
        out(f"Note: X takes only https addresses without a port; it may refuse {url}.")
    api, bot_user = settings.twitter_api_url, settings.twitter_bot_user_id
    app_only = {"Authorization": f"Bearer {settings.twitter_bearer_token}"}
    store = GatewayStore(settings.database_url)
    try:
        async with aiohttp.ClientSession() as session:
            webhooks = [hook for hook in _records(await call(session, "GET", api + "/2/webhooks", app_only))
                        if hook.get("url") == url]
            if webhooks:
                webhook_id = str(webhooks[0].get("id"))
                checked = _records(await call(session, "PUT", f"{api}/2/webhooks/{webhook_id}", app_only))
                valid = bool(checked and checked[0].get("valid"))
                out(f"Webhook {webhook_id} was registered for {url}; X checked it again (CRC): "
                    f"{'valid' if valid else 'INVALID'}.")
            else:
                created = _records(await call(session, "POST", api + "/2/webhooks", app_only, {"url": url}))
                webhook_id = str(created[0].get("id")) if created else ""
                valid = bool(created and created[0].get("valid"))
                out(f"Webhook {webhook_id} registered for {url}; X's CRC check: {'valid' if valid else 'INVALID'}.")
            if not webhook_id or not valid:
                out("X cannot use the webhook: the gateway must answer at that address, with TWITTER_CLIENT_SECRET "
                    "(or TWITTER_CONSUMER_SECRET) matching the app.")
                return 1
            subscriptions = [sub for sub in _records(await call(session, "GET", api + "/2/activity/subscriptions",
                                                                app_only))
                             if sub.get("event_type") == "dm.received"
                             and str((sub.get("filter") or {}).get("user_id")) == bot_user]
            if any(str(sub.get("webhook_id")) == webhook_id for sub in subscriptions):
                out(f"Subscription: dm.received for user {bot_user} already delivers to webhook {webhook_id}.")
            else:
                auth = UserAuth(settings, token_store(settings, store), session)
                target = api + "/2/activity/subscriptions"
                if subscriptions:
                    subscription_id = str(subscriptions[0].get("subscription_id"))
                    await call(session, "PUT", f"{target}/{subscription_id}", await auth.headers("PUT", target),
                               {"webhook_id": webhook_id, "tag": SUBSCRIPTION_TAG})
                    out(f"Subscription {subscription_id} (dm.received for user {bot_user}) now delivers to "
                        f"webhook {webhook_id}.")
                else:
                    made = _records(await call(session, "POST", target, await auth.headers("POST", target), {
                        "event_type": "dm.received", "filter": {"user_id": bot_user}, "tag": SUBSCRIPTION_TAG,
                        "webhook_id": webhook_id}))
                    out(f"Subscription {made[0].get('subscription_id') if made else '?'} created: dm.received for "
                        f"user {bot_user}, delivered to webhook {webhook_id}.")
    except (ApiProblem, XAuthError) as problem:
        out(f"Stopped: {problem}")
        return 1
    finally:
        store.dispose()
    out(f"Done: direct messages to user {bot_user} now reach {url}.")
    return 0


def describe_authorization(settings: GatewaySettings, tokens: TokenStore) -> str:
    token = tokens.load() if settings.shared.data_encryption_key else None
    if token is not None:
        return (f"OAuth 2.0 user context for user {token.user_id}: access token valid until "
                f"{token.expires_at.isoformat(timespec='seconds')} UTC, "
                f"{'refresh token stored' if token.refresh_token else 'no refresh token'}; scopes: "
                f"{token.scope or '?'}")
    if oauth1_configured(settings):
        return "OAuth 1.0a user context (the four TWITTER_* values; X calls it legacy support)"
    return "none: run `python -m bot x authorize`"


async def status(settings: GatewaySettings, args: argparse.Namespace, out: Out, read: Read) -> int:
    store = GatewayStore(settings.database_url)
    try:
        out(f"Bot account: {settings.twitter_bot_user_id or '(TWITTER_BOT_USER_ID not set)'}")
        out(f"Replies sent with: {describe_authorization(settings, token_store(settings, store))}")
    finally:
        store.dispose()
    out(f"Account Activity API bodies accepted until {settings.twitter_aaa_until.date().isoformat()} "
        "(TWITTER_AAA_UNTIL)")
    if not settings.twitter_bearer_token:
        out("Set TWITTER_BEARER_TOKEN to list the webhooks and subscriptions.")
        return 0
    app_only = {"Authorization": f"Bearer {settings.twitter_bearer_token}"}
    try:
        async with aiohttp.ClientSession() as session:
            hooks = _records(await call(session, "GET", settings.twitter_api_url + "/2/webhooks", app_only))
            subs = _records(await call(session, "GET", settings.twitter_api_url + "/2/activity/subscriptions",
                                       app_only))
    except ApiProblem as problem:
        out(f"Stopped: {problem}")
        return 1
    out(f"Webhooks ({len(hooks)}):")
    for hook in hooks:
        out(f"  {hook.get('id')}  {hook.get('url')}  {'valid' if hook.get('valid') else 'INVALID'}  "
            f"created {hook.get('created_at', '?')}")
    out(f"Subscriptions ({len(subs)}):")
    for sub in subs:
        out(f"  {sub.get('subscription_id')}  {sub.get('event_type')}  user {(sub.get('filter') or {}).get('user_id')}"
            f"  webhook {sub.get('webhook_id', '-')}  tag {sub.get('tag', '-')}")
    if not any(sub.get("event_type") == "dm.received" for sub in subs):
        out("No dm.received subscription: run `python -m bot x setup --url https://…/webhooks/x`.")
    return 0


ACTIONS = {"authorize": authorize, "setup": setup, "status": status}


def main(argv: Optional[List[str]] = None, out: Out = print, read: Read = input) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot x",
                                     description="connect the X account (X Activity API + v2 DMs)")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("authorize", help="OAuth 2.0 (PKCE) authorization of the bot account")
    setup_parser = actions.add_parser("setup", help="register the webhook and the dm.received subscription")
    setup_parser.add_argument("--url", required=True, help="the gateway's public address, https://…/webhooks/x")
    actions.add_parser("status", help="webhooks, subscriptions and the stored authorization")
    args = parser.parse_args(argv)
    try:
        settings = GatewaySettings.from_env()
    except ValueError as problem:
        print(f"Cannot read the settings: {problem}", file=sys.stderr)
        return 2

    def flushed(line: str) -> None:
        out(line)
        sys.stdout.flush()

    return asyncio.run(ACTIONS[args.action](settings, args, flushed, read))
