"""The worker process's composition root: every part a worker runs, assembled once from one Settings.

``worker.__main__`` reads the settings and the rules file, calls :func:`build`, and runs what it returns:
the RQ worker (a :class:`HubLinkWorker`, which hands its runtime to each job function), the expander and
the dispatcher threads. Nothing here connects at import time; redis-py opens connections on first use.

Redis trouble never ends the process. RQ's ``Worker.work()`` quits on any error it meets outside a job
(a ConnectionError in its heartbeat or after a drain that lost Redis, a TimeoutError, an OOM answer), and
its teardown then raises again on the dead connection: :func:`work` waits for Redis with backoff, lets
the old incarnation register its death, and enters ``work()`` again under the same name. A full Redis
refuses that record of death (a write), and RQ refuses a name whose registration looks alive; since the
process holds its name (:func:`hold_name`, ``hublink.ops.heartbeats.WorkerPresence``), the registration
it finds is its own leftover, or a dead process's, and :meth:`HubLinkWorker.register_birth` clears it.
What the worker held is leased, so it comes back to its lane when the lease runs out; nothing else is
repeated.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.job import Job

from hublink.config.portals import load_portals
from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.delivery.circuit import Breaker, CircuitSettings, RedisCircuitStore
from hublink.delivery.credentials import CredentialProvider, PortalCredentials, StaticCredentials, journal_tokens
from hublink.delivery.displacements import DisplacementHistory
from hublink.delivery.drain import DrainSettings, LaneDrainer
from hublink.delivery.hubspot import HubSpotClient
from hublink.delivery.installs import Installs
from hublink.delivery.labels import LabelCatalog, LabelDefinitions, check_rule_labels
from hublink.delivery.lookups import LookupResolver, ResolutionHistory
from hublink.delivery.pauses import PauseStore
from hublink.delivery.rate_limit import RedisRateLimiter
from hublink.domain.errors import ConfigError, StoreUnavailableError
from hublink.domain.retry_policy import RetryPolicy
from hublink.domain.rules import RuleSet
from hublink.domain.sources import Sources
from hublink.intake.expansion import Expansion
from hublink.intake.history import EventHistory
from hublink.intake.inbox import Inbox
from hublink.intake.journal import JournalOffsets, JournalPoller
from hublink.intake.live_rules import ActiveRules, LiveRules, RulesByTag
from hublink.intake.record_fates import RecordFates
from hublink.intake.rule_versions import RuleVersions
from hublink.lanes import LaneStore
from hublink.ops.alerts import Alerter
from hublink.ops.dead_letters import DeadLetterStore
from hublink.ops.heartbeats import WorkerHeartbeats, WorkerPresence
from hublink.ops.metrics import Metrics
from hublink.ops.privacy import PrivacyEraser
from hublink.store.connections import UNAVAILABLE, connect, connect_rq, is_unavailable, unavailable_reason
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts
from worker.loops import Dispatcher, Expander, JournalLoop

log = logging.getLogger("hublink.worker")

#: A drain stops taking new batches after this long, so that other lanes get the worker in turn.
DRAIN_BUDGET_S = 10.0
#: RQ's own job timeout for a drain: its time budget plus two slow HubSpot calls and settling.
JOB_TIMEOUT_S = 90
#: How long RQ keeps a failed drain job in its failed registry (a record; the work itself is leased).
FAILURE_TTL_S = 7 * 86400
#: Waits between attempts to reach Redis again after RQ's loop ended on Redis trouble: first, and longest.
REDIS_BACKOFF_FIRST_S = 0.5
REDIS_BACKOFF_MAX_S = 10.0
#: A work loop that ran this long before it failed starts its next wait from the first backoff again.
STABLE_AFTER_S = 60.0

log = logging.getLogger("hublink.worker")


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
    #: This worker's name: its RQ name when given, the inbox consumer's, the heartbeat key's.
    name: str = ""
    #: Polls the Webhooks Journal of the portals file's ``journal: true`` portals; None when there are none.
    journal: JournalLoop | None = None
    #: This process's hold on its name (claimed before RQ registers it; see ``hublink.ops.heartbeats``).
    presence: WorkerPresence | None = None


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
        #: A SIGTERM/SIGINT arrived: RQ's loop ended because it was asked to, not on an error.
        self.stop_signalled = False

    def register_birth(self) -> None:
        """RQ's registration, after clearing a registration this name left without a death.

        The process holds the name's presence (:meth:`WorkerPresence.claim` ran before RQ's loop), so a
        registration that says "alive" is a leftover: of a process killed with ``-9``, or of this process's
        previous loop, which could not record its death while Redis refused writes (RQ would refuse the
        name until the leftover expires, minutes later). DEL is taken even by a full Redis.
        """
        presence = self.runtime.presence
        held = presence is not None and presence.held
        if held and self.connection.exists(self.key) and not self.connection.hexists(self.key, "death"):
            log.warning("worker registration: clearing the one this name left", extra={"worker": self.name})
            self.connection.delete(self.key)
        super().register_birth()  # type: ignore[no-untyped-call]

    def execute_job(self, job: Job, queue: Queue) -> Any:
        """Run ``job`` with this worker's runtime."""
        if isinstance(job, HubLinkJob):
            job.runtime = self.runtime
        return super().execute_job(job, queue)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """RQ's warm shutdown, remembered: :func:`work` must not start the loop again after it."""
        self.stop_signalled = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def set_shutdown_requested_date(self) -> None:
        """RQ's record of a shutdown request; skipped (not raised into the running job) when Redis is down."""
        with suppress(*UNAVAILABLE):
            super().set_shutdown_requested_date()  # type: ignore[no-untyped-call]


