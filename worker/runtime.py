"""The worker process's composition root: every part a worker runs, assembled once from one Settings.

``worker.__main__`` reads the settings and the rules file, calls :func:`build`, and runs what it returns:
the RQ worker (a :class:`HubLinkWorker`, which hands its runtime to each job function), the expander and
the dispatcher threads. Nothing here connects at import time; redis-py opens connections on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job

from hublink.config.portals import load_portals
from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.delivery.circuit import Breaker, CircuitSettings, RedisCircuitStore
from hublink.delivery.credentials import CredentialProvider, PortalCredentials, StaticCredentials
from hublink.delivery.drain import DrainSettings, LaneDrainer
from hublink.delivery.hubspot import HubSpotClient
from hublink.delivery.lookups import LookupResolver
from hublink.delivery.pauses import PauseStore
from hublink.delivery.rate_limit import RedisRateLimiter
from hublink.domain.errors import ConfigError
from hublink.domain.retry_policy import RetryPolicy
from hublink.intake.expansion import Expansion
from hublink.intake.history import EventHistory
from hublink.intake.inbox import Inbox
from hublink.lanes import LaneStore
from hublink.ops.alerts import Alerter
from hublink.ops.dead_letters import DeadLetterStore
from hublink.ops.metrics import Metrics
from hublink.store.connections import connect
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts
from worker.loops import Dispatcher, Expander

#: A drain stops taking new batches after this long, so that other lanes get the worker in turn.
DRAIN_BUDGET_S = 10.0
#: RQ's own job timeout for a drain: its time budget plus two slow HubSpot calls and settling.
JOB_TIMEOUT_S = 90
#: How long RQ keeps a failed drain job in its failed registry (a record; the work itself is leased).
FAILURE_TTL_S = 7 * 86400


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a worker process runs, built from one Settings."""

    settings: Settings
    redis: Redis
    #: RQ blocks on its queue for minutes: its own connection, without HubLink's short socket timeout.
    rq_redis: Redis
    queue: Queue
    lanes: LaneStore
    drainer: LaneDrainer
    dead_letters: DeadLetterStore
    expander: Expander
    dispatcher: Dispatcher


class HubLinkJob(Job):
    """An RQ job whose function is handed the worker's :class:`Runtime` as its first argument.

    Job functions (``worker.jobs``) take their parts from the worker that runs them, never from a module
    global: a job run by anything but ``python -m worker`` fails loudly instead of building a second
    runtime from the environment.
    """

    runtime: Runtime | None = None

    def _execute(self) -> Any:
        if self.runtime is None:
            raise RuntimeError("HubLink jobs run in `python -m worker`, which hands them its runtime")
        assert self.func is not None
        return self.func(self.runtime, *self.args, **self.kwargs)


class HubLinkWorker(SimpleWorker):
    """RQ's SimpleWorker (no fork per job) that gives each job this process's runtime."""

    job_class = HubLinkJob

    def __init__(self, runtime: Runtime, *, name: str | None = None) -> None:
        super().__init__(
            [runtime.queue], connection=runtime.rq_redis, serializer="json", name=name, job_class=HubLinkJob
        )
        self.runtime = runtime

    def execute_job(self, job: Job, queue: Queue) -> Any:
        """Run ``job`` with this worker's runtime."""
        if isinstance(job, HubLinkJob):
            job.runtime = self.runtime
        return super().execute_job(job, queue)


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


def build(settings: Settings, rules_file: RulesFile | None = None, *, consumer: str = "") -> Runtime:
    """Assemble the worker's parts; ``consumer`` names this process in the inbox's consumer group."""
    rules_file = rules_file or RulesFile.read(None)
    keys = Keys(settings.redis_prefix)
    redis = connect(settings.redis_url, timeout_s=max(settings.redis_timeout_s, 5.0), blocking_s=2.0)
    rq_redis = Redis.from_url(settings.redis_url)
    queue = Queue(settings.queue_name, connection=rq_redis, serializer="json")
    scripts = Scripts(redis)
    metrics = Metrics(redis, keys)
    lanes = LaneStore(
        redis,
        keys,
        lease_s=settings.lease_s,
        dedup_window_s=settings.dedup_window_s,
        dead_letter_ttl_s=settings.dead_letter_ttl_days * 86400,
        dead_letter_max=settings.dead_letter_max,
        scripts=scripts,
        # Linked associations are kept (compactly) as long as the event history, for a record's trace.
        done_ttl_s=max(settings.history_days * 86400, 1),
    )
    client = HubSpotClient(
        settings.hubspot_base_url,
        connect_timeout_s=settings.hubspot_connect_timeout_s,
        read_timeout_s=settings.hubspot_read_timeout_s,
    )
    breaker = Breaker(
        RedisCircuitStore(redis, keys, PauseStore(redis, keys, lease_s=settings.lease_s, scripts=scripts), metrics),
        CircuitSettings(
            errors=settings.circuit_errors, window_s=settings.circuit_window_s, probe_s=settings.circuit_probe_s
        ),
    )
    drainer = LaneDrainer(
        lanes=lanes,
        circuit=breaker,
        limiter=RedisRateLimiter(redis, keys, margin=settings.rate_limit_margin, scripts=scripts),
        client=client,
        credentials=credentials_for(settings, redis, keys, client),
        metrics=metrics,
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
            max_retry_after_s=settings.max_retry_after_s,
        ),
        settings=DrainSettings(
            batch_size=settings.batch_size,
            batch_window_ms=settings.batch_window_ms,
            rate_limit=settings.hubspot_rate_limit,
            max_limiter_wait_ms=settings.max_limiter_wait_ms,
            budget_s=DRAIN_BUDGET_S,
            account_timezone=settings.account_timezone,
            daily_reserve=settings.daily_reserve,
        ),
    )
    inbox = Inbox(redis, keys, claim_idle_s=settings.lease_s, scripts=scripts)
    expander = Expander(
        inbox,
        Expansion(
            inbox,
            rules_file.rules,
            lanes,
            metrics,
            rules_tag=rules_file.tag,
            history=EventHistory(
                redis, keys, days=settings.history_days, max_mb=settings.history_max_mb, scripts=scripts
            ),
        ),
        consumer=consumer or f"{os.uname().nodename}:{os.getpid()}",
    )
    alerter = Alerter(
        redis,
        keys,
        metrics,
        url=settings.alert_webhook_url,
        interval_s=settings.alert_interval_s,
        error_rate=settings.alert_error_rate,
        public_url=settings.public_url,
        pagerduty_key=settings.alert_pagerduty_key,
        pagerduty_url=settings.alert_pagerduty_url,
    )
    dispatcher = Dispatcher(lanes, queue, job_timeout_s=JOB_TIMEOUT_S, failure_ttl_s=FAILURE_TTL_S, alerter=alerter)
    return Runtime(
        settings,
        redis,
        rq_redis,
        queue,
        lanes,
        drainer,
        DeadLetterStore(redis, keys, lanes),
        expander,
        dispatcher,
    )
