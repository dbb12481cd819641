"""`make run`'s settings: the shell wins, then the runner's own values, then `.env`; one line says so."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def dev() -> ModuleType:
    """scripts/dev.py, loaded as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("dev_runner_script", REPO / "scripts" / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestLayers:
    """Which value each variable takes."""

    def test_dotenv_cannot_send_the_stack_to_the_real_hubspot(self) -> None:
        """.env's HUBSPOT_BASE_URL, token and Redis are dropped (named), its other variables kept."""
        dotenv = {
            "HUBSPOT_BASE_URL": "https://api.hubapi.com",
            "HUBSPOT_ACCESS_TOKEN": "pat-real",
            "REDIS_URL": "redis://prod:6379/0",
            "HUBLINK_CLIENT": "kept",
        }
        env, replaced = dev().layered_env({"PATH": "/bin"}, dotenv)
        assert env == {"PATH": "/bin", "HUBLINK_CLIENT": "kept"}
        assert replaced == ["HUBSPOT_ACCESS_TOKEN", "HUBSPOT_BASE_URL", "REDIS_URL"]

    def test_the_shell_wins_over_both(self) -> None:
        """A variable set in the shell is used as is; with HubSpot chosen there, .env may give its token."""
        shell = {"HUBSPOT_BASE_URL": "https://api.hubapi.com", "PORT": "9000"}
        env, replaced = dev().layered_env(shell, {"HUBSPOT_ACCESS_TOKEN": "pat-real", "PORT": "8000"})
        assert env == {"HUBSPOT_BASE_URL": "https://api.hubapi.com", "PORT": "9000", "HUBSPOT_ACCESS_TOKEN": "pat-real"}
        assert replaced == []

    def test_the_notice_is_one_line_naming_what_was_replaced(self) -> None:
        """One line, with the variables' names and never their values."""
        notice = dev().dotenv_notice(["HUBLINK_API_TOKEN", "HUBSPOT_BASE_URL"])
        assert "\n" not in notice and "HUBLINK_API_TOKEN, HUBSPOT_BASE_URL" in notice
        assert "\n" not in dev().dotenv_notice([])
