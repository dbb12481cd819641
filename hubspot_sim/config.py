"""The simulator's run-time settings: tokens, rate and daily limits, latency, OAuth token lifetime, strictness.

The command line sets the start-up values, ``PUT /_sim/config`` changes them, and ``POST /_sim/reset``
returns to the start-up values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hubspot_sim.daily_limits import DEFAULT_TIMEZONE, DailyLimit, parse_timezone
from hubspot_sim.rate_limits import RateLimit, parse_rate_limit

DEFAULT_OAUTH_TOKEN_TTL_S = 1800.0  # HubSpot's access tokens live 30 minutes (hubspot-api.md §6.1)
#: ``whole``: a default batch naming an invalid id fails as a whole (400), as integrators report HubSpot's
#: doing (hubspot-api.md §8); ``per-input``: the valid inputs succeed and each invalid one gets an ``errors[]``.
BATCH_ERRORS = ("whole", "per-input")
#: ``any``: every well-formed id exists; ``strict``: only seeded (or synthetic) records exist.
RECORDS_MODES = ("any", "strict")
_CONFIG_KEYS = frozenset(
    {
        "rate_limit",
        "search_rate_limit",
        "oauth_token_ttl_s",
        "latency_ms",
        "tokens",
        "batch_errors",
        "records",
        "daily_limit",
        "timezone",
    }
)


@dataclass(frozen=True, slots=True)
class Config:
    """What ``PUT /_sim/config`` changes."""

    tokens: frozenset[str] = frozenset()  # empty: any non-empty bearer token is accepted
    rate_limit: RateLimit | None = None
    search_rate_limit: RateLimit | None = None
    latency_ms: int = 0
    oauth_token_ttl_s: float = DEFAULT_OAUTH_TOKEN_TTL_S
    batch_errors: str = "whole"
    records: str = "any"
    daily_limit: int | None = None
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        if self.batch_errors not in BATCH_ERRORS:
            raise ValueError(f"batch_errors: expected one of {list(BATCH_ERRORS)}, got {self.batch_errors!r}")
        if self.records not in RECORDS_MODES:
            raise ValueError(f"records: expected one of {list(RECORDS_MODES)}, got {self.records!r}")
        self.daily()  # validates the limit and the time zone

    def daily(self) -> DailyLimit | None:
        """The daily allowance, or None when off. Raises ValueError for a bad limit or time zone."""
        parse_timezone(self.timezone)
        return None if self.daily_limit is None else DailyLimit(self.daily_limit, self.timezone)

    def updated(self, body: Any) -> Config:
        """A copy with a ``PUT /_sim/config`` body applied. Raises ValueError naming the bad key."""
        if not isinstance(body, dict):
            raise ValueError(f"expected a JSON object of settings, got {body!r}")
        unknown = sorted(set(body) - _CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; expected some of {sorted(_CONFIG_KEYS)}")
        changes: dict[str, Any] = {}
        for key in ("rate_limit", "search_rate_limit"):
            if key in body:
                if body[key] is not None and not isinstance(body[key], str):
                    raise ValueError(f"{key}: expected null or text like 100/10s, got {body[key]!r}")
                try:
                    changes[key] = parse_rate_limit(body[key])
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        if "latency_ms" in body:
            value = body["latency_ms"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"latency_ms: expected an integer of at least 0, got {value!r}")
            changes["latency_ms"] = value
        if "oauth_token_ttl_s" in body:
            ttl = body["oauth_token_ttl_s"]
            if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
                raise ValueError(f"oauth_token_ttl_s: expected a number above 0, got {ttl!r}")
            changes["oauth_token_ttl_s"] = float(ttl)
        if "tokens" in body:
            tokens = body["tokens"] or []
            if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
                raise ValueError(f"tokens: expected a list of non-empty strings, got {tokens!r}")
            changes["tokens"] = frozenset(tokens)
        for key in ("batch_errors", "records", "timezone"):
            if key in body:
                if not isinstance(body[key], str):
                    raise ValueError(f"{key}: expected text, got {body[key]!r}")
                changes[key] = body[key]
        if "daily_limit" in body:
            limit = body["daily_limit"]
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
                raise ValueError(f"daily_limit: expected null or an integer of at least 1, got {limit!r}")
            changes["daily_limit"] = limit
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON form; tokens are counted, never shown."""
        return {
            "tokens": len(self.tokens),
            "rate_limit": str(self.rate_limit) if self.rate_limit else None,
            "search_rate_limit": str(self.search_rate_limit) if self.search_rate_limit else None,
            "latency_ms": self.latency_ms,
            "oauth_token_ttl_s": self.oauth_token_ttl_s,
            "batch_errors": self.batch_errors,
            "records": self.records,
            "daily_limit": self.daily_limit,
            "timezone": self.timezone,
        }
