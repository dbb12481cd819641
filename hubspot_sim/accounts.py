"""Who calls the simulator: tokens (static, OAuth installs', apps'), installs and uninstalls, the token endpoint.

``Accounts`` is the part of ``SimState`` that owns authentication and the accounts' lifecycle: it checks
bearer tokens (static ``--token`` tokens acting for ``portal_id``, OAuth access tokens acting for their
portal, app tokens from the client_credentials grant), issues tokens, throttles the token endpoint
(``token_429_s``), registers apps, and uninstalls and installs portals (docs/reference/hubspot.md §6, §9.1,
§9.6). ``SimState`` inherits it and provides the lock and the parts it names; every method takes the lock
once, as ``SimState``'s do.
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hubspot_sim.config import Config
from hubspot_sim.journal_subscriptions import APP_INSTALL_EVENT_TYPE, APP_UNINSTALL_EVENT_TYPE, JournalSubscriptions
from hubspot_sim.notifier import Notifier
from hubspot_sim.oauth import APP_TOKEN_PREFIX, ISSUED_PREFIX, App, OAuthApp, OAuthRegistry


class AuthOutcome(enum.Enum):
    """How a bearer token fared."""

    OK = "ok"
    MISSING = "missing"
    UNKNOWN = "unknown"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated (or refused) caller, the key its rate window is kept under, and who it is.

    ``portal_id`` is the account a portal token acts for; ``app_id`` the app it writes as (the ``sourceId``
    of the changes it fires), if known; ``is_app`` marks an app token (client_credentials), which reads
    the journal and acts for no portal.
    """

    outcome: AuthOutcome
    window_key: str = ""
    portal_id: int | None = None
    app_id: str | None = None
    is_app: bool = False


class Accounts:
    """Authentication, tokens, apps and installs (see the module docstring); a base of ``SimState``."""

    _lock: threading.Lock
    _clock: Callable[[], float]
    _config: Config
    _oauth: OAuthRegistry
    _token_throttled_until: float
    notifier: Notifier
    journal_subscriptions: JournalSubscriptions

    def authenticate(self, token: str | None) -> Caller:
        """Check a bearer token: a live OAuth token, a configured one, or any token when none is configured.

        OAuth tokens share one rate window per portal (HubSpot limits per installing account), so that a
        refresh does not grant a fresh window; other tokens each have their own.
        """
        if not token:
            return Caller(AuthOutcome.MISSING)
        with self._lock:
            issued = self._oauth.lookup(token)
            if issued is not None:
                expires_at, portal = issued
                if expires_at <= self._clock():
                    return Caller(AuthOutcome.EXPIRED)
                client = self._oauth.client_of(token)
                app = self._oauth.app_of_client(client) if client is not None else None
                app_id = app.app_id if app is not None else None
                return Caller(AuthOutcome.OK, f"portal:{portal}", portal, app_id)
            app_token = self._oauth.app_token(token)
            if app_token is not None:
                if app_token[0] <= self._clock():
                    return Caller(AuthOutcome.EXPIRED)
                return Caller(AuthOutcome.OK, f"app:{app_token[1]}", None, app_token[1], is_app=True)
            if token.startswith((ISSUED_PREFIX, APP_TOKEN_PREFIX)):
                return Caller(AuthOutcome.UNKNOWN)  # revoked at an uninstall, or never issued
            if self._config.tokens and token not in self._config.tokens:
                return Caller(AuthOutcome.UNKNOWN)
            portal = self._config.portal_id
            if self._oauth.is_uninstalled(portal):
                return Caller(AuthOutcome.UNKNOWN)
            apps = self._oauth.apps()
            return Caller(AuthOutcome.OK, f"token:{token}", portal, apps[0].app_id if apps else None)

    def register_oauth_app(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        portal_id: int,
    ) -> None:
        """``POST /_sim/oauth-apps``: refreshes with these credentials issue tokens for ``portal_id``."""
        with self._lock:
            self._oauth.register(client_id, OAuthApp(client_secret, refresh_token, portal_id))

    def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> dict[str, Any]:
        """Issue an access token living the configured ``oauth_token_ttl_s`` (see ``OAuthRegistry.refresh``).

        Raises RefreshRefusedError when the client, secret or refresh token is wrong.
        """
        with self._lock:
            now, ttl_s = self._clock(), self._config.oauth_token_ttl_s
            return self._oauth.refresh(client_id, client_secret, refresh_token, now=now, ttl_s=ttl_s)

    def grant_app_token(self, client_id: str, client_secret: str) -> dict[str, Any]:
        """The ``client_credentials`` grant: an app token for the journal. Raises RefreshRefusedError."""
        with self._lock:
            now, ttl_s = self._clock(), self._config.oauth_token_ttl_s
            return self._oauth.client_credentials(client_id, client_secret, now=now, ttl_s=ttl_s)

    def token_retry_after(self) -> int:
        """Seconds the token endpoint still answers 429 (``token_429_s``), 0 when it is not throttled."""
        with self._lock:
            left = self._token_throttled_until - self._clock()
            return max(1, math.ceil(left)) if left > 0 else 0

    def register_app(self, app: App) -> None:
        """``POST /_sim/apps``: an app whose secret signs its pushes and whose credentials get app tokens."""
        with self._lock:
            self._oauth.register_app(app)

    def apps_json(self) -> dict[str, Any]:
        """``GET /_sim/apps``: the apps (secrets never shown) and the uninstalled portals."""
        with self._lock:
            listed = [{"appId": a.app_id, "clientId": a.client_id} for a in self._oauth.apps()]
            return {"apps": listed, "uninstalledPortals": sorted(self._oauth.uninstalled())}

    def uninstall(self, portal_id: int) -> dict[str, Any]:
        """``POST /_sim/uninstall``: the portal's tokens 401, its refresh token refused, its journal
        subscriptions removed, nothing pushed for it; an app-lifecycle event journalled (§9.6)."""
        with self._lock:
            revoked = self._oauth.uninstall(portal_id)
            app_ids = [a.app_id for a in self._oauth.apps()]
            now = self._clock()
        removed = self.journal_subscriptions.delete_portal(portal_id)
        journalled = self.notifier.lifecycle(portal_id, APP_UNINSTALL_EVENT_TYPE, app_ids, now)
        return {"revokedTokens": revoked, "journalSubscriptionsRemoved": removed, "lifecycleEvents": journalled}

    def install(self, portal_id: int) -> dict[str, Any]:
        """``POST /_sim/install``: the portal's refresh tokens (and static tokens) work again; journalled."""
        with self._lock:
            self._oauth.install(portal_id)
            app_ids = [a.app_id for a in self._oauth.apps()]
            now = self._clock()
        return {"lifecycleEvents": self.notifier.lifecycle(portal_id, APP_INSTALL_EVENT_TYPE, app_ids, now)}
