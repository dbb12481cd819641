"""Settings: the one frozen configuration object, read from the environment once at start-up.

Every variable HubLink reads is parsed here, with its coercer and its default documented where it is
defined. A bad value stops start-up with one line naming the variable. Secrets are kept out of ``repr``.
Nothing else in HubLink reads ``os.environ``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Literal, TypeVar
from urllib.parse import unquote, urlsplit

from hublink.config.secret_files import with_secret_files
from hublink.domain.errors import ConfigError
from hublink.domain.limits import RateLimit
from hublink.domain.subscriptions import MIN_CONCURRENT_REQUESTS
from hublink.domain.times import check_time_zone

T = TypeVar("T")
Role = Literal["web", "worker"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """HubLink's configuration. Field names mirror the environment variables (see ``.env.example``)."""

    # --- Redis and queueing ---
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)  # REDIS_URL (may hold a password)
    redis_prefix: str = "hl:"  # HUBLINK_REDIS_PREFIX: prefix of every HubLink key (RQ keeps rq:)
    queue_name: str = "hublink"  # HUBLINK_QUEUE: the RQ queue drain jobs go to
    redis_timeout_s: float = 2.0  # HUBLINK_REDIS_TIMEOUT_S: intake must answer well inside HubSpot's 5 s
    # REDIS_SENTINELS: "host:port,host:port"; with REDIS_SENTINEL_MASTER, every client finds the primary
    # through Sentinel and follows a failover (REDIS_URL then gives only the database, user and password).
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None  # REDIS_SENTINEL_MASTER: the service name the sentinels monitor
    redis_sentinel_password: str | None = field(default=None, repr=False)  # REDIS_SENTINEL_PASSWORD
    redis_min_replicas: int = 0  # HUBLINK_REDIS_MIN_REPLICAS: intake's 2xx waits for this many replicas (WAIT)
    redis_wait_ms: int = 500  # HUBLINK_REDIS_WAIT_MS: how long intake's WAIT may take; past it, 503

    # --- intake ---
    api_token: str | None = field(default=None, repr=False)  # HUBLINK_API_TOKEN (required by web)
    admin_token: str | None = field(default=None, repr=False)  # HUBLINK_ADMIN_TOKEN
    max_body_bytes: int = 1_048_576  # HUBLINK_MAX_BODY_BYTES
    body_timeout_s: float = 10.0  # HUBLINK_BODY_TIMEOUT_S: a body not received by then gets 408
    max_items: int = 100  # HUBLINK_MAX_ITEMS: items per direct API request

    # --- HubSpot ---
    hubspot_base_url: str = "https://api.hubapi.com"  # HUBSPOT_BASE_URL
    hubspot_access_token: str | None = field(default=None, repr=False)  # HUBSPOT_ACCESS_TOKEN
    hubspot_connect_timeout_s: float = 3.05  # HUBSPOT_CONNECT_TIMEOUT_S
    hubspot_read_timeout_s: float = 10.0  # HUBSPOT_READ_TIMEOUT_S
    hubspot_rate_limit: RateLimit = RateLimit(100, 10.0)  # HUBSPOT_RATE_LIMIT
    hubspot_search_rate_limit: RateLimit = RateLimit(5, 1.0)  # HUBSPOT_SEARCH_RATE_LIMIT
    rate_limit_margin: float = 0.05  # HUBLINK_RATE_LIMIT_MARGIN: share of the limit left unused
    # HUBSPOT_BATCH_SIZE: 1..2000 associations claimed for one batch call. HubSpot's own cap for association
    # creates (default and labelled) and removals: a bad input no longer sinks its batch (the drain isolates
    # it), so the default fills each call. Reads (reconcile's batch/read) go in chunks of 1,000 whatever this is.
    batch_size: int = 2000
    batch_window_ms: int = 0  # HUBLINK_BATCH_WINDOW_MS: wait this long for a batch to fill; 0 = never

    # --- retries and dead letters ---
    max_attempts: int = 10  # HUBLINK_MAX_ATTEMPTS
    retry_base_s: float = 2.0  # HUBLINK_RETRY_BASE_S
    retry_cap_s: float = 600.0  # HUBLINK_RETRY_CAP_S
    fresh_record_grace_s: float = 120.0  # HUBLINK_FRESH_RECORD_GRACE_S
    daily_limit_defer_s: float = 3600.0  # HUBLINK_DAILY_LIMIT_DEFER_S: a DAILY 429's wait when no zone is known
    max_retry_after_s: float = 3600.0  # HUBLINK_MAX_RETRY_AFTER_S: caps HubSpot's Retry-After hints
    account_timezone: str = "UTC"  # HUBLINK_ACCOUNT_TIMEZONE: where HubSpot's daily limit resets at midnight
    daily_reserve: float = 0.05  # HUBLINK_DAILY_RESERVE: share of the daily budget left to other apps
    dead_letter_ttl_days: float = 30.0  # HUBLINK_DEAD_LETTER_TTL_DAYS
    dead_letter_max: int = 1_000_000  # HUBLINK_DEAD_LETTER_MAX: oldest dropped (and counted) beyond
    lease_s: float = 30.0  # HUBLINK_LEASE_S: claimed work returns to its lane if not settled by then
    max_limiter_wait_ms: int = 500  # HUBLINK_MAX_LIMITER_WAIT_MS: longer waits give the worker back

    # --- sources and rules ---
    hubspot_client_secret: str | None = field(default=None, repr=False)  # HUBSPOT_CLIENT_SECRET
    accept_legacy_signatures: bool = False  # HUBSPOT_ACCEPT_LEGACY_SIGNATURES
    public_url: str | None = None  # HUBLINK_PUBLIC_URL: the base URL HubSpot calls
    trust_proxy: bool = False  # HUBLINK_TRUST_PROXY: rebuild the public URL from X-Forwarded-*
    dedup_window_s: int = 86_400  # HUBLINK_DEDUP_WINDOW_S
    rules_file: str | None = None  # HUBLINK_RULES_FILE
    portals_file: str | None = None  # HUBLINK_PORTALS_FILE
    lookup_cache_ttl_s: int = 300  # HUBLINK_LOOKUP_CACHE_TTL_S
    label_cache_ttl_s: int = 3600  # HUBLINK_LABEL_CACHE_TTL_S: how long HubSpot's label definitions are kept

    # --- the app's webhook settings and subscriptions (flask --app web hubspot subscriptions) ---
    hubspot_app_id: str | None = None  # HUBSPOT_APP_ID: the public app whose webhooks HubLink sets up
    # HUBSPOT_DEVELOPER_TOKEN: Bearer token with developers-read/-write (the 2026-03 webhooks API's OAuth scopes)
    hubspot_developer_token: str | None = field(default=None, repr=False)
    # HUBLINK_WEBHOOK_MAX_CONCURRENCY: the app's throttling.maxConcurrentRequests; HubSpot's default is 10, its floor 6
    webhook_max_concurrency: int = 10

    # --- operations ---
    metrics_token: str | None = field(default=None, repr=False)  # HUBLINK_METRICS_TOKEN
    alert_webhook_url: str | None = field(default=None, repr=False)  # HUBLINK_ALERT_WEBHOOK_URL
    alert_interval_s: float = 300.0  # HUBLINK_ALERT_INTERVAL_S
    alert_error_rate: float = 0.2  # HUBLINK_ALERT_ERROR_RATE
    # HUBLINK_ALERT_PAGERDUTY_KEY: an Events v2 integration (routing) key: circuits trigger and resolve incidents
    alert_pagerduty_key: str | None = field(default=None, repr=False)
    alert_pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"  # HUBLINK_ALERT_PAGERDUTY_URL
    history_days: float = 7.0  # HUBLINK_HISTORY_DAYS: accepted requests and their events' outcomes kept this long
    history_max_mb: float = 256.0  # HUBLINK_HISTORY_MAX_MB: ... within this much Redis (oldest dropped first)
    circuit_errors: int = 20  # HUBLINK_CIRCUIT_ERRORS: this many 5xx/timeouts of one portal in the window open it
    circuit_window_s: float = 60.0  # HUBLINK_CIRCUIT_WINDOW_S: the window they are counted in
    circuit_probe_s: float = 30.0  # HUBLINK_CIRCUIT_PROBE_S: an open circuit tries one call this often
    journal_poll_s: float = 5.0  # HUBLINK_JOURNAL_POLL_S: journal portals have their Webhooks Journal read this often
    log_level: str = "INFO"  # HUBLINK_LOG_LEVEL
    secret_key: str | None = field(default=None, repr=False)  # HUBLINK_SECRET_KEY: signs admin sessions
    cookie_secure: bool = False  # HUBLINK_COOKIE_SECURE: Secure admin cookie (always when public_url is https)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read every variable once; raise ConfigError naming the first bad one."""
        environ = with_secret_files(environ)  # NAME_FILE gives a secret variable from a file
        values: dict[str, object] = {}

        def get(name: str, attr: str, coerce: Callable[[str], T]) -> None:
            raw = environ.get(name)
            if raw is None or raw.strip() == "":
                return
            try:
                values[attr] = coerce(raw.strip())
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None

        for name, attr, coerce in _VARIABLES:
            get(name, attr, coerce)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check cross-field rules; raise ConfigError naming the variable."""
        if not 1 <= self.batch_size <= 2000:
            raise ConfigError(f"HUBSPOT_BATCH_SIZE: expected 1..2000, got {self.batch_size}")
        if not 1 <= self.max_items <= 1000:
            raise ConfigError(f"HUBLINK_MAX_ITEMS: expected 1..1000, got {self.max_items}")
        if self.max_attempts < 1:
            raise ConfigError(f"HUBLINK_MAX_ATTEMPTS: expected at least 1, got {self.max_attempts}")
        if not 0 <= self.rate_limit_margin < 1:
            raise ConfigError(f"HUBLINK_RATE_LIMIT_MARGIN: expected 0 <= m < 1, got {self.rate_limit_margin}")
        if not 0 <= self.daily_reserve < 1:
            raise ConfigError(f"HUBLINK_DAILY_RESERVE: expected 0 <= r < 1, got {self.daily_reserve}")
        if self.circuit_errors < 1:
            raise ConfigError(f"HUBLINK_CIRCUIT_ERRORS: expected at least 1, got {self.circuit_errors}")
        if self.circuit_window_s <= 0:
            raise ConfigError(f"HUBLINK_CIRCUIT_WINDOW_S: expected more than 0, got {self.circuit_window_s}")
        if self.circuit_probe_s < 0.1:
            raise ConfigError(f"HUBLINK_CIRCUIT_PROBE_S: expected at least 0.1, got {self.circuit_probe_s}")
        if self.journal_poll_s < 0.1:
            raise ConfigError(f"HUBLINK_JOURNAL_POLL_S: expected at least 0.1, got {self.journal_poll_s}")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"REDIS_URL: expected redis://, rediss:// or unix://, got {self.redis_url!r}")
        if bool(self.redis_sentinels) != bool(self.redis_sentinel_master):
            given, missing = ("REDIS_SENTINELS", "REDIS_SENTINEL_MASTER")[:: 1 if self.redis_sentinels else -1]
            raise ConfigError(f"{given}: set without {missing} (Sentinel needs both, or neither)")
        if self.redis_sentinels and self.redis_url.startswith("unix://"):
            raise ConfigError("REDIS_URL: with REDIS_SENTINELS, expected redis:// or rediss:// (Sentinel names a host)")
        if self.redis_min_replicas > 0 and not 1 <= self.redis_wait_ms <= 60_000:
            # WAIT with a timeout of 0 blocks for ever: intake must always answer.
            raise ConfigError(f"HUBLINK_REDIS_WAIT_MS: expected 1..60000 with replicas, got {self.redis_wait_ms}")
        if not self.alert_pagerduty_url.startswith(("http://", "https://")):
            raise ConfigError(f"HUBLINK_ALERT_PAGERDUTY_URL: expected an http(s) URL, got {self.alert_pagerduty_url!r}")
        if not self.hubspot_base_url.startswith(("http://", "https://")):
            raise ConfigError(f"HUBSPOT_BASE_URL: expected an http(s) URL, got {self.hubspot_base_url!r}")
        if self.webhook_max_concurrency < MIN_CONCURRENT_REQUESTS:  # HubSpot asks for more than 5
            raise ConfigError(
                f"HUBLINK_WEBHOOK_MAX_CONCURRENCY: expected at least {MIN_CONCURRENT_REQUESTS}, "
                f"got {self.webhook_max_concurrency}"
            )

    def require(self, role: Role) -> None:
        """Refuse to start ``role`` without the variables it needs; the message names the first missing."""
        needed: list[tuple[str, object]] = []
        if role == "web":
            needed.append(("HUBLINK_API_TOKEN", self.api_token))
        if role == "worker" and not self.portals_file:
            needed.append(("HUBSPOT_ACCESS_TOKEN", self.hubspot_access_token))
        for name, value in needed:
            if not value:
                raise ConfigError(f"{name} is required but not set")

    @property
    def is_cookie_secure(self) -> bool:
        """Whether the dashboard's cookie is sent only over HTTPS: HUBLINK_COOKIE_SECURE, or an https public URL."""
        return self.cookie_secure or (self.public_url or "").lower().startswith("https://")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every configured secret value, for the log redactor."""
        names = (
            "api_token",
            "admin_token",
            "hubspot_access_token",
            "hubspot_client_secret",
            "metrics_token",
            "alert_webhook_url",
            "alert_pagerduty_key",
            "secret_key",
            "redis_sentinel_password",
            "hubspot_developer_token",
        )
        found = [v for n in names if isinstance(v := getattr(self, n), str) and v]
        password = urlsplit(self.redis_url).password
        if password:
            found += [password, unquote(password)]
        return tuple(found)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value < 0 or value != value:
        raise ValueError(f"expected a non-negative number, got {text!r}")
    return value


def _sentinels(text: str) -> tuple[tuple[str, int], ...]:
    found = []
    for item in text.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected comma-separated host:port, got {item.strip()!r}")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


def _app_id(text: str) -> str:
    if not (text.isascii() and text.isdigit() and len(text) <= 20):
        raise ValueError(f"expected an app id of 1 to 20 digits, got {text!r}")
    return text


def _url(text: str) -> str:
    return text.rstrip("/")


def _level(text: str) -> str:
    upper = text.upper()
    if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {text!r}")
    return upper


_VARIABLES: tuple[tuple[str, str, Callable[[str], object]], ...] = (
    ("REDIS_URL", "redis_url", str),
    ("HUBLINK_REDIS_PREFIX", "redis_prefix", str),
    ("HUBLINK_QUEUE", "queue_name", str),
    ("HUBLINK_REDIS_TIMEOUT_S", "redis_timeout_s", _positive_float),
    ("REDIS_SENTINELS", "redis_sentinels", _sentinels),
    ("REDIS_SENTINEL_MASTER", "redis_sentinel_master", str),
    ("REDIS_SENTINEL_PASSWORD", "redis_sentinel_password", str),
    ("HUBLINK_REDIS_MIN_REPLICAS", "redis_min_replicas", _positive_int),
    ("HUBLINK_REDIS_WAIT_MS", "redis_wait_ms", _positive_int),
    ("HUBLINK_API_TOKEN", "api_token", str),
    ("HUBLINK_ADMIN_TOKEN", "admin_token", str),
    ("HUBLINK_MAX_BODY_BYTES", "max_body_bytes", _positive_int),
    ("HUBLINK_BODY_TIMEOUT_S", "body_timeout_s", _positive_float),
    ("HUBLINK_MAX_ITEMS", "max_items", _positive_int),
    ("HUBSPOT_BASE_URL", "hubspot_base_url", _url),
    ("HUBSPOT_ACCESS_TOKEN", "hubspot_access_token", str),
    ("HUBSPOT_CONNECT_TIMEOUT_S", "hubspot_connect_timeout_s", _positive_float),
    ("HUBSPOT_READ_TIMEOUT_S", "hubspot_read_timeout_s", _positive_float),
    ("HUBSPOT_RATE_LIMIT", "hubspot_rate_limit", RateLimit.parse),
    ("HUBSPOT_SEARCH_RATE_LIMIT", "hubspot_search_rate_limit", RateLimit.parse),
    ("HUBLINK_RATE_LIMIT_MARGIN", "rate_limit_margin", _positive_float),
    ("HUBSPOT_BATCH_SIZE", "batch_size", _positive_int),
    ("HUBLINK_BATCH_WINDOW_MS", "batch_window_ms", _positive_int),
    ("HUBLINK_MAX_ATTEMPTS", "max_attempts", _positive_int),
    ("HUBLINK_RETRY_BASE_S", "retry_base_s", _positive_float),
    ("HUBLINK_RETRY_CAP_S", "retry_cap_s", _positive_float),
    ("HUBLINK_FRESH_RECORD_GRACE_S", "fresh_record_grace_s", _positive_float),
    ("HUBLINK_DAILY_LIMIT_DEFER_S", "daily_limit_defer_s", _positive_float),
    ("HUBLINK_MAX_RETRY_AFTER_S", "max_retry_after_s", _positive_float),
    ("HUBLINK_ACCOUNT_TIMEZONE", "account_timezone", check_time_zone),
    ("HUBLINK_DAILY_RESERVE", "daily_reserve", _positive_float),
    ("HUBLINK_DEAD_LETTER_TTL_DAYS", "dead_letter_ttl_days", _positive_float),
    ("HUBLINK_DEAD_LETTER_MAX", "dead_letter_max", _positive_int),
    ("HUBLINK_LEASE_S", "lease_s", _positive_float),
    ("HUBLINK_MAX_LIMITER_WAIT_MS", "max_limiter_wait_ms", _positive_int),
    ("HUBSPOT_CLIENT_SECRET", "hubspot_client_secret", str),
    ("HUBSPOT_ACCEPT_LEGACY_SIGNATURES", "accept_legacy_signatures", _bool),
    ("HUBLINK_PUBLIC_URL", "public_url", _url),
    ("HUBLINK_TRUST_PROXY", "trust_proxy", _bool),
    ("HUBLINK_DEDUP_WINDOW_S", "dedup_window_s", _positive_int),
    ("HUBLINK_RULES_FILE", "rules_file", str),
    ("HUBLINK_PORTALS_FILE", "portals_file", str),
    ("HUBLINK_LOOKUP_CACHE_TTL_S", "lookup_cache_ttl_s", _positive_int),
    ("HUBLINK_LABEL_CACHE_TTL_S", "label_cache_ttl_s", _positive_int),
    ("HUBSPOT_APP_ID", "hubspot_app_id", _app_id),
    ("HUBSPOT_DEVELOPER_TOKEN", "hubspot_developer_token", str),
    ("HUBLINK_WEBHOOK_MAX_CONCURRENCY", "webhook_max_concurrency", _positive_int),
    ("HUBLINK_METRICS_TOKEN", "metrics_token", str),
    ("HUBLINK_ALERT_WEBHOOK_URL", "alert_webhook_url", str),
    ("HUBLINK_ALERT_INTERVAL_S", "alert_interval_s", _positive_float),
    ("HUBLINK_ALERT_ERROR_RATE", "alert_error_rate", _positive_float),
    ("HUBLINK_ALERT_PAGERDUTY_KEY", "alert_pagerduty_key", str),
    ("HUBLINK_ALERT_PAGERDUTY_URL", "alert_pagerduty_url", _url),
    ("HUBLINK_HISTORY_DAYS", "history_days", _positive_float),
    ("HUBLINK_HISTORY_MAX_MB", "history_max_mb", _positive_float),
    ("HUBLINK_CIRCUIT_ERRORS", "circuit_errors", _positive_int),
    ("HUBLINK_CIRCUIT_WINDOW_S", "circuit_window_s", _positive_float),
    ("HUBLINK_CIRCUIT_PROBE_S", "circuit_probe_s", _positive_float),
    ("HUBLINK_JOURNAL_POLL_S", "journal_poll_s", _positive_float),
    ("HUBLINK_LOG_LEVEL", "log_level", _level),
    ("HUBLINK_SECRET_KEY", "secret_key", str),
    ("HUBLINK_COOKIE_SECURE", "cookie_secure", _bool),
)

#: Every environment variable Settings reads (the README's configuration table lists the same).
ENVIRONMENT_VARIABLES = tuple(name for name, _, _ in _VARIABLES)
assert {a for _, a, _ in _VARIABLES} <= {f.name for f in fields(Settings)}
