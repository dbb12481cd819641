"""Credentials: which HubSpot token serves which portal, and which rate-limit bucket it spends.

Single-portal mode uses ``HUBSPOT_ACCESS_TOKEN`` for every association. ``HUBLINK_PORTALS_FILE`` maps
portal ids to a private-app token or to an OAuth app (client id, client secret, refresh token)::

    portals:
      "12345":
        token_env: PORTAL_12345_TOKEN          # a private app's token (or token: inline)
      "67890":
        oauth:
          client_id: 4f1c...
          client_secret_env: HUBSPOT_OAUTH_CLIENT_SECRET
          refresh_token_env: PORTAL_67890_REFRESH_TOKEN
        rate_limit: 110/10s                    # optional: this portal's own budget

OAuth access tokens live 30 minutes; they are cached in Redis (``token:<portal>``) for every worker, and
refreshed a few minutes before they expire, under a short Redis lock so that one worker refreshes while
the others keep using the old token. A token endpoint that answers 429 or 5xx (or not at all) raises
:class:`~hublink.domain.errors.TokenEndpointError` with its ``Retry-After``; this process then asks it
nothing more for that portal until the wait is over (docs/reference/hubspot.md §9.6). Tokens are held in
objects whose ``repr`` hides them; buckets are named by digests and ids, never by a token.

A refresh HubSpot refuses as ``BAD_REFRESH_TOKEN`` means the app was uninstalled from the portal (or the
refresh token revoked; §9.6): when the refused token was a rotated one cached here and the portals file
names another, the cached one is dropped and the file's is tried at once (an operator who put a new
install's refresh token in the file needs nothing cleared in Redis); the refusal itself opens the
portal's circuit as ``app_uninstalled`` (``hublink.delivery.circuit``).

The Webhooks Journal takes neither: it takes the *app's* token, got with ``HUBSPOT_CLIENT_ID`` and
``HUBSPOT_CLIENT_SECRET`` by the ``client_credentials`` grant (docs/reference/hubspot.md §9.1).
:class:`AppTokens` keeps it in Redis (``apptoken:<client>``) for every worker and fetches a new one before
it expires, under the same kind of lock. Rate-limit buckets follow HubSpot's accounting: a private app
per app (its token), an OAuth app per app and installing portal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis import Redis

from hublink.config.portals import OAuthApp, PortalEntry
from hublink.delivery.hubspot import HubSpotClient
from hublink.domain.errors import (
    ConfigError,
    DeliveryError,
    HubSpotErrorDetail,
    PermanentError,
    RateLimitedError,
    ServerError,
    TokenEndpointError,
    TokenRefreshError,
    UnknownPortalError,
)
from hublink.domain.limits import RateLimit
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys, digest

log = logging.getLogger("hublink.credentials")

#: Refresh this long before HubSpot's expiry, so that no call goes out with a token about to lapse.
REFRESH_MARGIN_S = 300
#: How long one worker may hold the refresh lock.
REFRESH_LOCK_MS = 15_000
#: The scope the journal's reads need (docs/reference/hubspot.md §9.1).
JOURNAL_READ_SCOPES = ("developer.webhooks_journal.read",)
#: The scopes managing journal subscriptions needs besides (names as the simulator grants them: HubSpot's
#: spec calls them webhooks-journal-subscription-read/-management; one place to correct).
JOURNAL_SUBSCRIPTION_SCOPES = (
    "developer.webhooks_journal.read",
    "developer.webhooks_journal.subscriptions.read",
    "developer.webhooks_journal.subscriptions.write",
)


#: The longest a portal waits on its token endpoint's ``Retry-After`` (a throttle that long is unlikely; a
#: wrong hint must not hold a portal's work for an hour), and the wait when the endpoint gave none.
TOKEN_ENDPOINT_MAX_WAIT_S = 60.0
TOKEN_ENDPOINT_DEFAULT_WAIT_S = 10.0
#: The ``token:<portal>`` field remembering that HubSpot refused the refresh token (BAD_REFRESH_TOKEN).
REFUSED_FIELD = "refused"
#: HubSpot's reason for a refresh token it no longer honours (§9.6).
REFRESH_REFUSED = "BAD_REFRESH_TOKEN"
#: The wait when another worker holds the refresh lock and no valid token is cached: its refresh is quick.
REFRESH_IN_PROGRESS_WAIT_S = 1.0


def token_wait_s(error: TokenRefreshError) -> float:
    """How long a portal's work waits after ``error``: the endpoint's Retry-After (capped), else a default."""
    if isinstance(error, TokenEndpointError):
        if error.retry_after_s is None:
            return TOKEN_ENDPOINT_DEFAULT_WAIT_S
        return min(max(error.retry_after_s, 1.0), TOKEN_ENDPOINT_MAX_WAIT_S)
    return REFRESH_IN_PROGRESS_WAIT_S


@dataclass(frozen=True, slots=True)
class Credential:
    """A bearer token, the rate-limit bucket its requests count against, and that bucket's budget."""

    token: str = field(repr=False)
    bucket: str
    rate_limit: RateLimit | None = None
    refreshable: bool = False
    #: The host serving the portal's account (None: HUBSPOT_BASE_URL).
    base_url: str | None = None
    #: The account's time zone (None: HUBLINK_ACCOUNT_TIMEZONE): its daily limit resets at midnight there.
    time_zone: str | None = None
    #: True when this OAuth token was refreshed just now (a 401 on it is the app's, not the token's age).
    refreshed: bool = False


