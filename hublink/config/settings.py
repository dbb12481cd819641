"""Settings: the one frozen configuration object, read from the environment once at start-up.

Every variable HubLink reads is a field of :class:`Settings` declared with :func:`variable`: its name,
its coercer, its default and one sentence on what it does live together there. ``Settings.from_env``
reads the variables from those declarations, and ``scripts/gen_docs.py`` writes the configuration page
and ``.env.example`` from them, so the code, the docs and the example cannot disagree. A bad value stops
start-up with one line naming the variable. Secrets are kept out of ``repr``. Nothing else in HubLink
reads ``os.environ``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from hublink.config.secret_files import with_secret_files
from hublink.domain.errors import ConfigError
from hublink.domain.limits import RateLimit
from hublink.domain.subscriptions import MIN_CONCURRENT_REQUESTS
from hublink.domain.times import check_time_zone

T = TypeVar("T")
Role = Literal["web", "worker"]


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


def _rules_source(text: str) -> str:
    if text not in {"file", "redis"}:
        raise ValueError(f"expected file or redis, got {text!r}")
    return text


def _url(text: str) -> str:
    return text.rstrip("/")


def _level(text: str) -> str:
    upper = text.upper()
    if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"expected DEBUG, INFO, WARNING or ERROR, got {text!r}")
    return upper


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: its name, how its text becomes a value, and what it is for.

    ``shown`` is the default as people write it (``100/10s``, ``false``) where the value's ``str`` is not.
    """

    name: str
    doc: str
    coerce: Callable[[str], object] = str
    secret: bool = False
    shown: str | None = None


def variable(
    name: str,
    default: T,
    doc: str,
    coerce: Callable[[str], object] = str,
    *,
    secret: bool = False,
    shown: str | None = None,
) -> T:
    """Declare a Settings field read from ``name``; typed as its default, so mypy sees the field's type."""
    spec = Variable(name, doc, coerce, secret, shown)
    return field(default=default, repr=not secret, metadata={"variable": spec})