def work(rt: Runtime, *, name: str | None, burst: bool, logging_level: str) -> None:
    """Run RQ's work loop until a signal (or, with ``burst``, an empty queue); outlive any Redis trouble."""
    backoff_s = REDIS_BACKOFF_FIRST_S
    while True:
        worker = HubLinkWorker(rt, name=name)
        name = worker.name  # the next incarnation keeps it (RQ makes one up when none is given)
        started = time.monotonic()
        try:
            worker.work(burst=burst, with_scheduler=True, logging_level=logging_level)
        except StopRequested:
            return
        except Exception as exc:
            # RQ's teardown after a Redis failure, or its start-up while Redis is away.
            if not is_unavailable(exc):
                raise
            log.warning("worker loop: Redis unavailable", extra={"error": unavailable_reason(exc)})
        if worker.stop_signalled or burst:
            return
        # Not asked to stop, so RQ's loop ended on an error (it logged it): wait for Redis and go again.
        if time.monotonic() - started > STABLE_AFTER_S:
            backoff_s = REDIS_BACKOFF_FIRST_S
        try:
            backoff_s = _wait_for_redis(rt.rq_redis, backoff_s, stopping=partial(getattr, worker, "stop_signalled"))
        except StopRequested:  # RQ's signal handler, still installed, ends the wait
            return
        if worker.stop_signalled:
            return
        # The old incarnation registers its death (it could not while Redis was away), so that its name,
        # which RQ refuses while it looks alive, can be registered again; and stops listening for commands.
        with suppress(*UNAVAILABLE):
            worker.register_death()  # type: ignore[no-untyped-call]
        with suppress(*UNAVAILABLE, AttributeError):
            worker.unsubscribe()  # type: ignore[no-untyped-call]
        log.warning("worker loop: Redis answers again; resuming work", extra={"worker": worker.name})


def hold_name(rt: Runtime) -> None:
    """Hold the worker's name before anything runs under it: at once, or once the live holder stops.

    Redis trouble meanwhile is waited out with backoff, as :func:`work` does.
    """
    if rt.presence is None:
        return
    backoff_s = REDIS_BACKOFF_FIRST_S
    while True:
        try:
            rt.presence.claim(rt.name)
        except StoreUnavailableError as exc:
            log.warning("worker name: Redis unavailable", extra={"error": str(exc), "retry_in_s": backoff_s})
            time.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, REDIS_BACKOFF_MAX_S)
        else:
            return


def _wait_for_redis(redis: Redis, backoff_s: float, *, stopping: Callable[[], bool]) -> float:
    """Return once ``redis`` answers PING (or ``stopping()``), waiting longer after each failed try; the next wait."""
    while not stopping():
        log.warning("worker loop: waiting for Redis", extra={"retry_in_s": round(backoff_s, 2)})
        time.sleep(backoff_s)
        backoff_s = min(backoff_s * 2, REDIS_BACKOFF_MAX_S)
        try:
            if redis.ping():
                return backoff_s
        except UNAVAILABLE:
            continue
    return backoff_s


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


def checked_rules(rules: RuleSet, labels: LabelCatalog, credentials: CredentialProvider, settings: Settings) -> RuleSet:
    """The rules whose labels HubSpot defines; each refused rule is logged as an error naming the known labels."""
    if not any(r.options_of(i).label for r in rules.rules for i in range(len(r.associations))):
        return rules
    portals: list[str | None] = [None] if settings.hubspot_access_token else []
    portals += list(credentials.portal_ids) if isinstance(credentials, PortalCredentials) else []

    def definitions(portal: str | None, from_type: str, to_type: str) -> LabelDefinitions:
        return labels.definitions(credentials.for_portal(portal), portal, from_type, to_type)

    kept, problems = check_rule_labels(rules, definitions, portals)
    for problem in problems:
        log.error("rule refused: unknown label", extra={"problem": problem})
    return kept


