"""Apps, their installs and the tokens issued for them (docs/reference/hubspot.md §6, §9.1, §9.6).

An *app* (``POST /_sim/apps``) has an id, a client id and a client secret: the secret signs its webhook
pushes, and the ``client_credentials`` grant issues it app tokens, which read the webhooks journal. An
*install* (``POST /_sim/oauth-apps``) is a portal's refresh token for a client id; refreshing it issues
access tokens acting for that portal. Uninstalling a portal revokes its access tokens and refuses its
refresh token (``BAD_REFRESH_TOKEN``) until it is installed again.

Not thread-safe on its own: ``SimState`` calls it under its lock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

OAUTH_SCOPES = ("crm.objects.contacts.write", "crm.objects.deals.write", "crm.objects.companies.write")
#: The scopes an app token is granted (the journal's, docs/reference/hubspot.md §9.1).
APP_SCOPES = (
    "developer.webhooks_journal.read",
    "developer.webhooks_journal.subscriptions.read",
    "developer.webhooks_journal.subscriptions.write",
)
ISSUED_PREFIX = "sim-oauth-"
APP_TOKEN_PREFIX = "sim-app-"  # noqa: S105 (a prefix that marks issued tokens, not a secret)


class RefreshRefusedError(Exception):
    """The token endpoint refuses: ``status_name`` is HubSpot's reason (BAD_CLIENT_ID, BAD_REFRESH_TOKEN)."""

    def __init__(self, status_name: str, message: str) -> None:
        super().__init__(f"{status_name}: {message}")
        self.status_name = status_name
        self.message = message


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """A registered OAuth app: its secrets and the portal its tokens act for."""

    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    portal_id: int


def _same(a: str, b: str) -> bool:
    # Constant time, as a real token endpoint compares secrets; bytes: compare_digest refuses non-ASCII str.
    return secrets.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class App:
    """A developer app: its id (webhook settings, ``appId`` and ``sourceId`` of events) and credentials."""

    app_id: str
    client_id: str
    client_secret: str = field(repr=False)


class OAuthRegistry:
    """Apps, installs by client id, and issued tokens (portal access tokens, app tokens) with their expiry."""

    def __init__(self) -> None:
        self._apps: dict[str, OAuthApp] = {}
        self._issued: dict[str, tuple[float, int, str]] = {}  # access token -> (expires at, portal, client id)
        self._developer_apps: dict[str, App] = {}  # by app id
        self._app_tokens: dict[str, tuple[float, str | None]] = {}  # app token -> (expires at, app id)
        self._uninstalled: set[int] = set()

    def register(self, client_id: str, app: OAuthApp) -> None:
        """Add or replace an install; registering a portal again installs it again."""
        self._apps[client_id] = app
        self._uninstalled.discard(app.portal_id)

    def register_app(self, app: App) -> None:
        """Add or replace a developer app (by its id)."""
        self._developer_apps[app.app_id] = app

    def apps(self) -> list[App]:
        """Every developer app, in the order registered."""
        return list(self._developer_apps.values())

    def app_of_client(self, client_id: str) -> App | None:
        """The developer app with this client id, or None."""
        return next((a for a in self._developer_apps.values() if a.client_id == client_id), None)

    def client_of(self, token: str) -> str | None:
        """The client id a portal access token was issued to, or None."""
        issued = self._issued.get(token)
        return issued[2] if issued is not None else None

    def uninstall(self, portal_id: int) -> int:
        """Revoke the portal's access tokens and refuse its refresh tokens; returns how many tokens were revoked."""
        self._uninstalled.add(portal_id)
        revoked = [t for t, v in self._issued.items() if v[1] == portal_id]
        for token in revoked:
            del self._issued[token]
        return len(revoked)

    def install(self, portal_id: int) -> None:
        """Accept the portal's refresh tokens again."""
        self._uninstalled.discard(portal_id)

    def uninstalled(self) -> set[int]:
        """The portals uninstalled now."""
        return set(self._uninstalled)

    def is_uninstalled(self, portal_id: int) -> bool:
        """True while the portal is uninstalled."""
        return portal_id in self._uninstalled

    def client_credentials(self, client_id: str, client_secret: str, *, now: float, ttl_s: float) -> dict[str, Any]:
        """Issue an app token: HubSpot's ``ClientCredentialsTokenResponse`` (no refresh token).

        A developer app's credentials or an install's client id and secret are accepted. Raises
        RefreshRefusedError for an unknown client (BAD_CLIENT_ID) or a wrong secret (BAD_CLIENT_SECRET).
        """
        app = self.app_of_client(client_id)
        secret = app.client_secret if app is not None else None
        if secret is None and client_id in self._apps:
            secret = self._apps[client_id].client_secret
        if secret is None:
            raise RefreshRefusedError("BAD_CLIENT_ID", "missing or invalid client_id")
        if not _same(secret, client_secret):
            raise RefreshRefusedError("BAD_CLIENT_SECRET", "missing or invalid client_secret")
        self._app_tokens = {t: v for t, v in self._app_tokens.items() if v[0] > now}
        token = APP_TOKEN_PREFIX + secrets.token_urlsafe(24)
        self._app_tokens[token] = (now + ttl_s, app.app_id if app is not None else None)
        return {
            "access_token": token,
            "expires_in": int(ttl_s),
            "token_type": "bearer",
            "scopes": list(APP_SCOPES),
            "token_use": "client_credentials",
        }

    def app_token(self, token: str) -> tuple[float, str | None] | None:
        """(expires at, app id or None) of an app token, or None if this registry did not issue it."""
        return self._app_tokens.get(token)

    def refresh(
        self, client_id: str, client_secret: str, refresh_token: str, *, now: float, ttl_s: float
    ) -> dict[str, Any]:
        """Issue an access token living ``ttl_s`` seconds: HubSpot's ``AccessTokenResponse``.

        Raises RefreshRefusedError for an unknown client (BAD_CLIENT_ID) or a wrong secret or refresh
        token (BAD_REFRESH_TOKEN).
        """
        app = self._apps.get(client_id)
        if app is None:
            raise RefreshRefusedError("BAD_CLIENT_ID", "missing or invalid client_id")
        if not (_same(app.client_secret, client_secret) and _same(app.refresh_token, refresh_token)):
            raise RefreshRefusedError("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        if app.portal_id in self._uninstalled:
            raise RefreshRefusedError("BAD_REFRESH_TOKEN", "the app is not installed in this account")
        # Expired tokens are dropped here, so that a long run of refreshes does not grow the map forever.
        self._issued = {t: v for t, v in self._issued.items() if v[0] > now}
        token = ISSUED_PREFIX + secrets.token_urlsafe(24)
        self._issued[token] = (now + ttl_s, app.portal_id, client_id)
        return {
            "access_token": token,
            "refresh_token": refresh_token,
            "expires_in": int(ttl_s),
            "token_type": "bearer",
            "hub_id": app.portal_id,
            "scopes": list(OAUTH_SCOPES),
            "token_use": "access_token",
        }

    def lookup(self, token: str) -> tuple[float, int] | None:
        """(expires at, portal) of an issued token, or None if this registry did not issue it."""
        issued = self._issued.get(token)
        return None if issued is None else (issued[0], issued[1])
