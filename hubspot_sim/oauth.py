"""OAuth apps and the access tokens issued for them (hubspot-api.md §6): refresh, expiry, the token answer.

Not thread-safe on its own: ``SimState`` calls it under its lock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

OAUTH_SCOPES = ("crm.objects.contacts.write", "crm.objects.deals.write", "crm.objects.companies.write")
ISSUED_PREFIX = "sim-oauth-"


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


class OAuthRegistry:
    """Registered apps by client id, and issued access tokens with their expiry and portal."""

    def __init__(self) -> None:
        self._apps: dict[str, OAuthApp] = {}
        self._issued: dict[str, tuple[float, int]] = {}  # access token -> (expires at, portal)

    def register(self, client_id: str, app: OAuthApp) -> None:
        """Add or replace an app."""
        self._apps[client_id] = app

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
        # Expired tokens are dropped here, so that a long run of refreshes does not grow the map forever.
        self._issued = {t: v for t, v in self._issued.items() if v[0] > now}
        token = ISSUED_PREFIX + secrets.token_urlsafe(24)
        self._issued[token] = (now + ttl_s, app.portal_id)
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
        return self._issued.get(token)
