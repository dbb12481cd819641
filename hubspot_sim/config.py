"""The simulator's run-time settings: tokens, limits, latency, OAuth, strictness, and HubSpot's lifecycle modes.

The command line sets the start-up values, ``PUT /_sim/config`` changes them, and ``POST /_sim/reset``
returns to the start-up values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hubspot_sim.association_limits import parse_limits
from hubspot_sim.daily_limits import DEFAULT_TIMEZONE, DailyLimit, parse_timezone
from hubspot_sim.rate_limits import RateLimit, parse_rate_limit

DEFAULT_OAUTH_TOKEN_TTL_S = 1800.0  # HubSpot's access tokens live 30 minutes (docs/reference/hubspot.md §6.1)
#: ``whole``: a default batch naming an invalid id fails as a whole (400), as integrators report HubSpot's
#: doing (docs/reference/hubspot.md §8); ``per-input``: the valid inputs succeed and each invalid one gets
#: an ``errors[]``.
BATCH_ERRORS = ("whole", "per-input")
#: ``any``: every well-formed id exists; ``strict``: only seeded (or synthetic) records exist.
RECORDS_MODES = ("any", "strict")
#: What an association write naming a merged-away id does (docs/reference/hubspot.md §9.2 leaves it open):
#: ``alias`` succeeds on the record the id now points to and echoes its new id; ``invalid`` answers
#: ``INVALID_OBJECT_IDS`` as for an unknown id.
MERGED_IDS_MODES = ("alias", "invalid")
#: A journal entry's file: HubSpot's reported wrapper ``{"offset", "journalEvents", "publishedAt"}``
#: (docs/reference/hubspot.md §9.1) or a bare JSON array of the events.
JOURNAL_FORMATS = ("array", "wrapper")
#: Who may read the journal and what it holds. ``app`` is HubSpot's (§9.1): an app token from the
#: client_credentials grant only (portal tokens 403), and only events of journal subscriptions; ``any`` lets
#: every accepted token read a journal of every event, for clients that predate the app token.
JOURNAL_AUTH_MODES = ("any", "app")
#: Batch creates answer 200 since 2025-08 (docs/reference/hubspot.md §9.7); 201 is the older answer.
BATCH_CREATE_STATUSES = (200, 201)
#: The portal static (``--token``) tokens act for, and that events of control routes name by default.
DEFAULT_PORTAL_ID = 62515
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
        "merged_ids",
        "association_limits",
        "journal_format",
        "journal_auth",
        "batch_create_status",
        "token_429_s",
        "portal_id",
        "webhook_retry_scale",
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
    merged_ids: str = "alias"
    #: "deals>companies" or "deals>companies:Primary" -> the most a record may hold (association_limits.py).
    association_limits: tuple[tuple[str, int], ...] = ()
    journal_format: str = "array"
    journal_auth: str = "any"
    batch_create_status: int = 200
    token_429_s: float = 0.0  # the token endpoint's throttling, from the PUT that set it (SimState keeps the end)
    portal_id: int = DEFAULT_PORTAL_ID
    webhook_retry_scale: float = 1.0  # multiplies HubSpot's retry schedule for the pushes of changes

    def __post_init__(self) -> None:
        if self.batch_errors not in BATCH_ERRORS:
            raise ValueError(f"batch_errors: expected one of {list(BATCH_ERRORS)}, got {self.batch_errors!r}")
        if self.records not in RECORDS_MODES:
            raise ValueError(f"records: expected one of {list(RECORDS_MODES)}, got {self.records!r}")
        for name, value, allowed in (
            ("merged_ids", self.merged_ids, MERGED_IDS_MODES),
            ("journal_format", self.journal_format, JOURNAL_FORMATS),
            ("journal_auth", self.journal_auth, JOURNAL_AUTH_MODES),
            ("batch_create_status", self.batch_create_status, BATCH_CREATE_STATUSES),
        ):
            if value not in allowed:
                raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")
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
        for key in ("batch_errors", "records", "timezone", "merged_ids", "journal_format", "journal_auth"):
            if key in body:
                if not isinstance(body[key], str):
                    raise ValueError(f"{key}: expected text, got {body[key]!r}")
                changes[key] = body[key]
        if "daily_limit" in body:
            limit = body["daily_limit"]
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
                raise ValueError(f"daily_limit: expected null or an integer of at least 1, got {limit!r}")
            changes["daily_limit"] = limit
        if "association_limits" in body:
            changes["association_limits"] = parse_limits(body["association_limits"])
        if "batch_create_status" in body:
            changes["batch_create_status"] = body["batch_create_status"]
        for key, low, high in (("token_429_s", 0, 86_400), ("webhook_retry_scale", 0, 1)):
            if key in body:
                value = body[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                    raise ValueError(f"{key}: expected a number from {low} to {high}, got {value!r}")
                changes[key] = float(value)
        if "portal_id" in body:
            portal = body["portal_id"]
            if isinstance(portal, bool) or not isinstance(portal, int) or portal < 1:
                raise ValueError(f"portal_id: expected a HubSpot account id (a positive integer), got {portal!r}")
            changes["portal_id"] = portal
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
            "merged_ids": self.merged_ids,
            "association_limits": dict(self.association_limits),
            "journal_format": self.journal_format,
            "journal_auth": self.journal_auth,
            "batch_create_status": self.batch_create_status,
            "token_429_s": self.token_429_s,
            "portal_id": self.portal_id,
            "webhook_retry_scale": self.webhook_retry_scale,
        }
