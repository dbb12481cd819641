"""The worker process's parts, assembled once: what the job functions run on.

``worker.__main__`` builds the runtime and installs it before RQ starts. A plain ``rq worker -S json``
(no composition root) gets one built from the environment on first use, the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from redis import Redis

from hublink.connections import connect
from hublink.credentials import CredentialProvider, PortalCredentials, StaticCredentials, load_portals
from hublink.dead_letters import DeadLetterStore
from hublink.domain.errors import ConfigError
from hublink.domain.retry_policy import RetryPolicy
from hublink.drain import DrainSettings, LaneDrainer
from hublink.hubspot import HubSpotClient
from hublink.keys import Keys
from hublink.lanes import LaneStore
from hublink.lookup_resolver import LookupResolver
from hublink.metrics import Metrics
from hublink.queueing import Queueing
from hublink.rate_limit import RedisRateLimiter
from hublink.scripts import Scripts
from hublink.settings import Settings

#: A drain stops taking new batches after this long, so that other lanes get the worker in turn.
DRAIN_BUDGET_S = 10.0


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a job needs, built from one Settings."""

    settings: Settings
    redis: Redis
    lanes: LaneStore
    drainer: LaneDrainer
    dead_letters: DeadLetterStore


def credentials_for(settings: Settings, redis: Redis, keys: Keys, client: HubSpotClient) -> CredentialProvider:
    """Single-portal credentials, or the portals file's (falling back to HUBSPOT_ACCESS_TOKEN when set)."""
    static = StaticCredentials(settings.hubspot_access_token) if settings.hubspot_access_token else None
    if not settings.portals_file:
        assert static is not None  # Settings.require("worker") checked it
        return static
    try:
        with open(settings.portals_file, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"HUBLINK_PORTALS_FILE: cannot read {settings.portals_file}: {exc.strerror}") from None
    portals = load_portals(text, os.environ, settings.portals_file)
    return PortalCredentials(portals, redis, keys, client, fallback=static)


def build(settings: Settings) -> Runtime:
    """Assemble the worker's parts; connects lazily (redis-py opens connections on first use)."""
    keys = Keys(settings.redis_prefix)
    redis = connect(settings.redis_url, timeout_s=max(settings.redis_timeout_s, 5.0), blocking_s=2.0)
    scripts = Scripts(redis)
    lanes = LaneStore(
        redis,
        keys,
        lease_s=settings.lease_s,
        dead_letter_ttl_s=settings.dead_letter_ttl_days * 86400,
        dead_letter_max=settings.dead_letter_max,
        scripts=scripts,
    )
    queueing = Queueing(redis, keys, lease_s=settings.lease_s, dedup_window_s=settings.dedup_window_s, scripts=scripts)
    client = HubSpotClient(
        settings.hubspot_base_url,
        connect_timeout_s=settings.hubspot_connect_timeout_s,
        read_timeout_s=settings.hubspot_read_timeout_s,
    )
    drainer = LaneDrainer(
        lanes=lanes,
        limiter=RedisRateLimiter(redis, keys, margin=settings.rate_limit_margin, scripts=scripts),
        client=client,
        credentials=credentials_for(settings, redis, keys, client),
        queueing=queueing,
        metrics=Metrics(redis, keys),
        resolver=LookupResolver(
            redis,
            keys,
            client,
            cache_ttl_s=settings.lookup_cache_ttl_s,
            search_rate_limit=settings.hubspot_search_rate_limit,
        ),
        policy=RetryPolicy(
            base_s=settings.retry_base_s,
            cap_s=settings.retry_cap_s,
            max_attempts=settings.max_attempts,
            fresh_record_grace_s=settings.fresh_record_grace_s,
            daily_limit_defer_s=settings.daily_limit_defer_s,
            rate_window_s=settings.hubspot_rate_limit.window_s,
        ),
        settings=DrainSettings(
            batch_size=settings.batch_size,
            batch_window_ms=settings.batch_window_ms,
            rate_limit=settings.hubspot_rate_limit,
            max_limiter_wait_ms=settings.max_limiter_wait_ms,
            budget_s=DRAIN_BUDGET_S,
        ),
    )
    return Runtime(settings, redis, lanes, drainer, DeadLetterStore(redis, keys, queueing))


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    """Make ``runtime`` the one the job functions use (called by the composition root)."""
    global _current
    _current = runtime


def current() -> Runtime:
    """The installed runtime, or one built from the environment for a plain ``rq worker``."""
    global _current
    if _current is None:
        settings = Settings.from_env(os.environ)
        settings.require("worker")
        _current = build(settings)
    return _current
