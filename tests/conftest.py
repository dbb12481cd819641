"""Shared fixtures: environment isolation (autouse) and a Settings factory; Hypothesis's profile.

Tests build apps and workers by passing Settings, never by editing os.environ first; the autouse fixture
removes every HubLink, HubSpot and Redis variable so that nothing leaks in from the shell.

Hypothesis runs without its per-example deadline and its "too slow" health check: both time an example
against the wall clock, which on a busy machine, under coverage's tracer or beside other pytest-xdist
workers measures the machine rather than the code. Every other health check still runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from hublink.config.settings import Settings

ENV_PREFIXES = ("HUBLINK_", "HUBSPOT_", "REDIS_", "RQ_", "OTEL_")

API_TOKEN = "test-api-token-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"
HUBSPOT_TOKEN = "pat-na1-test-hubspot-token-0123456789"

hypothesis_settings.register_profile("hublink", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("hublink")


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without HubLink's environment variables."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _logging_as_deployed() -> Iterator[None]:
    """Every test logs at INFO, the deployed default, and leaves the logging set-up as it found it.

    A test that configures logging (``hublink.log.configure``) would otherwise leave its level and handlers
    to whichever tests run after it on the same worker, so that a log call's mistakes (an ``extra`` key that
    clashes with a LogRecord attribute raises) showed or hid depending on the order.
    """
    root = logging.getLogger()
    saved = root.level, root.handlers[:], {n: logging.getLogger(n).level for n in ("urllib3", "werkzeug")}
    root.setLevel(logging.INFO)
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Build Settings with test tokens; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        """Settings for tests, with ``overrides`` applied."""
        base = Settings(
            api_token=API_TOKEN,
            admin_token=ADMIN_TOKEN,
            hubspot_access_token=HUBSPOT_TOKEN,
            hubspot_base_url="http://127.0.0.1:9",
        )
        return replace(base, **overrides)

    return make