class CredentialProvider(Protocol):
    """Finds the credential for a portal (None: single-portal mode)."""

    def for_portal(self, portal_id: str | None) -> Credential:
        """Return the credential, or raise UnknownPortalError / TokenRefreshError."""
        ...

    def invalidate(self, portal_id: str | None) -> None:
        """Forget a cached token HubSpot refused (OAuth: the next call refreshes)."""
        ...


class StaticCredentials:
    """One private-app token for every portal (single-portal mode)."""

    def __init__(self, token: str) -> None:
        self._credential = Credential(token, f"app-{digest(token)[:16]}")

    def for_portal(self, portal_id: str | None) -> Credential:
        """The one configured credential, whatever the portal."""
        return self._credential

    def invalidate(self, portal_id: str | None) -> None:
        """A static token cannot be refreshed."""


class PortalCredentials:
    """Credentials per portal from the portals file, with OAuth tokens cached and refreshed in Redis."""

    def __init__(
        self,
        portals: Mapping[str, PortalEntry],
        redis: Redis,
        keys: Keys,
        client: HubSpotClient,
        fallback: StaticCredentials | None = None,
        clock: Any = time.time,
    ) -> None:
        self._portals = portals
        self._redis = redis
        self._keys = keys
        self._client = client
        self._fallback = fallback
        self._clock = clock
        #: Portals whose token endpoint refused this process a refresh: until when, and its refusal.
        self._throttled: dict[str, tuple[float, TokenEndpointError]] = {}

    @property
    def portal_ids(self) -> tuple[str, ...]:
        """The portals the file names."""
        return tuple(self._portals)

    @property
    def journal_portal_ids(self) -> tuple[str, ...]:
        """The portals whose Webhooks Journal is read (``journal: true``)."""
        return tuple(p for p, entry in self._portals.items() if entry.journal)

    def base_url_of(self, portal_id: str) -> str | None:
        """The host serving the portal's account (None: HUBSPOT_BASE_URL), without touching its token."""
        entry = self._portals.get(portal_id)
        return entry.base_url if entry is not None else None

    def for_portal(self, portal_id: str | None) -> Credential:
        """The portal's credential; unknown portals raise UnknownPortalError (dead-lettered with that reason)."""
        entry = self._portals.get(portal_id) if portal_id else None
        if entry is None:
            if self._fallback is not None and portal_id is None:
                return self._fallback.for_portal(None)
            raise UnknownPortalError(portal_id)
        if entry.token is not None:
            return Credential(
                entry.token,
                f"app-{digest(entry.token)[:16]}",
                entry.rate_limit,
                base_url=entry.base_url,
                time_zone=entry.time_zone,
            )
        assert entry.oauth is not None
        token, refreshed = self._access_token(entry.portal_id, entry.oauth, entry.base_url)
        return Credential(
            token,
            f"oauth-{digest(entry.oauth.client_id)[:12]}-{entry.portal_id}",
            entry.rate_limit,
            refreshable=True,
            base_url=entry.base_url,
            time_zone=entry.time_zone,
            refreshed=refreshed,
        )

    def invalidate(self, portal_id: str | None) -> None:
        """Drop the cached access token (kept: a rotated refresh token)."""
        if portal_id:
            forget_access_token(self._redis, self._keys, portal_id)

    def _access_token(self, portal_id: str, app: OAuthApp, base_url: str | None = None) -> tuple[str, bool]:
        """The portal's access token, and whether it was refreshed by this call."""
        key = self._keys.oauth_token(portal_id)
        with store_errors():
            cached = {text(k): text(v) for k, v in self._redis.hgetall(key).items()}
        now = self._clock()
        if cached.get("access_token") and float(cached.get("expires_at", 0)) - REFRESH_MARGIN_S > now:
            return cached["access_token"], False
        if REFUSED_FIELD in cached:
            # HubSpot refused this portal's refresh token (uninstalled): not asked again until a probe.
            raise PermanentError(
                HubSpotErrorDetail(
                    status=400,
                    sub_category=REFRESH_REFUSED,
                    message=f"{cached[REFUSED_FIELD]} (refused before; asked again at the next probe)",
                )
            )
        throttled = self._throttled.get(portal_id)
        if throttled is not None and throttled[0] > now:
            # The endpoint asked to wait: asking again before then only costs another 429.
            if cached.get("access_token") and float(cached.get("expires_at", 0)) > now + 5:
                return cached["access_token"], False
            error = throttled[1]
            raise TokenEndpointError(error.detail, max(throttled[0] - now, 0.0))
        self._throttled.pop(portal_id, None)
        lock = self._keys.oauth_token_lock(portal_id)
        with store_errors():
            got_lock = self._redis.set(lock, "1", nx=True, px=REFRESH_LOCK_MS)
        if not got_lock:
            # Another worker is refreshing: use the old token while it is still valid, else retry shortly.
            if cached.get("access_token") and float(cached.get("expires_at", 0)) > now + 5:
                return cached["access_token"], False
            raise TokenRefreshError(HubSpotErrorDetail(message=f"portal {portal_id}: token refresh in progress"))
        try:
            refresh_token = cached.get("refresh_token") or app.refresh_token
            try:
                try:
                    answer = self._client.refresh_token(
                        app.client_id, app.client_secret, refresh_token, base_url=base_url
                    )
                except PermanentError as exc:
                    if not (_refused_token(exc) and refresh_token != app.refresh_token):
                        raise
                    # The cached (rotated) token is refused, the file names another: a new install's, maybe.
                    with store_errors():
                        self._redis.hdel(key, "refresh_token")
                    log.warning("cached refresh token refused; trying the file's", extra={"portal_id": portal_id})
                    answer = self._client.refresh_token(
                        app.client_id, app.client_secret, app.refresh_token, base_url=base_url
                    )
            except DeliveryError as exc:
                if isinstance(exc, PermanentError):
                    if _refused_token(exc):
                        # Remembered for every worker: a drain waking for the uninstalled portal asks nothing
                        # until a probe or an operator forgets it (invalidate).
                        with store_errors():
                            self._redis.hset(key, mapping={REFUSED_FIELD: exc.detail.message[:200]})
                            self._redis.expire(key, 86400 * 30)
                    raise
                hint = exc.retry_after_s if isinstance(exc, RateLimitedError | ServerError) else None
                refused = TokenEndpointError(exc.detail, hint)
                self._throttled[portal_id] = (now + token_wait_s(refused), refused)
                if cached.get("access_token") and float(cached.get("expires_at", 0)) > now + 5:
                    # The old token still serves while the endpoint is throttled: the work goes on with it.
                    return cached["access_token"], False
                log.warning(
                    "oauth token endpoint refused a refresh; the portal waits",
                    extra={"portal_id": portal_id, "status": exc.status, "retry_after_s": hint},
                )
                raise refused from None
            access = answer.get("access_token")
            if not isinstance(access, str) or not access:
                raise TokenEndpointError(HubSpotErrorDetail(message=f"portal {portal_id}: no access_token in answer"))
            expires_in = float(answer.get("expires_in") or 1800)
            fields: dict[Any, Any] = {"access_token": access, "expires_at": str(now + expires_in)}
            if isinstance(answer.get("refresh_token"), str):
                fields["refresh_token"] = answer["refresh_token"]
            with store_errors():
                pipe = self._redis.pipeline(transaction=True)
                pipe.hset(key, mapping=fields)
                pipe.expire(key, int(expires_in) + 86400 * 30)
                pipe.execute()
            log.info("oauth token refreshed", extra={"portal_id": portal_id, "expires_in": expires_in})
            return access, True
        finally:
            with store_errors():
                self._redis.delete(lock)


