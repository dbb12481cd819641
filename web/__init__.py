"""The web process: ``create_app(settings=None)`` is its only composition root.

Gunicorn serves ``web:create_app()``; ``flask --app web`` and the ``hublink`` command (:mod:`web.cli`)
find the same factory for the operators' commands. The package is laid out by what it serves:

- :mod:`web.api`: the direct API and the admin API (dead letters, events, trace, pauses);
- :mod:`web.webhooks`: the signed intake (HubSpot app webhooks, workflow actions, forms);
- :mod:`web.admin`: the dashboard (pages, login and its sessions, the overview's queries);
- :mod:`web.cli`: the operators' commands;
- shared nouns beside them: :mod:`web.parts` (what views and commands reach), :mod:`web.errors`,
  :mod:`web.responses`, :mod:`web.request_parsing`, :mod:`web.rules`, :mod:`web.throttle`,
  :mod:`web.health`, :mod:`web.metrics`.

The API, the webhooks and the dashboard import none of each other (an import-linter contract).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import structlog
from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from hublink import log as hublink_log
from hublink import tracing as hublink_tracing
from hublink.config.settings import Settings
from hublink.delivery.labels import LabelCache
from hublink.delivery.pauses import PauseStore
from hublink.intake.history import EventHistory
from hublink.intake.inbox import Inbox
from hublink.intake.live_rules import ActiveRules
from hublink.intake.rule_versions import RuleVersions
from hublink.lanes import LaneStore
from hublink.ops.audit import AuditLog
from hublink.ops.dead_letters import DeadLetterStore
from hublink.ops.event_replay import EventReplayer
from hublink.ops.metrics import Metrics
from hublink.store.connections import PROBE_POOL_SIZE, PROBE_POOL_WAIT_S, WEB_POOL_SIZE, connect
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts
from web import admin, api, cli, errors, health, metrics, responses, webhooks
from web import tracing as web_tracing
from web.errors import ApiError
from web.parts import Parts
from web.rules import live_rules, load_rules
from web.throttle import FailureThrottle


def create_app(
    settings: Settings | None = None,
    *,
    configure_logging: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flask:
    """Build the Flask app from ``settings`` (default: read from the environment once).

    ``environ`` supplies the secrets a rules file names by variable (default: os.environ). Raises
    ConfigError naming the first missing or bad variable, or the rules file's line. Connects to Redis lazily.
    """
    from_env = settings is None
    environ = os.environ if environ is None else environ
    if settings is None:
        settings = Settings.from_env(environ)
    settings.require("web")
    logging_wanted = configure_logging if configure_logging is not None else from_env
    if logging_wanted:
        hublink_log.configure(settings.log_level, settings.secrets)

    if from_env:
        # OTEL_* decide (off unless an endpoint or exporter is named); under gunicorn, per worker after the fork.
        hublink_tracing.setup(hublink_tracing.SERVICE_WEB, environ)

    rules_file, sources = load_rules(settings.rules_file, environ)
    redacted: tuple[set[str], set[str]] = (set(), set())  # the sources' secrets and query parameters so far

    def _redact_sources(active: ActiveRules) -> None:
        # Again, once rules name new secrets or credential-carrying query parameters (the file at start, a
        # published version later): gunicorn's access lines (its master builds this app) use this redactor too.
        secrets, params = redacted
        if logging_wanted and not (
            set(active.sources.secrets) <= secrets and set(active.sources.query_params) <= params
        ):
            secrets.update(active.sources.secrets)
            params.update(active.sources.query_params)
            hublink_log.configure(settings.log_level, (*settings.secrets, *secrets), query_params=tuple(params))

    from_file = ActiveRules.of_file(rules_file, sources)
    _redact_sources(from_file)

    app = Flask(__name__)
    web_tracing.install(app)
    if settings.trust_proxy:
        # One proxy in front: the public scheme, host and prefix it saw are what HubSpot signed.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)  # type: ignore[method-assign]
    # One byte over the limit: a body without Content-Length is read up to here, and read_body() refuses
    # one that reaches it (at exactly the limit Werkzeug would cut it silently, and it would be processed).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    app.config["SECRET_KEY"] = settings.secret_key or os.urandom(32)
    responses.install(app)
    keys = Keys(settings.redis_prefix)
    # Through the sentinels when configured; the socket also waits out intake's WAIT for replicas, if any.
    wait_s = settings.redis_wait_ms / 1000 if settings.redis_min_replicas else 0.0
    # One connection per request the process can hold (WEB_POOL_SIZE); the probes, which anyone may call,
    # get a small pool of their own, so that a flood of them waits among itself and never takes intake's.
    redis = connect(settings, timeout_s=settings.redis_timeout_s, blocking_s=wait_s, pool_size=WEB_POOL_SIZE)
    probe_redis = connect(
        settings, timeout_s=settings.redis_timeout_s, pool_size=PROBE_POOL_SIZE, pool_wait_s=PROBE_POOL_WAIT_S
    )
    scripts = Scripts(redis)
    # Replays from the dead-letter store and of past events go back into the lanes.
    lanes = LaneStore(redis, keys, lease_s=settings.lease_s, dedup_window_s=settings.dedup_window_s, scripts=scripts)
    history = EventHistory(redis, keys, days=settings.history_days, max_mb=settings.history_max_mb, scripts=scripts)
    rule_versions = RuleVersions(redis, keys, scripts=scripts)
    live = live_rules(settings, from_file, environ, rule_versions, on_change=_redact_sources)
    app.extensions["hublink"] = Parts(
        settings=settings,
        redis=redis,
        probe_redis=probe_redis,
        keys=keys,
        scripts=scripts,
        inbox=Inbox(
            redis,
            keys,
            claim_idle_s=settings.lease_s,
            rules_tag=lambda: live.current().tag,
            scripts=scripts,
            min_replicas=settings.redis_min_replicas,
            wait_ms=settings.redis_wait_ms,
        ),
        lanes=lanes,
        dead_letters=DeadLetterStore(redis, keys, lanes),
        metrics=Metrics(redis, keys),
        live_rules=live,
        rule_versions=rule_versions,
        pauses=PauseStore(redis, keys, lease_s=settings.lease_s, scripts=scripts),
        history=history,
        replayer=EventReplayer(history, lambda: live.current().rules, lanes, Metrics(redis, keys)),
        labels=LabelCache(redis, keys),
        login_throttle=FailureThrottle(redis, keys, kind="login", scripts=scripts),
        api_throttle=FailureThrottle(redis, keys, kind="admin_api", scripts=scripts),
        audit=AuditLog(redis, keys, days=settings.audit_days),
    )

    @app.before_request
    def _bind_request_id() -> None:
        # One id per request in every log line it causes; a caller's X-Request-Id is kept if it is sane.
        supplied = request.headers.get("X-Request-Id", "")
        request_id = supplied if 0 < len(supplied) <= 64 and supplied.isascii() else os.urandom(16).hex()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

    @app.before_request
    def _one_value_per_parameter() -> None:
        # ?limit=1&limit=2 is ambiguous (Flask would take the first): the API says so rather than guess.
        if request.query_string and request.path.startswith("/api/"):
            repeated = [name for name, values in request.args.lists() if len(values) > 1]
            if repeated:
                raise ApiError(400, "invalid_parameter", f"query parameter {repeated[0][:40]!r} given more than once")

    errors.register(app)
    api.register(app)
    webhooks.register(app)
    admin.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    cli.register(app)
    return app
