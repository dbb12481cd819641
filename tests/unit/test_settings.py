"""Settings: one frozen object from the environment, refusing bad values with the variable's name first."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hublink.config.settings import ENVIRONMENT_VARIABLES, GROUPS, Settings, variable_of
from hublink.domain.errors import ConfigError
from hublink.domain.limits import RateLimit

#: Each variable's documented default (docs/reference/configuration.md, generated from Settings), as the field it sets.
DOCUMENTED_DEFAULTS: dict[str, object] = {
    "redis_url": "redis://127.0.0.1:6379/0",
    "redis_prefix": "hl:",
    "queue_name": "hublink",
    "redis_timeout_s": 2.0,
    "redis_sentinels": (),
    "redis_sentinel_master": None,
    "redis_sentinel_password": None,
    "redis_min_replicas": 0,
    "redis_wait_ms": 500,
    "api_token": None,
    "admin_token": None,
    "max_body_bytes": 1_048_576,
    "body_timeout_s": 10.0,
    "max_items": 100,
    "secret_key": None,
    "hubspot_base_url": "https://api.hubapi.com",
    "hubspot_access_token": None,
    "hubspot_connect_timeout_s": 3.05,
    "hubspot_read_timeout_s": 10.0,
    "hubspot_rate_limit": RateLimit(100, 10.0),
    "hubspot_search_rate_limit": RateLimit(5, 1.0),
    "rate_limit_margin": 0.05,
    "batch_size": 2000,
    "batch_window_ms": 0,
    "max_attempts": 10,
    "retry_base_s": 2.0,
    "retry_cap_s": 600.0,
    "fresh_record_grace_s": 120.0,
    "daily_limit_defer_s": 3600.0,
    "max_retry_after_s": 3600.0,
    "account_timezone": "UTC",
    "daily_reserve": 0.05,
    "dead_letter_ttl_days": 30.0,
    "dead_letter_max": 1_000_000,
    "lease_s": 30.0,
    "max_limiter_wait_ms": 500,
    "hubspot_client_secret": None,
    "hubspot_client_secret_previous": None,
    "accept_legacy_signatures": False,
    "public_url": None,
    "trust_proxy": False,
    "dedup_window_s": 86_400,
    "rules_file": None,
    "rules_source": "file",
    "lookup_cache_ttl_s": 300,
    "label_cache_ttl_s": 3600,
    "hubspot_app_id": None,
    "hubspot_developer_token": None,
    "webhook_max_concurrency": 10,
    "portals_file": None,
    "metrics_token": None,
    "alert_webhook_url": None,
    "alert_interval_s": 300.0,
    "alert_error_rate": 0.2,
    "alert_pagerduty_key": None,
    "alert_pagerduty_url": "https://events.pagerduty.com/v2/enqueue",
    "history_days": 7.0,
    "audit_days": 90.0,
    "history_max_mb": 256.0,
    "circuit_errors": 20,
    "circuit_window_s": 60.0,
    "circuit_probe_s": 30.0,
    "uninstalled_hold_h": 72.0,
    "uninstalled_probe_s": 3600.0,
    "journal_poll_s": 5.0,
    "log_level": "INFO",
    "cookie_secure": False,
    "hubspot_client_id": None,
}

#: Every secret variable, with a distinct value that must never show in repr(settings).
SECRETS = {
    "HUBLINK_API_TOKEN": "api-secret-0001",
    "HUBLINK_ADMIN_TOKEN": "admin-secret-0002",
    "HUBSPOT_ACCESS_TOKEN": "pat-na1-secret-0003",
    "HUBSPOT_CLIENT_SECRET": "client-secret-0004",
    "HUBLINK_METRICS_TOKEN": "metrics-secret-0005",
    "HUBLINK_ALERT_WEBHOOK_URL": "https://hooks.example.test/services/secret-0006",
    "HUBLINK_SECRET_KEY": "session-key-secret-0007",
    "REDIS_SENTINEL_PASSWORD": "sentinel-secret-0008",
    "HUBLINK_ALERT_PAGERDUTY_KEY": "pagerduty-routing-secret-0009",
    "HUBSPOT_DEVELOPER_TOKEN": "developer-token-secret-0010",
    "HUBSPOT_CLIENT_SECRET_PREVIOUS": "client-secret-previous-0011",
}


class TestFromEnv:
    """Reading the environment once."""

    def test_nothing_set_gives_the_documented_defaults(self) -> None:
        """With no variable set, every setting has the default the configuration reference documents."""
        settings = Settings.from_env({})
        assert {name: getattr(settings, name) for name in DOCUMENTED_DEFAULTS} == DOCUMENTED_DEFAULTS

    def test_the_documented_defaults_cover_every_field(self) -> None:
        """Every Settings field has a documented default checked above."""
        assert {f.name for f in dataclasses.fields(Settings)} == set(DOCUMENTED_DEFAULTS)

    def test_blank_values_count_as_unset(self) -> None:
        """A variable set to spaces keeps its default rather than failing to parse."""
        assert Settings.from_env({"HUBSPOT_BATCH_SIZE": "  ", "HUBSPOT_RATE_LIMIT": ""}) == Settings.from_env({})

    def test_variables_outside_the_list_are_ignored(self) -> None:
        """Variables HubLink does not read (PATH, a misspelt HUBLINK_ one) change nothing."""
        assert Settings.from_env({"PATH": "/bin", "HUBLINK_BATCHSIZE": "5"}) == Settings.from_env({})

    def test_values_are_coerced(self) -> None:
        """Strings become numbers, booleans and rate limits, and URLs lose a trailing slash."""
        settings = Settings.from_env(
            {
                "HUBSPOT_RATE_LIMIT": "190/10s",
                "HUBSPOT_ACCEPT_LEGACY_SIGNATURES": "TRUE",
                "HUBLINK_TRUST_PROXY": "0",
                "HUBSPOT_BATCH_SIZE": " 2000 ",
                "HUBSPOT_BASE_URL": "http://sim:8090/",
                "HUBLINK_LOG_LEVEL": "debug",
                "HUBLINK_RETRY_CAP_S": "30.5",
            }
        )
        assert settings.hubspot_rate_limit == RateLimit(190, 10.0)
        assert (settings.accept_legacy_signatures, settings.trust_proxy) == (True, False)
        assert settings.batch_size == 2000
        assert settings.hubspot_base_url == "http://sim:8090"
        assert settings.log_level == "DEBUG"
        assert settings.retry_cap_s == 30.5

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("HUBSPOT_RATE_LIMIT", "abc"),
            ("HUBSPOT_SEARCH_RATE_LIMIT", "5/1m"),
            ("HUBSPOT_BATCH_SIZE", "5000"),
            ("HUBSPOT_BATCH_SIZE", "0"),
            ("HUBSPOT_BATCH_SIZE", "ten"),
            ("HUBLINK_MAX_ATTEMPTS", "0"),
            ("HUBLINK_MAX_ITEMS", "1001"),
            ("REDIS_URL", "http://x"),
            ("HUBSPOT_BASE_URL", "ftp://api.hubapi.com"),
            ("HUBSPOT_ACCEPT_LEGACY_SIGNATURES", "maybe"),
            ("HUBLINK_TRUST_PROXY", "2"),
            ("HUBLINK_MAX_BODY_BYTES", "-5"),
            ("HUBLINK_RETRY_BASE_S", "-1"),
            ("HUBSPOT_READ_TIMEOUT_S", "nan"),
            ("HUBLINK_RATE_LIMIT_MARGIN", "1"),
            ("HUBLINK_LOG_LEVEL", "LOUD"),
            ("REDIS_SENTINELS", "127.0.0.1"),
            ("REDIS_SENTINELS", "127.0.0.1:26379,:26380"),
            ("REDIS_SENTINELS", "127.0.0.1:99999"),
            ("REDIS_SENTINELS", "127.0.0.1:26379"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
            ("HUBLINK_REDIS_MIN_REPLICAS", "-1"),
            ("HUBLINK_CIRCUIT_ERRORS", "0"),
            ("HUBLINK_ALERT_PAGERDUTY_URL", "events.pagerduty.com"),
            ("HUBLINK_CIRCUIT_WINDOW_S", "0"),
            ("HUBLINK_CIRCUIT_PROBE_S", "0.01"),
            ("HUBLINK_JOURNAL_POLL_S", "0.01"),
            ("HUBSPOT_APP_ID", "app-1"),
            ("HUBSPOT_APP_ID", "-5"),
            ("HUBLINK_WEBHOOK_MAX_CONCURRENCY", "5"),
            ("HUBLINK_WEBHOOK_MAX_CONCURRENCY", "many"),
        ],
    )
    def test_a_bad_value_is_refused_naming_the_variable_first(self, name: str, value: str) -> None:
        """A bad value stops start-up with a ConfigError whose message starts with the variable's name."""
        with pytest.raises(ConfigError) as info:
            Settings.from_env({name: value})
        assert str(info.value).startswith(f"{name}: ")

    @pytest.mark.parametrize(
        ("name", "value"),
        [("HUBSPOT_BATCH_SIZE", "5000"), ("HUBSPOT_ACCEPT_LEGACY_SIGNATURES", "maybe")],
    )
    def test_the_refusal_shows_the_bad_value(self, name: str, value: str) -> None:
        """The refusal quotes what was given, so the operator sees the typo."""
        with pytest.raises(ConfigError, match=value):
            Settings.from_env({name: value})

    def test_a_redis_url_refusal_names_its_scheme_never_its_password(self) -> None:
        """A REDIS_URL with the wrong scheme is refused naming the scheme; the password in it is not shown."""
        with pytest.raises(ConfigError) as info:
            Settings.from_env({"REDIS_URL": "http://user:s3cret-pw@redis:6379/0"})
        assert "'http'" in str(info.value) and "s3cret-pw" not in str(info.value)

    def test_settings_are_frozen(self) -> None:
        """Settings cannot be changed after start-up."""
        settings = Settings.from_env({})
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.batch_size = 5  # type: ignore[misc]

    def test_every_variable_is_read(self) -> None:
        """Each listed variable, set to a valid value, changes the setting it names."""
        valid = {
            "REDIS_URL": "rediss://r:6380/1",
            "HUBLINK_REDIS_PREFIX": "x:",
            "HUBLINK_QUEUE": "q",
            "HUBLINK_REDIS_TIMEOUT_S": "1.5",
            "HUBLINK_API_TOKEN": "a",
            "HUBLINK_ADMIN_TOKEN": "b",
            "HUBLINK_MAX_BODY_BYTES": "10",
            "HUBLINK_BODY_TIMEOUT_S": "3",
            "HUBLINK_MAX_ITEMS": "5",
            "HUBSPOT_BASE_URL": "http://sim",
            "HUBSPOT_ACCESS_TOKEN": "c",
            "HUBSPOT_CONNECT_TIMEOUT_S": "1",
            "HUBSPOT_READ_TIMEOUT_S": "2",
            "HUBSPOT_RATE_LIMIT": "190/10s",
            "HUBSPOT_SEARCH_RATE_LIMIT": "4/1s",
            "HUBLINK_RATE_LIMIT_MARGIN": "0.1",
            "HUBSPOT_BATCH_SIZE": "7",
            "HUBLINK_BATCH_WINDOW_MS": "20",
            "HUBLINK_MAX_ATTEMPTS": "3",
            "HUBLINK_RETRY_BASE_S": "1",
            "HUBLINK_RETRY_CAP_S": "60",
            "HUBLINK_FRESH_RECORD_GRACE_S": "30",
            "HUBLINK_DAILY_LIMIT_DEFER_S": "60",
            "HUBLINK_MAX_RETRY_AFTER_S": "120",
            "HUBLINK_ACCOUNT_TIMEZONE": "Europe/Berlin",
            "HUBLINK_DAILY_RESERVE": "0.1",
            "HUBLINK_DEAD_LETTER_TTL_DAYS": "7",
            "HUBLINK_DEAD_LETTER_MAX": "10",
            "HUBLINK_LEASE_S": "5",
            "HUBLINK_MAX_LIMITER_WAIT_MS": "50",
            "HUBSPOT_CLIENT_SECRET": "d",
            "HUBSPOT_CLIENT_SECRET_PREVIOUS": "e",
            "HUBSPOT_ACCEPT_LEGACY_SIGNATURES": "yes",
            "HUBLINK_PUBLIC_URL": "https://hub.example",
            "HUBLINK_TRUST_PROXY": "on",
            "HUBLINK_DEDUP_WINDOW_S": "60",
            "HUBLINK_RULES_FILE": "rules.yaml",
            "HUBLINK_RULES_SOURCE": "redis",
            "HUBLINK_PORTALS_FILE": "portals.yaml",
            "HUBLINK_LOOKUP_CACHE_TTL_S": "9",
            "HUBLINK_LABEL_CACHE_TTL_S": "9",
            "HUBSPOT_APP_ID": "1234567",
            "HUBSPOT_DEVELOPER_TOKEN": "h",
            "HUBLINK_WEBHOOK_MAX_CONCURRENCY": "6",
            "HUBLINK_METRICS_TOKEN": "e",
            "HUBLINK_ALERT_WEBHOOK_URL": "https://hooks.example",
            "HUBLINK_ALERT_INTERVAL_S": "9",
            "HUBLINK_ALERT_ERROR_RATE": "0.5",
            "HUBLINK_ALERT_PAGERDUTY_KEY": "g",
            "HUBLINK_ALERT_PAGERDUTY_URL": "http://127.0.0.1:9/v2/enqueue",
            "HUBLINK_HISTORY_DAYS": "1",
            "HUBLINK_AUDIT_DAYS": "30",
            "HUBLINK_HISTORY_MAX_MB": "16",
            "HUBLINK_CIRCUIT_ERRORS": "5",
            "HUBLINK_CIRCUIT_WINDOW_S": "10",
            "HUBLINK_CIRCUIT_PROBE_S": "2",
            "HUBLINK_UNINSTALLED_HOLD_H": "0.5",
            "HUBLINK_UNINSTALLED_PROBE_S": "60",
            "HUBLINK_JOURNAL_POLL_S": "1",
            "HUBLINK_LOG_LEVEL": "ERROR",
            "HUBLINK_SECRET_KEY": "f",
            "HUBLINK_COOKIE_SECURE": "true",
            "REDIS_SENTINEL_PASSWORD": "g",
            "HUBLINK_REDIS_MIN_REPLICAS": "1",
            "HUBLINK_REDIS_WAIT_MS": "100",
            "HUBSPOT_CLIENT_ID": "client-1",
        }
        # Set together or not at all: each is read when its partner is there.
        pair = {"REDIS_SENTINELS": "10.0.0.1:26379,[::1]:26380", "REDIS_SENTINEL_MASTER": "hublink"}
        assert set(valid) | set(pair) == set(ENVIRONMENT_VARIABLES)
        defaults = Settings.from_env({})
        unchanged = [name for name in valid if Settings.from_env({name: valid[name]}) == defaults]
        assert unchanged == []
        settings = Settings.from_env(pair)
        assert settings.redis_sentinels == (("10.0.0.1", 26379), ("::1", 26380))
        assert settings.redis_sentinel_master == "hublink"

    def test_sentinel_needs_a_tcp_redis_url(self) -> None:
        """With Sentinel, REDIS_URL gives the database and credentials of a TCP server, so unix:// is refused."""
        env = {"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "unix:///tmp/r.sock"}
        with pytest.raises(ConfigError, match=r"^REDIS_URL: "):
            Settings.from_env(env)

    def test_waiting_for_replicas_needs_a_bounded_wait(self) -> None:
        """HUBLINK_REDIS_MIN_REPLICAS with a zero wait is refused: WAIT 0 would block intake for ever."""
        with pytest.raises(ConfigError, match=r"^HUBLINK_REDIS_WAIT_MS: "):
            Settings.from_env({"HUBLINK_REDIS_MIN_REPLICAS": "1", "HUBLINK_REDIS_WAIT_MS": "0"})


class TestRequire:
    """Each process names the variable it cannot start without."""

    def test_web_needs_the_api_token(self) -> None:
        """The web refuses to start without HUBLINK_API_TOKEN, with the message starting with its name."""
        with pytest.raises(ConfigError) as info:
            Settings.from_env({"HUBSPOT_ACCESS_TOKEN": "pat"}).require("web")
        assert str(info.value).startswith("HUBLINK_API_TOKEN")

    def test_web_starts_with_the_api_token(self) -> None:
        """With HUBLINK_API_TOKEN set, the web's requirements are met (no HubSpot token needed)."""
        Settings.from_env({"HUBLINK_API_TOKEN": "api"}).require("web")

    def test_worker_needs_a_hubspot_token(self) -> None:
        """A worker refuses to start without HUBSPOT_ACCESS_TOKEN, with the message starting with its name."""
        with pytest.raises(ConfigError) as info:
            Settings.from_env({"HUBLINK_API_TOKEN": "api"}).require("worker")
        assert str(info.value).startswith("HUBSPOT_ACCESS_TOKEN")

    @pytest.mark.parametrize("env", [{"HUBSPOT_ACCESS_TOKEN": "pat"}, {"HUBLINK_PORTALS_FILE": "portals.yaml"}])
    def test_worker_starts_with_a_token_or_a_portals_file(self, env: dict[str, str]) -> None:
        """A worker starts with HUBSPOT_ACCESS_TOKEN or, in many-portal mode, a portals file instead."""
        Settings.from_env(env).require("worker")


class TestSecrets:
    """Secrets stay out of sight and are all handed to the log redactor."""

    def test_repr_hides_every_secret(self) -> None:
        """repr(settings) and str(settings) contain none of the configured secrets."""
        settings = Settings.from_env(SECRETS)
        for value in SECRETS.values():
            assert value not in repr(settings)
            assert value not in str(settings)

    def test_every_secret_goes_to_the_redactor(self) -> None:
        """settings.secrets holds every configured secret value."""
        assert set(Settings.from_env(SECRETS).secrets) == set(SECRETS.values())

    def test_no_secrets_when_none_are_set(self) -> None:
        """Unset secrets are not in settings.secrets (an empty string would redact everything)."""
        assert Settings.from_env({}).secrets == ()

    def test_a_redis_password_is_a_secret(self) -> None:
        """The password of an ACL user in REDIS_URL is hidden from repr(settings) and handed to the redactor."""
        settings = Settings.from_env({"REDIS_URL": "rediss://hublink:redis-pw-0008@redis.internal:6380/0"})
        assert "redis-pw-0008" not in repr(settings)
        assert "redis-pw-0008" in settings.secrets


class TestRateLimit:
    """The N/<window> notation of HUBSPOT_RATE_LIMIT and HUBSPOT_SEARCH_RATE_LIMIT."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("100/10s", RateLimit(100, 10.0)),
            ("190/10s", RateLimit(190, 10.0)),
            ("5/1s", RateLimit(5, 1.0)),
            ("190/10000ms", RateLimit(190, 10.0)),
            (" 110 / 10 s ", RateLimit(110, 10.0)),
            ("4/0.5s", RateLimit(4, 0.5)),
        ],
    )
    def test_accepted_forms(self, text: str, expected: RateLimit) -> None:
        """Requests per a window in seconds or milliseconds parse to requests and window_s."""
        assert RateLimit.parse(text) == expected

    @pytest.mark.parametrize(
        "text",
        ["", "100", "100/", "/10s", "0/10s", "x/10s", "10/0s", "10/10m", "10/10", "-1/10s", "1e2/10s", "10/10s/2"],
    )
    def test_refused_forms(self, text: str) -> None:
        """Anything else is refused with a message saying what was expected."""
        with pytest.raises(ValueError, match="expected N/<window>s"):
            RateLimit.parse(text)

    @given(
        requests=st.integers(min_value=1, max_value=100_000), window_ms=st.integers(min_value=1, max_value=86_400_000)
    )
    def test_milliseconds_and_seconds_agree(self, requests: int, window_ms: int) -> None:
        """N/<w>ms is the same limit as N/<w/1000>s."""
        assert RateLimit.parse(f"{requests}/{window_ms}ms") == RateLimit(requests, window_ms / 1000)

    def test_str_is_the_notation(self) -> None:
        """A rate limit prints in the notation it is configured in."""
        assert str(RateLimit(190, 10.0)) == "190/10s"


class TestLimitsSettings:
    """The daily-limit and Retry-After settings refuse what they cannot honour."""

    def test_an_unknown_time_zone_is_refused_by_name(self) -> None:
        """HUBLINK_ACCOUNT_TIMEZONE must be an IANA zone."""
        with pytest.raises(ConfigError, match=r"^HUBLINK_ACCOUNT_TIMEZONE: expected an IANA time zone"):
            Settings.from_env({"HUBLINK_ACCOUNT_TIMEZONE": "Mars/Olympus"})

    def test_a_reserve_of_the_whole_budget_is_refused(self) -> None:
        """HUBLINK_DAILY_RESERVE must leave something to spend."""
        with pytest.raises(ConfigError, match=r"^HUBLINK_DAILY_RESERVE"):
            Settings.from_env({"HUBLINK_DAILY_RESERVE": "1"})


class TestCookieSecure:
    """When the dashboard's cookie is Secure."""

    @pytest.mark.parametrize(
        ("env", "expected"),
        [
            ({}, False),
            ({"HUBLINK_PUBLIC_URL": "http://hub.example"}, False),
            ({"HUBLINK_PUBLIC_URL": "https://hub.example"}, True),
            ({"HUBLINK_PUBLIC_URL": "HTTPS://hub.example"}, True),
            ({"HUBLINK_COOKIE_SECURE": "true"}, True),
            ({"HUBLINK_COOKIE_SECURE": "true", "HUBLINK_PUBLIC_URL": "http://hub.example"}, True),
        ],
    )
    def test_secure_behind_https_or_when_told(self, env: dict[str, str], expected: bool) -> None:
        """The cookie is Secure when HUBLINK_PUBLIC_URL is https or HUBLINK_COOKIE_SECURE is true."""
        assert Settings.from_env(env).is_cookie_secure is expected


class TestDeclarations:
    """Each field declares its variable, its default and one sentence: the source of the docs and .env.example."""

    def test_every_field_declares_one_variable_with_a_sentence(self) -> None:
        """Each field names a distinct variable and says what it does in one sentence ending with a full stop."""
        specs = [variable_of(item) for item in dataclasses.fields(Settings)]
        assert len({spec.name for spec in specs}) == len(specs)
        assert all(spec.doc.strip().endswith(".") for spec in specs)

    def test_secrets_stay_out_of_repr(self) -> None:
        """A field declared secret never shows its value in repr, so logs of the settings hold no secret."""
        values = {item.name: "s3cr3t-value" for item in dataclasses.fields(Settings) if variable_of(item).secret}
        values["redis_url"] = "redis://:s3cr3t-value@127.0.0.1:6379/0"
        assert "s3cr3t-value" not in repr(Settings(**values))  # type: ignore[arg-type]

    def test_the_groups_start_at_fields_in_order(self) -> None:
        """Each heading of the configuration page starts at a field, in the fields' order."""
        names = [item.name for item in dataclasses.fields(Settings)]
        starts = [names.index(field_name) for _, field_name in GROUPS]
        assert starts == sorted(starts)
        assert starts[0] == 0