def variable_of(item: Field[Any]) -> Variable:
    """The declaration of a Settings field; TypeError naming the field if it was not declared with variable()."""
    spec = item.metadata.get("variable")
    if not isinstance(spec, Variable):
        raise TypeError(f"Settings.{item.name}: declare it with variable(NAME, default, sentence, coercer)")
    return spec


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """HubLink's configuration: one field per environment variable, declared with :func:`variable`."""

    redis_url: str = variable(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "HubLink's Redis; give HubLink its own Redis or an ACL user (see Security). It may hold a password.",
        secret=True,
    )
    redis_prefix: str = variable("HUBLINK_REDIS_PREFIX", "hl:", "Prefix of HubLink's own keys (RQ keeps `rq:`).")
    queue_name: str = variable("HUBLINK_QUEUE", "hublink", "The RQ queue drain jobs go to.")
    redis_timeout_s: float = variable(
        "HUBLINK_REDIS_TIMEOUT_S",
        2.0,
        "Redis socket timeout; intake answers 503 past it, well inside HubSpot's 5 s.",
        _positive_float,
    )
    redis_sentinels: tuple[tuple[str, int], ...] = variable(
        "REDIS_SENTINELS",
        (),
        "`host:port,host:port`: find the primary through these sentinels and follow failovers "
        "(with `REDIS_SENTINEL_MASTER`; `REDIS_URL` then gives only the database, user, password and TLS).",
        _sentinels,
    )
    redis_sentinel_master: str | None = variable(
        "REDIS_SENTINEL_MASTER", None, "The service name the sentinels monitor (e.g. `hublink`)."
    )
    redis_sentinel_password: str | None = variable(
        "REDIS_SENTINEL_PASSWORD",
        None,
        "The sentinels' own password; the primary's is in `REDIS_URL`.",
        secret=True,
    )
    redis_min_replicas: int = variable(
        "HUBLINK_REDIS_MIN_REPLICAS",
        0,
        "Intake answers 2xx only once this many replicas hold the request (`WAIT`).",
        _positive_int,
    )
    redis_wait_ms: int = variable(
        "HUBLINK_REDIS_WAIT_MS",
        500,
        "How long intake waits for those replicas; past it, 503 `not_replicated`.",
        _positive_int,
    )

    api_token: str | None = variable(
        "HUBLINK_API_TOKEN", None, "Bearer token of `POST /api/associations`; the web needs it.", secret=True
    )
    admin_token: str | None = variable(
        "HUBLINK_ADMIN_TOKEN",
        None,
        "Bearer token of the admin API (dead letters, events, pauses) and the `/admin` login.",
        secret=True,
    )
    max_body_bytes: int = variable(
        "HUBLINK_MAX_BODY_BYTES",
        1_048_576,
        "Larger request bodies get 413, chunked ones too; they are never processed.",
        _positive_int,
    )
    body_timeout_s: float = variable(
        "HUBLINK_BODY_TIMEOUT_S",
        10.0,
        "A request body not received within this many seconds gets 408 `request_timeout`.",
        _positive_float,
    )
    max_items: int = variable("HUBLINK_MAX_ITEMS", 100, "Items per direct API request (1..1000).", _positive_int)
    secret_key: str | None = variable(
        "HUBLINK_SECRET_KEY",
        None,
        "Signs `/admin` sessions' token mark; set it when several web processes serve the dashboard.",
        secret=True,
        shown="random per process",
    )
    cookie_secure: bool = variable(
        "HUBLINK_COOKIE_SECURE",
        False,
        "Send the `/admin` cookie only over HTTPS; always on when `HUBLINK_PUBLIC_URL` is `https://`.",
        _bool,
    )

    hubspot_base_url: str = variable(
        "HUBSPOT_BASE_URL", "https://api.hubapi.com", "HubSpot's API, or the simulator's address.", _url
    )
    hubspot_access_token: str | None = variable(
        "HUBSPOT_ACCESS_TOKEN",
        None,
        "Private-app token for single-portal mode; workers need it when there is no portals file.",
        secret=True,
    )
    hubspot_connect_timeout_s: float = variable(
        "HUBSPOT_CONNECT_TIMEOUT_S", 3.05, "Connect timeout of every HubSpot call.", _positive_float
    )
    hubspot_read_timeout_s: float = variable(
        "HUBSPOT_READ_TIMEOUT_S", 10.0, "Read timeout of every HubSpot call.", _positive_float
    )
    hubspot_rate_limit: RateLimit = variable(
        "HUBSPOT_RATE_LIMIT", RateLimit(100, 10.0), "The app's burst limit, e.g. `190/10s`.", RateLimit.parse
    )
    hubspot_search_rate_limit: RateLimit = variable(
        "HUBSPOT_SEARCH_RATE_LIMIT",
        RateLimit(5, 1.0),
        "HubSpot's CRM search limit, used by rule lookups and backfills.",
        RateLimit.parse,
    )
    rate_limit_margin: float = variable(
        "HUBLINK_RATE_LIMIT_MARGIN",
        0.05,
        "Share of the limit HubLink leaves unused, kept as time: the window is stretched by it.",
        _positive_float,
    )
    # HubSpot caps association creates and removals at 2,000 inputs a call; a bad input does not sink its
    # batch (the drain isolates it), so the default fills each call.
    batch_size: int = variable(
        "HUBSPOT_BATCH_SIZE",
        2000,
        "Associations claimed for one batch call, 1..2000 (reconcile's reads go in chunks of 1,000).",
        _positive_int,
    )
    batch_window_ms: int = variable(
        "HUBLINK_BATCH_WINDOW_MS", 0, "Wait up to this long for a batch to fill; 0 never waits.", _positive_int
    )

    max_attempts: int = variable(
        "HUBLINK_MAX_ATTEMPTS", 10, "Attempts before an association is dead-lettered.", _positive_int
    )
    retry_base_s: float = variable("HUBLINK_RETRY_BASE_S", 2.0, "Backoff base in seconds.", _positive_float)
    retry_cap_s: float = variable("HUBLINK_RETRY_CAP_S", 600.0, "Backoff cap in seconds.", _positive_float)
    fresh_record_grace_s: float = variable(
        "HUBLINK_FRESH_RECORD_GRACE_S",
        120.0,
        "A 404 or `INVALID_OBJECT_IDS` this soon after the event is retried: the record may not be visible yet.",
        _positive_float,
    )
    daily_limit_defer_s: float = variable(
        "HUBLINK_DAILY_LIMIT_DEFER_S",
        3600.0,
        "A `DAILY` 429's wait when no time zone applies (with the default `UTC` zone it waits for midnight).",
        _positive_float,
    )
    max_retry_after_s: float = variable(
        "HUBLINK_MAX_RETRY_AFTER_S",
        3600.0,
        "The longest a HubSpot `Retry-After` (429 or 5xx) may defer work or block a bucket.",
        _positive_float,
    )
    account_timezone: str = variable(
        "HUBLINK_ACCOUNT_TIMEZONE",
        "UTC",
        "The account's IANA time zone, where its daily limit resets; a portal's `timeZone` overrides it.",
        check_time_zone,
    )
    daily_reserve: float = variable(
        "HUBLINK_DAILY_RESERVE",
        0.05,
        "Share of the account's daily budget left to its other apps; below it, a bucket waits for the reset.",
        _positive_float,
    )
    dead_letter_ttl_days: float = variable(
        "HUBLINK_DEAD_LETTER_TTL_DAYS", 30.0, "How long dead letters are kept.", _positive_float
    )
    dead_letter_max: int = variable(
        "HUBLINK_DEAD_LETTER_MAX",
        1_000_000,
        "Size cap of the dead-letter store; beyond it the oldest are dropped and counted.",
        _positive_int,
    )
    lease_s: float = variable(
        "HUBLINK_LEASE_S",
        30.0,
        "Claimed work returns to its lane if not settled by then; a dead worker's inbox entry is taken over.",
        _positive_float,
    )
    max_limiter_wait_ms: int = variable(
        "HUBLINK_MAX_LIMITER_WAIT_MS",
        500,
        "A longer rate-limit wait parks the lane and gives the worker back.",
        _positive_int,
    )

    hubspot_client_secret: str | None = variable(
        "HUBSPOT_CLIENT_SECRET", None, "The app's client secret: verifies HubSpot's signatures.", secret=True
    )
    hubspot_client_secret_previous: str | None = variable(
        "HUBSPOT_CLIENT_SECRET_PREVIOUS",
        None,
        "During a rotation, the old client secret: its signatures are accepted too, until you remove it.",
        secret=True,
    )
    accept_legacy_signatures: bool = variable(
        "HUBSPOT_ACCEPT_LEGACY_SIGNATURES", False, "Also accept v1 and v2 signatures on `/webhooks/hubspot`.", _bool
    )
    public_url: str | None = variable(
        "HUBLINK_PUBLIC_URL",
        None,
        "The base URL HubSpot calls, e.g. `https://hooks.example.com` (v3 signatures behind proxies).",
        _url,
    )
    trust_proxy: bool = variable(
        "HUBLINK_TRUST_PROXY",
        False,
        "Take scheme, host and prefix from one proxy's `X-Forwarded-*` headers.",
        _bool,
    )
    dedup_window_s: int = variable(
        "HUBLINK_DEDUP_WINDOW_S",
        86_400,
        "A redelivered event inside this window is acknowledged, not processed.",
        _positive_int,
    )
    rules_file: str | None = variable(
        "HUBLINK_RULES_FILE", None, "YAML rules and sources; give web and workers the same file."
    )
    rules_source: str = variable(
        "HUBLINK_RULES_SOURCE",
        "file",
        "file: the rules file, read at start; redis: the published version in Redis, followed without a restart "
        "(the file, where given, seeds version 1).",
        _rules_source,
    )
    lookup_cache_ttl_s: int = variable(
        "HUBLINK_LOOKUP_CACHE_TTL_S", 300, "How long rule lookup results are cached.", _positive_int
    )
    label_cache_ttl_s: int = variable(
        "HUBLINK_LABEL_CACHE_TTL_S",
        3600,
        "How long HubSpot's association label definitions (names to type ids) are cached.",
        _positive_int,
    )
    hubspot_app_id: str | None = variable(
        "HUBSPOT_APP_ID",
        None,
        "The public app whose webhook settings and subscriptions `hublink hubspot subscriptions` manages; "
        "association changes its own API writes cause (`sourceId`) are dropped as `self`.",
        _app_id,
    )
    hubspot_developer_token: str | None = variable(
        "HUBSPOT_DEVELOPER_TOKEN",
        None,
        "Bearer token with the `developers-read` and `developers-write` scopes of the webhooks API.",
        secret=True,
    )
    webhook_max_concurrency: int = variable(
        "HUBLINK_WEBHOOK_MAX_CONCURRENCY",
        10,
        "The app's `throttling.maxConcurrentRequests`: HubSpot's default is 10, its floor 6.",
        _positive_int,
    )
    portals_file: str | None = variable(
        "HUBLINK_PORTALS_FILE", None, "YAML map of portal id to a private-app token or an OAuth app."
    )

    metrics_token: str | None = variable(
        "HUBLINK_METRICS_TOKEN", None, "If set, `/metrics` requires this Bearer token.", secret=True
    )
    alert_webhook_url: str | None = variable(
        "HUBLINK_ALERT_WEBHOOK_URL", None, "Slack-compatible webhook that alerts are posted to.", secret=True
    )
    alert_interval_s: float = variable(
        "HUBLINK_ALERT_INTERVAL_S", 300.0, "At most one alert of a kind per this many seconds.", _positive_float
    )
    alert_error_rate: float = variable(
        "HUBLINK_ALERT_ERROR_RATE",
        0.2,
        "Alert when this share of the last five minutes' HubSpot attempts failed.",
        _positive_float,
    )
    alert_pagerduty_key: str | None = variable(
        "HUBLINK_ALERT_PAGERDUTY_KEY",
        None,
        "A PagerDuty Events v2 integration key: a circuit opening triggers an incident, closing resolves it.",
        secret=True,
    )
    alert_pagerduty_url: str = variable(
        "HUBLINK_ALERT_PAGERDUTY_URL",
        "https://events.pagerduty.com/v2/enqueue",
        "Where PagerDuty events are sent.",
        _url,
    )
    audit_days: float = variable(
        "HUBLINK_AUDIT_DAYS",
        90.0,
        "The audit log keeps each admin action (who, what, when, from where, outcome) this long.",
        _positive_float,
    )
    history_days: float = variable(
        "HUBLINK_HISTORY_DAYS",
        7.0,
        "The event history keeps each accepted request and its events' outcomes this long.",
        _positive_float,
    )
    history_max_mb: float = variable(
        "HUBLINK_HISTORY_MAX_MB",
        256.0,
        "The event history's size cap in Redis, over every history key (records and their index); past it the"
        " oldest go first, with their index entries, and are counted.",
        _positive_float,
    )
    circuit_errors: int = variable(
        "HUBLINK_CIRCUIT_ERRORS",
        20,
        "This many 5xx answers or timeouts of one portal within the window open its circuit.",
        _positive_int,
    )
    circuit_window_s: float = variable(
        "HUBLINK_CIRCUIT_WINDOW_S", 60.0, "The window those errors are counted in.", _positive_float
    )
    circuit_probe_s: float = variable(
        "HUBLINK_CIRCUIT_PROBE_S",
        30.0,
        "An open circuit sends one real association this often; an answer from HubSpot closes it.",
        _positive_float,
    )
    uninstalled_hold_h: float = variable(
        "HUBLINK_UNINSTALLED_HOLD_H",
        72.0,
        "A portal whose app was uninstalled keeps its work this many hours for a reinstall, then dead-letters it"
        " as app_uninstalled.",
        _positive_float,
    )
    uninstalled_probe_s: float = variable(
        "HUBLINK_UNINSTALLED_PROBE_S",
        3600.0,
        "An uninstalled portal is probed (a token refresh) this often; a token HubSpot issues resumes it.",
        _positive_float,
    )
    journal_poll_s: float = variable(
        "HUBLINK_JOURNAL_POLL_S",
        5.0,
        "Portals with `journal: true` have their Webhooks Journal read this often.",
        _positive_float,
    )
    log_level: str = variable("HUBLINK_LOG_LEVEL", "INFO", "`DEBUG`, `INFO`, `WARNING` or `ERROR`.", _level)
    hubspot_client_id: str | None = variable(
        "HUBSPOT_CLIENT_ID",
        None,
        "The app's client id: with `HUBSPOT_CLIENT_SECRET` it gets the app token (`client_credentials`) that "
        "the Webhooks Journal and journal subscriptions take; required when a portal has `journal: true`.",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read every declared variable once; raise ConfigError naming the first bad one."""
        environ = with_secret_files(environ)  # NAME_FILE gives a secret variable from a file
        values: dict[str, object] = {}
        for item in fields(cls):
            spec = variable_of(item)
            raw = environ.get(spec.name)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[item.name] = spec.coerce(raw.strip())
            except ValueError as exc:
                raise ConfigError(f"{spec.name}: {exc}") from None
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
            # Only the scheme is named: the rest of the URL may hold the password.
            scheme = self.redis_url.split("://", 1)[0] if "://" in self.redis_url else "no scheme"
            raise ConfigError(f"REDIS_URL: expected redis://, rediss:// or unix://, got {scheme!r}")
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
            "hubspot_client_secret_previous",
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


#: Headings of ``.env.example`` and the configuration page: each starts at the named field.
GROUPS: tuple[tuple[str, str], ...] = (
    ("Redis and queueing", "redis_url"),
    ("Intake", "api_token"),
    ("HubSpot", "hubspot_base_url"),
    ("Retries and dead letters", "max_attempts"),
    ("Sources and rules", "hubspot_client_secret"),
    ("The app's webhooks and portals", "hubspot_app_id"),
    ("Operations", "metrics_token"),
)

#: Read by the process model (gunicorn, ``make run``), not by Settings: (name, default, one sentence).
PROCESS_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("PORT", "8000", "gunicorn's port (`Procfile`)."),
    ("WEB_CONCURRENCY", "", "gunicorn gevent workers (`gunicorn.conf.py`); empty: one per core, at least 2."),
    ("HUBSPOT_SIM_PORT", "8090", "`make run` only: the simulator's port."),
)

#: Every environment variable Settings reads, in declaration order.
ENVIRONMENT_VARIABLES = tuple(variable_of(item).name for item in fields(Settings))
