"""A local fake of the X API v2 endpoints the gateway and `python -m bot x` use, with X's documented request and
answer shapes (docs.x.com: OAuth 2.0 Authorization Code with PKCE, V2 Webhooks, X Activity API subscriptions,
Manage Direct Messages):

- POST /2/oauth2/token: authorization_code (checks the PKCE verifier against the challenge of the approved
  authorize address) and refresh_token (single-use refresh tokens, rotated), the confidential client's HTTP Basic;
- GET /2/users/me for a user access token;
- GET/POST /2/webhooks and PUT /2/webhooks/{id} (app-only bearer), which send a real CRC GET to the webhook and
  check its response_token against the app's client secret;
- GET /2/activity/subscriptions (app-only), POST and PUT (user context, as X requires for private events);
- POST /2/dm_conversations/with/{participant_id}/messages: a live user access token (or an OAuth 1.0a header),
  answering 201 {"data": {"dm_conversation_id", "dm_event_id"}}; `fail_next` makes the next sends fail as told.
Every call is recorded in `calls`."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlencode, urlparse

import aiohttp
from aiohttp import web

CLIENT_ID = "test-x-client-id"
CLIENT_SECRET = "test-x-client-secret"
APP_BEARER = "test-x-app-bearer"
REDIRECT_URI = "https://ops.example.my/x/callback"


def unauthorized() -> web.Response:
    return web.json_response({"title": "Unauthorized", "type": "about:blank", "status": 401,
                              "detail": "Unauthorized"}, status=401)


class FakeX:
    def __init__(self, bot_user_id: str, consumer_key: str = ""):
        self.bot_user_id, self.consumer_key = bot_user_id, consumer_key
        self.calls: List[Dict[str, Any]] = []
        self.fail_next: List[Tuple[int, Dict[str, str], Dict[str, Any]]] = []
        self.access: Dict[str, Dict[str, Any]] = {}      # access token -> {user, expires (epoch)}
        self.refresh: Dict[str, str] = {}                # live refresh token -> user
        self.codes: Dict[str, Dict[str, str]] = {}       # authorization code -> {challenge, redirect_uri, user}
        self.webhooks: Dict[str, Dict[str, Any]] = {}
        self.subscriptions: Dict[str, Dict[str, Any]] = {}
        self.usernames = {bot_user_id: "helpmeunifi"}

    # --- test controls ----------------------------------------------------------------------------------------

    def issue(self, user: Optional[str] = None, lifetime: int = 7200) -> Dict[str, Any]:
        """A token endpoint answer for `user` (the bot by default), as X gives it."""
        user = user or self.bot_user_id
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = {"user": user, "expires": time.time() + lifetime}
        self.refresh[refresh] = user
        return {"token_type": "bearer", "expires_in": lifetime, "access_token": access, "refresh_token": refresh,
                "scope": "dm.read dm.write tweet.read users.read offline.access"}

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far stops working (as when they expire at X's end)."""
        for grant in self.access.values():
            grant["expires"] = 0

    def approve(self, authorize_url: str, user: Optional[str] = None) -> str:
        """The user approves the app on X's authorize page: the address X redirects the browser to."""
        query = {key: values[0] for key, values in parse_qs(urlparse(authorize_url).query).items()}
        assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
        assert query["code_challenge_method"] == "S256" and "offline.access" in query["scope"].split()
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": query["code_challenge"], "redirect_uri": query["redirect_uri"],
                            "user": user or self.bot_user_id}
        return f"{query['redirect_uri']}?{urlencode({'state': query['state'], 'code': code})}"

    def token_grants(self, grant_type: str) -> List[Dict[str, Any]]:
        return [call for call in self.calls if call["api"] == "x-token" and call["grant_type"] == grant_type]

    def sends_to(self, participant: str) -> List[Dict[str, Any]]:
        return [call for call in list(self.calls) if call["api"] == "x" and call["participant"] == participant]

    # --- endpoints --------------------------------------------------------------------------------------------

    def _user_of(self, request: web.Request) -> Optional[str]:
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            return None
        grant = self.access.get(authorization[len("Bearer "):])
        return grant["user"] if grant and grant["expires"] > time.time() else None

    def _app_only(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {APP_BEARER}"

    async def token(self, request: web.Request) -> web.Response:
        form = {key: value for key, value in (await request.post()).items()}
        basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        self.calls.append({"api": "x-token", "grant_type": form.get("grant_type"),
                           "basic_auth": request.headers.get("Authorization") == basic})
        if request.headers.get("Authorization") != basic:
            return web.json_response({"error": "unauthorized_client"}, status=401)
        if form.get("grant_type") == "refresh_token":
            user = self.refresh.pop(form.get("refresh_token", ""), None)      # single use
            if user is None:
                return web.json_response({"error": "invalid_request",
                                          "error_description": "Value passed for the token was invalid."}, status=400)
            return web.json_response(self.issue(user))
        if form.get("grant_type") == "authorization_code":
            grant = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if grant is None or grant["challenge"] != challenge or grant["redirect_uri"] != form.get("redirect_uri"):
                return web.json_response({"error": "invalid_request"}, status=400)
            return web.json_response(self.issue(grant["user"]))
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def users_me(self, request: web.Request) -> web.Response:
        user = self._user_of(request)
        if user is None:
            return unauthorized()
        return web.json_response({"data": {"id": user, "name": "Unifi", "username": self.usernames.get(user, "other")}})

    async def _crc(self, url: str) -> bool:
        token = base64.b64encode(secrets.token_bytes(24)).decode()
        expected = "sha256=" + base64.b64encode(hmac.new(CLIENT_SECRET.encode(), token.encode(),
                                                         hashlib.sha256).digest()).decode()
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(url, params={"crc_token": token}, timeout=aiohttp.ClientTimeout(total=10)) as r:
                    answer = await r.json(content_type=None) if r.status == 200 else {}
        except (aiohttp.ClientError, ValueError):
            return False
        return isinstance(answer, dict) and answer.get("response_token") == expected

    async def list_webhooks(self, request: web.Request) -> web.Response:
        if not self._app_only(request):
            return unauthorized()
        hooks = list(self.webhooks.values())
        return web.json_response({"data": hooks, "meta": {"result_count": len(hooks)}})

    async def create_webhook(self, request: web.Request) -> web.Response:
        if not self._app_only(request):
            return unauthorized()
        url = (await request.json()).get("url", "")
        self.calls.append({"api": "x-webhooks", "method": "POST", "url": url})
        if any(hook["url"] == url for hook in self.webhooks.values()):
            return web.json_response({"errors": [{"message": "DuplicateUrlFailed"}]}, status=400)
        if not await self._crc(url):
            return web.json_response({"errors": [{"message": "CrcValidationFailed"}]}, status=400)
        hook = {"id": str(uuid.uuid4().int)[:19], "url": url, "valid": True,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
        self.webhooks[hook["id"]] = hook
        return web.json_response({"data": hook})

    async def validate_webhook(self, request: web.Request) -> web.Response:
        if not self._app_only(request):
            return unauthorized()
        hook = self.webhooks.get(request.match_info["webhook_id"])
        self.calls.append({"api": "x-webhooks", "method": "PUT", "id": request.match_info["webhook_id"]})
        if hook is None:
            return web.json_response({"errors": [{"message": "WebhookIdInvalid"}]}, status=400)
        hook["valid"] = await self._crc(hook["url"])
        return web.json_response({"data": {"valid": hook["valid"]}})

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        if not self._app_only(request):
            return unauthorized()
        subs = list(self.subscriptions.values())
        return web.json_response({"data": subs, "meta": {"total_subscriptions": len(subs)}})

    async def create_subscription(self, request: web.Request) -> web.Response:
        user = self._user_of(request)
        body = await request.json()
        self.calls.append({"api": "x-subscriptions", "method": "POST", "user": user, "body": body})
        if user is None or user != str(body.get("filter", {}).get("user_id")):
            return web.json_response({"title": "Forbidden", "status": 403,
                                      "detail": "dm.received needs the filtered user's own authorization"}, status=403)
        subscription = {"subscription_id": str(uuid.uuid4().int)[:19], "event_type": body["event_type"],
                        "filter": body["filter"], "tag": body.get("tag"), "webhook_id": body.get("webhook_id"),
                        "created_at": "2026-12-02T00:00:00.000Z", "updated_at": "2026-12-02T00:00:00.000Z"}
        self.subscriptions[subscription["subscription_id"]] = subscription
        return web.json_response({"data": subscription})

    async def update_subscription(self, request: web.Request) -> web.Response:
        if self._user_of(request) is None:
            return unauthorized()
        subscription = self.subscriptions.get(request.match_info["subscription_id"])
        if subscription is None:
            return web.json_response({"errors": [{"message": "not found"}]}, status=404)
        subscription.update({key: value for key, value in (await request.json()).items()
                             if key in ("webhook_id", "tag")})
        return web.json_response({"data": subscription, "meta": {"total_subscriptions": len(self.subscriptions)}})

    async def send_dm(self, request: web.Request) -> web.Response:
        participant = request.match_info["participant_id"]
        body = await request.json()
        authorization = request.headers.get("Authorization", "")
        call = {"api": "x", "participant": participant, "body": body, "authorization": authorization,
                "at": time.monotonic(), "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
        oauth1 = authorization.startswith("OAuth ") and f'oauth_consumer_key="{self.consumer_key}"' in authorization
        if self._user_of(request) is None and not oauth1:
            self.calls.append({**call, "failed": 401})
            return unauthorized()
        if self.fail_next:
            status, headers, answer = self.fail_next.pop(0)
            self.calls.append({**call, "failed": status})
            return web.json_response(answer, status=status, headers=headers)
        if not isinstance(body.get("text"), str) or not body["text"]:
            self.calls.append({**call, "failed": 400})
            return web.json_response({"errors": [{"message": "text is required"}]}, status=400)
        self.calls.append(call)
        return web.json_response({"data": {"dm_conversation_id": f"{participant}-{self.bot_user_id}",
                                           "dm_event_id": str(uuid.uuid4().int)[:19]}}, status=201)

    async def dm_events(self, request: web.Request) -> web.Response:
        """GET /2/dm_conversations/with/{participant_id}/dm_events: the conversation's latest events, newest first
        (the bot account's messages here; the customer's are not kept by this fake)."""
        participant = request.match_info["participant_id"]
        authorization = request.headers.get("Authorization", "")
        oauth1 = authorization.startswith("OAuth ") and f'oauth_consumer_key="{self.consumer_key}"' in authorization
        if self._user_of(request) is None and not oauth1:
            return unauthorized()
        sent = [{"id": str(index), "event_type": "MessageCreate", "text": call["body"]["text"],
                 "sender_id": self.bot_user_id, "created_at": call["created_at"]}
                for index, call in enumerate(self.sends_to(participant)) if not call.get("failed")]
        limit = int(request.query.get("max_results", "100"))
        return web.json_response({"data": sent[::-1][:limit], "meta": {"result_count": min(len(sent), limit)}})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/2/oauth2/token", self.token)
        app.router.add_get("/2/users/me", self.users_me)
        app.router.add_get("/2/webhooks", self.list_webhooks)
        app.router.add_post("/2/webhooks", self.create_webhook)
        app.router.add_put("/2/webhooks/{webhook_id}", self.validate_webhook)
        app.router.add_get("/2/activity/subscriptions", self.list_subscriptions)
        app.router.add_post("/2/activity/subscriptions", self.create_subscription)
        app.router.add_put("/2/activity/subscriptions/{subscription_id}", self.update_subscription)
        app.router.add_post("/2/dm_conversations/with/{participant_id}/messages", self.send_dm)
        app.router.add_get("/2/dm_conversations/with/{participant_id}/dm_events", self.dm_events)