def build(settings: Settings, rules_file: RulesFile | None = None, *, consumer: str = "") -> Runtime:
    """Assemble the worker's parts; ``consumer`` names this process in the inbox's consumer group."""
    rules_file = rules_file or RulesFile.read(None)
    keys = Keys(settings.redis_prefix)
    redis = connect(settings, timeout_s=max(settings.redis_timeout_s, 5.0), blocking_s=2.0)
    rq_redis = connect_rq(settings, connect_timeout_s=max(settings.redis_timeout_s, 5.0))
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
    credentials = credentials_for(settings, redis, keys, client)
    labels = LabelCatalog(redis, keys, client, cache_ttl_s=settings.label_cache_ttl_s)
    by_tag, live = None, None
    if settings.rules_source == "redis":
        # Each entry is expanded under the version its tag names, loaded when first needed; the journal
        # accepts entries under the published one, as the web does.
        versions = RuleVersions(redis, keys, scripts=scripts)
        live = LiveRules(ActiveRules.of_file(rules_file, Sources.empty()), versions=versions, seed=rules_file)
        by_tag = RulesByTag(
            versions,
            live,
            rules_file=rules_file,
            prepare=partial(checked_rules, labels=labels, credentials=credentials, settings=settings),
        )
        rules = RuleSet.empty()
    else:
        rules = checked_rules(rules_file.rules, labels, credentials, settings)
    breaker = Breaker(
        RedisCircuitStore(redis, keys, PauseStore(redis, keys, lease_s=settings.lease_s, scripts=scripts), metrics),
        CircuitSettings(
            errors=settings.circuit_errors,
            window_s=settings.circuit_window_s,
            probe_s=settings.circuit_probe_s,
            uninstalled_probe_s=settings.uninstalled_probe_s,
            uninstalled_hold_s=settings.uninstalled_hold_h * 3600,
        ),
    )
    history = EventHistory(redis, keys, days=settings.history_days, max_mb=settings.history_max_mb, scripts=scripts)
    fates = RecordFates(redis, keys)
    drainer = LaneDrainer(
        lanes=lanes,
        fates=fates,
        resolutions=ResolutionHistory(history),
        displacements=DisplacementHistory(history),
        circuit=breaker,
        limiter=RedisRateLimiter(redis, keys, margin=settings.rate_limit_margin, scripts=scripts),
        client=client,
        credentials=credentials,
        labels=labels,
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
    name = consumer or default_name()
    heartbeats = WorkerHeartbeats(redis, keys)
    presence = WorkerPresence(redis, keys, heartbeats)
    expander = Expander(
        inbox,
        Expansion(
            inbox,
            rules,
            lanes,
            metrics,
            rules_tag=rules_file.tag,
            history=history,
            own_app_id=settings.hubspot_app_id,
            fates=fates,
            by_tag=by_tag,
            eraser=PrivacyEraser(redis, keys, history, history_days=settings.history_days, scripts=scripts),
        ),
        consumer=name,
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
    dispatcher = Dispatcher(
        lanes,
        queue,
        job_timeout_s=JOB_TIMEOUT_S,
        failure_ttl_s=FAILURE_TTL_S,
        alerter=alerter,
        heartbeats=heartbeats,
        worker_name=name,
        presence=presence,
    )
    journal = None
    if isinstance(credentials, PortalCredentials) and credentials.journal_portal_ids:
        # The journal takes the app's token (client_credentials), never a portal's.
        app_tokens = journal_tokens(settings.hubspot_client_id, settings.hubspot_client_secret, redis, keys, client)

        def access(portal_id: str) -> tuple[str, str | None]:
            return app_tokens.token(), credentials.base_url_of(portal_id)

        # The journal accepts entries as the web does: under this worker's rules, with the same replication.
        journal_inbox = Inbox(
            redis,
            keys,
            claim_idle_s=settings.lease_s,
            rules_tag=rules_file.tag if live is None else (lambda: live.current().tag),
            scripts=scripts,
            min_replicas=settings.redis_min_replicas,
            wait_ms=settings.redis_wait_ms,
        )
        poller = JournalPoller(
            client,
            access,
            journal_inbox,
            JournalOffsets(redis, keys, scripts),
            owner=name,
            poll_s=settings.journal_poll_s,
            refused=app_tokens.invalidate,
            lifecycle=Installs(breaker, credentials).lifecycle,
        )
        journal = JournalLoop(poller, credentials.journal_portal_ids, poll_s=settings.journal_poll_s)
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
        name,
        journal,
        presence,
    )


def default_name() -> str:
    """A worker's name when none is given: host and pid (what ``python -m worker --check`` looks for)."""
    return f"{os.uname().nodename}:{os.getpid()}"
