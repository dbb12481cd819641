"""The web process: ``create_app(settings=None)`` is its only composition root.

Gunicorn serves ``web:create_app()``; ``flask --app web`` finds the same factory for the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import structlog
import yaml
from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from hublink import log as hublink_log
from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.delivery.pauses import PauseStore
from hublink.domain.sources import Sources
from hublink.intake.history import EventHistory
from hublink.intake.inbox import Inbox
from hublink.lanes import LaneStore
from hublink.ops.dead_letters import DeadLetterStore
from hublink.ops.event_replay import EventReplayer
from hublink.ops.metrics import Metrics
from hublink.ops.sessions import SessionStore
from hublink.ops.throttle import FailureThrottle
from hublink.store.connections import connect
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts
from web import (
    admin,
    api,
    backfill_cli,
    cli,
    cli_controls,
    cli_events,
    cli_subscriptions,
    controls,
    errors,
    events,
    health,
    metrics_view,
    responses,
    webhooks,
)
from web import admin_controls as _admin_controls  # noqa: F401 - adds the pause buttons' routes to admin.bp
from web.container import Parts
from web.errors import ApiError
from web.labels import build_label_check


def load_rules(path: str | None, environ: Mapping[str, str]) -> tuple[RulesFile, Sources]:
    """HUBLINK_RULES_FILE and its sources (none when unset); raises ConfigError naming the file and line."""
    rules_file = RulesFile.read(path)
    if not path:
        return rules_file, Sources.empty()
    return rules_file, Sources.load(yaml.safe_load(rules_file.text), environ, path)


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

    rules_file, sources = load_rules(settings.rules_file, environ)
    if logging_wanted and (sources.secrets or sources.query_params):
        # Again, now that the rules file has named its secrets and credential-carrying query parameters:
        # gunicorn's access lines (its master builds this app) go through the same redactor.
        hublink_log.configure(
            settings.log_level, (*settings.secrets, *sources.secrets), query_params=sources.query_params
        )

    app = Flask(__name__)
    if settings.trust_proxy:
        # One proxy in front: the public scheme, host and prefix it saw are what HubSpot signed.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)  # type: ignore[method-assign]
    # One byte over the limit: a body without Content-Length is read up to here, and read_body() refuses
    # one that reaches it (at exactly the limit Werkzeug would cut it silently, and it would be processed).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    app.config["SECRET_KEY"] = settings.secret_key or os.urandom(32)
    responses.install(app, dashboard_prefix=admin.bp.url_prefix or "/admin")
    keys = Keys(settings.redis_prefix)
    # Through the sentinels when configured; the socket also waits out intake's WAIT for replicas, if any.
    wait_s = settings.redis_wait_ms / 1000 if settings.redis_min_replicas else 0.0
    redis = connect(settings, timeout_s=settings.redis_timeout_s, blocking_s=wait_s)
    scripts = Scripts(redis)
    # Replays from the dead-letter store go back into the lanes.
    lanes = LaneStore(redis, keys, lease_s=settings.lease_s, dedup_window_s=settings.dedup_window_s, scripts=scripts)
    app.extensions["hublink"] = Parts(
        settings,
        redis,
        keys,
        Inbox(
            redis,
            keys,
            claim_idle_s=settings.lease_s,
            rules_tag=rules_file.tag,
            scripts=scripts,
            min_replicas=settings.redis_min_replicas,
            wait_ms=settings.redis_wait_ms,
        ),
        DeadLetterStore(redis, keys, lanes),
        Metrics(redis, keys),
        sources,
        SessionStore(redis, keys),
        FailureThrottle(redis, keys, kind="login", scripts=scripts),
        FailureThrottle(redis, keys, kind="admin_api", scripts=scripts),
        build_label_check(settings, redis, keys, scripts, environ),
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
    app.register_blueprint(api.bp)
    controls.install(app, PauseStore(redis, keys, lease_s=settings.lease_s, scripts=scripts))
    history = EventHistory(redis, keys, days=settings.history_days, max_mb=settings.history_max_mb, scripts=scripts)
    events.install(app, history, EventReplayer(history, rules_file.rules, lanes, Metrics(redis, keys)))
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(metrics_view.bp)
    admin.register(app)
    app.cli.add_command(cli.dead_letters)
    app.cli.add_command(cli.inbox)
    app.cli.add_command(cli.rules)
    app.cli.add_command(cli.admin)
    for command in (backfill_cli.backfill, backfill_cli.backfill_cancel, backfill_cli.backfill_list):
        app.cli.add_command(command)
    app.cli.add_command(cli_controls.pause)
    app.cli.add_command(cli_controls.resume)
    app.cli.add_command(cli_controls.list_pauses)
    app.cli.add_command(cli_events.events)
    app.cli.add_command(cli_events.trace)
    app.cli.add_command(cli_subscriptions.hubspot)
    return app
