"""Shared fixtures: environment isolation (autouse) and a Settings factory.

Tests build apps and workers by passing Settings, never by editing os.environ first; the autouse fixture
removes every HubLink, HubSpot and Redis variable so that nothing leaks in from the shell.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from hublink.config.settings import Settings

ENV_PREFIXES = ("HUBLINK_", "HUBSPOT_", "REDIS_", "RQ_")

API_TOKEN = "test-api-token-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"
HUBSPOT_TOKEN = "pat-na1-test-hubspot-token-0123456789"


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without HubLink's environment variables."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)


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
