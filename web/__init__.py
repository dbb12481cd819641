"""The web process: ``create_app(settings=None)`` is its only composition root.

Gunicorn serves ``web:create_app()``; ``flask --app web`` finds the same factory for the CLI.
"""

from __future__ import annotations

import os

from flask import Flask

from hublink import log as hublink_log
from hublink.connections import connect
from hublink.dead_letters import DeadLetterStore
from hublink.keys import Keys
from hublink.queueing import Queueing
from hublink.scripts import Scripts
from hublink.settings import Settings
from web import api, cli, errors, health
from web.container import Parts


def create_app(settings: Settings | None = None, *, configure_logging: bool | None = None) -> Flask:
    """Build the Flask app from ``settings`` (default: read from the environment once).

    Raises ConfigError naming the first missing or bad variable. Connects to Redis lazily.
    """
    from_env = settings is None
    if settings is None:
        settings = Settings.from_env(os.environ)
    settings.require("web")
    if configure_logging if configure_logging is not None else from_env:
        hublink_log.configure(settings.log_level, settings.secrets)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["SECRET_KEY"] = settings.secret_key or os.urandom(32)
    keys = Keys(settings.redis_prefix)
    redis = connect(settings.redis_url, timeout_s=settings.redis_timeout_s)
    scripts = Scripts(redis)
    queueing = Queueing(redis, keys, lease_s=settings.lease_s, dedup_window_s=settings.dedup_window_s, scripts=scripts)
    app.extensions["hublink"] = Parts(settings, redis, keys, queueing, DeadLetterStore(redis, keys, queueing))

    errors.register(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.cli.add_command(cli.dead_letters)
    return app
