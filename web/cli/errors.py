"""How the operators' commands tell an error: one line naming the variable or file and what to do.

:func:`one_line` words the errors an operator can fix (a setting, Redis, a file, HubSpot's answer);
:func:`told_in_one_line` turns them into click's ``Error: …`` (exit status 1) instead of a traceback.
The command groups (:class:`OperatorGroup`, :class:`OperatorCommand`) apply it, so ``hublink …`` and
``flask --app web …`` tell errors the same way (:class:`OfflineGroup` for the commands that need no app).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import click
import redis
from flask.cli import AppGroup

from hublink.config.settings import Settings
from hublink.domain.errors import ConfigError, DeliveryError, HubLinkError, StoreFullError, StoreUnavailableError


def redis_location(environ: Mapping[str, str]) -> str:
    """Where the commands look for Redis, for messages: REDIS_URL's host and port (never its password)."""
    url = environ.get("REDIS_URL", "")
    if environ.get("REDIS_SENTINELS"):
        return f"the sentinels in REDIS_SENTINELS ({environ['REDIS_SENTINELS']})"
    if not url:
        return f"REDIS_URL (not set, so the default {Settings().redis_url})"
    parts = urlsplit(url)
    return f"REDIS_URL ({parts.hostname or '?'}:{parts.port or 6379})"


def one_line(exc: BaseException) -> str | None:
    """The one line an error is told in, or None for an error that is not the operator's to fix."""
    if isinstance(exc, ConfigError):
        problems = getattr(exc, "problems", ())
        if problems:
            more = f" (and {len(problems) - 1} more: `hublink rules check` lists them all)" if len(problems) > 1 else ""
            return f"invalid rules: {problems[0]}{more}"
        message = " ".join(str(exc).split())
        if "required but not set" in message:
            message += " (export it in this shell, or see .env.example for every variable)"
        return message
    if isinstance(exc, StoreFullError):
        return f"Redis at {redis_location(os.environ)} is full (maxmemory): free memory or raise its limit, then retry"
    if isinstance(exc, StoreUnavailableError | redis.ConnectionError | redis.TimeoutError):
        return (
            f"Redis does not answer at {redis_location(os.environ)}: start it (`hublink run` starts one) "
            f"or set REDIS_URL to where it runs"
        )
    if isinstance(exc, redis.RedisError):
        return f"Redis refused the command at {redis_location(os.environ)}: {exc}"
    if isinstance(exc, DeliveryError):
        return f"HubSpot refused or did not answer: {exc}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}; check the path and its permissions"
    if isinstance(exc, HubLinkError):
        return " ".join(str(exc).split())
    return None


@contextmanager
def told_in_one_line() -> Iterator[None]:
    """Run the block; an error :func:`one_line` words becomes a ClickException (``Error: …``, exit status 1)."""
    try:
        yield
    except (HubLinkError, redis.RedisError, OSError) as exc:
        line = one_line(exc)
        if line is None:
            raise
        raise click.ClickException(line) from None


class OperatorGroup(AppGroup):
    """A command group whose commands run in the app's context and tell errors in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        """Invoke the subcommand under :func:`told_in_one_line`."""
        with told_in_one_line():
            return super().invoke(ctx)


class OfflineGroup(click.Group):
    """A command group whose commands need no app (no Redis, no token) and tell errors in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        """Invoke the subcommand under :func:`told_in_one_line`."""
        with told_in_one_line():
            return super().invoke(ctx)


class OperatorCommand(click.Command):
    """A single command (``trace``, ``pause``, ``resume``) that tells errors in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        """Invoke the command under :func:`told_in_one_line`."""
        with told_in_one_line():
            return super().invoke(ctx)
