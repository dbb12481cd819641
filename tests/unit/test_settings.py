"""Settings: one frozen object from the environment, refusing bad values with the variable's name."""

from __future__ import annotations

import pytest

from hublink.domain.errors import ConfigError
from hublink.settings import RateLimit, Settings


class TestFromEnv:
    """Reading the environment once."""

    def test_defaults_are_the_documented_ones(self) -> None:
        """With nothing set, the documented defaults apply."""
        s = Settings.from_env({})
        assert s.redis_url == "redis://127.0.0.1:6379/0"
        assert s.max_body_bytes == 1_048_576
        assert s.hubspot_rate_limit == RateLimit(100, 10.0)
        assert (s.batch_size, s.batch_window_ms, s.max_attempts) == (100, 0, 10)
        assert (s.retry_base_s, s.retry_cap_s, s.fresh_record_grace_s) == (2.0, 600.0, 120.0)
        assert (s.daily_limit_defer_s, s.dead_letter_ttl_days, s.dedup_window_s) == (3600.0, 30.0, 86400)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("HUBSPOT_RATE_LIMIT", "abc"),
            ("HUBSPOT_BATCH_SIZE", "5000"),
            ("HUBLINK_MAX_ATTEMPTS", "0"),
            ("REDIS_URL", "http://x"),
            ("HUBSPOT_ACCEPT_LEGACY_SIGNATURES", "maybe"),
            ("HUBLINK_MAX_BODY_BYTES", "-5"),
            ("HUBLINK_LOG_LEVEL", "LOUD"),
        ],
    )
    def test_bad_values_name_the_variable(self, name: str, value: str) -> None:
        """A bad value stops start-up with a message that starts with the variable's name."""
        with pytest.raises(ConfigError) as info:
            Settings.from_env({name: value})
        assert str(info.value).startswith(name)

    def test_values_are_coerced(self) -> None:
        """Strings become numbers, booleans and rate limits."""
        s = Settings.from_env(
            {
                "HUBSPOT_RATE_LIMIT": "190/10s",
                "HUBSPOT_ACCEPT_LEGACY_SIGNATURES": "true",
                "HUBSPOT_BATCH_SIZE": "2000",
                "HUBSPOT_BASE_URL": "http://sim:8090/",
            }
        )
        assert s.hubspot_rate_limit == RateLimit(190, 10.0)
        assert s.accept_legacy_signatures is True
        assert s.batch_size == 2000
        assert s.hubspot_base_url == "http://sim:8090"


class TestRequire:
    """Each process names what it cannot start without."""

    def test_web_needs_the_api_token(self) -> None:
        """The web refuses to start without HUBLINK_API_TOKEN, naming it."""
        with pytest.raises(ConfigError, match="HUBLINK_API_TOKEN"):
            Settings.from_env({}).require("web")

    def test_worker_needs_a_hubspot_token_or_portals(self) -> None:
        """A worker needs HUBSPOT_ACCESS_TOKEN unless a portals file is given."""
        with pytest.raises(ConfigError, match="HUBSPOT_ACCESS_TOKEN"):
            Settings.from_env({}).require("worker")
        Settings.from_env({"HUBLINK_PORTALS_FILE": "portals.yaml"}).require("worker")


class TestSecrets:
    """Secrets stay out of sight."""

    def test_repr_hides_every_secret(self) -> None:
        """repr(settings) contains none of the configured secrets."""
        env = {
            "HUBLINK_API_TOKEN": "api-secret-1",
            "HUBLINK_ADMIN_TOKEN": "admin-secret-2",
            "HUBSPOT_ACCESS_TOKEN": "pat-secret-3",
            "HUBSPOT_CLIENT_SECRET": "client-secret-4",
            "HUBLINK_ALERT_WEBHOOK_URL": "https://hooks.example/secret-5",
        }
        s = Settings.from_env(env)
        for value in env.values():
            assert value not in repr(s)
        assert set(env.values()) <= set(s.secrets)


class TestRateLimit:
    """The N/<window> notation."""

    @pytest.mark.parametrize(
        ("text", "expected"), [("100/10s", (100, 10.0)), ("5/1s", (5, 1.0)), ("190/10000ms", (190, 10.0))]
    )
    def test_accepted_forms(self, text: str, expected: tuple[int, float]) -> None:
        """Seconds and milliseconds windows parse."""
        parsed = RateLimit.parse(text)
        assert (parsed.requests, parsed.window_s) == expected

    @pytest.mark.parametrize("text", ["100", "0/10s", "x/10s", "10/0s", "10/10m"])
    def test_refused_forms(self, text: str) -> None:
        """Anything else is refused."""
        with pytest.raises(ValueError, match="expected"):
            RateLimit.parse(text)