def _refused_token(error: DeliveryError) -> bool:
    """The token endpoint's ``BAD_REFRESH_TOKEN`` (docs/reference/hubspot.md §9.6)."""
    return (error.detail.sub_category or "").upper() == REFRESH_REFUSED


def forget_access_token(redis: Redis, keys: Keys, portal_id: str) -> None:
    """Drop a portal's cached OAuth access token and a remembered refusal (its refresh token stays): the next
    call refreshes first."""
    with store_errors():
        redis.hdel(keys.oauth_token(portal_id), "access_token", "expires_at", REFUSED_FIELD)


class AppTokens:
    """The app's ``client_credentials`` token for the Webhooks Journal, cached in Redis and renewed before expiry.

    Keys owned: ``apptoken:<client>`` and its ``:lock``. Fails closed: raises StoreUnavailableError without
    Redis, DeliveryError when HubSpot does not issue a token (a 429 from the token endpoint included: the
    journal poll is tried again at the next interval).
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        client: HubSpotClient,
        client_id: str,
        client_secret: str,
        *,
        scopes: tuple[str, ...] = JOURNAL_READ_SCOPES,
        base_url: str | None = None,
        clock: Any = time.time,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._client = client
        self._client_id = client_id
        self._client_secret = client_secret
        self._scopes = scopes
        self._base_url = base_url
        self._clock = clock

    def __repr__(self) -> str:
        return f"AppTokens(client={digest(self._client_id)[:8]})"

    def token(self) -> str:
        """The app token; a new one is fetched when the cached one is within its margin of expiry."""
        key = self._keys.app_token(self._client_id)
        with store_errors():
            cached = {text(k): text(v) for k, v in self._redis.hgetall(key).items()}
        now = self._clock()
        if cached.get("access_token") and float(cached.get("renew_at", 0)) > now:
            return cached["access_token"]
        lock = self._keys.app_token_lock(self._client_id)
        with store_errors():
            got_lock = self._redis.set(lock, "1", nx=True, px=REFRESH_LOCK_MS)
        if not got_lock:
            # Another worker is fetching: the old token serves while it is still valid.
            if cached.get("access_token") and float(cached.get("expires_at", 0)) > now + 5:
                return cached["access_token"]
            raise TokenRefreshError(HubSpotErrorDetail(message="app token: another worker is fetching it"))
        try:
            answer = self._client.app_token(self._client_id, self._client_secret, self._scopes, base_url=self._base_url)
            access = answer.get("access_token")
            if not isinstance(access, str) or not access:
                raise TokenRefreshError(HubSpotErrorDetail(message="app token: no access_token in answer"))
            expires_in = float(answer.get("expires_in") or 1800)
            # Renewed REFRESH_MARGIN_S early, or half way for a token that lives less than twice that.
            renew_at = now + expires_in - min(REFRESH_MARGIN_S, expires_in / 2)
            with store_errors():
                pipe = self._redis.pipeline(transaction=True)
                pipe.hset(key, mapping={"access_token": access, "expires_at": now + expires_in, "renew_at": renew_at})
                pipe.expire(key, max(int(expires_in), 1))
                pipe.execute()
            log.info("app token fetched", extra={"expires_in": expires_in})
            return access
        finally:
            with store_errors():
                self._redis.delete(lock)

    def invalidate(self) -> None:
        """Forget the cached token (HubSpot refused it): the next call fetches another."""
        with store_errors():
            self._redis.delete(self._keys.app_token(self._client_id))


def journal_tokens(
    settings_client_id: str | None, settings_client_secret: str | None, redis: Redis, keys: Keys, client: HubSpotClient
) -> AppTokens:
    """The app tokens journal portals are read with; ConfigError naming the variable when one is missing."""
    for name, value in (("HUBSPOT_CLIENT_ID", settings_client_id), ("HUBSPOT_CLIENT_SECRET", settings_client_secret)):
        if not value:
            raise ConfigError(
                f"{name} is required when a portal has journal: true (the Webhooks Journal takes the app's token)"
            )
    return AppTokens(redis, keys, client, settings_client_id or "", settings_client_secret or "")
