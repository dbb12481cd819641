"""gunicorn as the Procfile runs it: what it binds besides its port, and how it answers what it refuses itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.integration.conftest import Stack
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration


class TestControlSocket:
    """gunicorn's control socket is off unless an instance is given a path of its own."""

    def test_two_instances_bind_no_control_socket_by_default(self, stack: Stack, tmp_path: Path) -> None:
        """Two instances of one user, both serving: neither binds gunicorn.ctl in the user's home or runtime dir."""
        home, runtime = tmp_path / "home", tmp_path / "run"
        home.mkdir()
        runtime.mkdir()
        for _ in range(2):
            url = stack.gunicorn(HOME=str(home), XDG_RUNTIME_DIR=str(runtime))
            wait_for(lambda u=url: requests.get(f"{u}/healthz", timeout=5).ok, timeout=20, what="gunicorn to serve")
        assert not [p for d in (home, runtime) for p in d.rglob("*") if p.name.endswith(".ctl")]

    def test_an_instance_given_a_path_binds_its_own_socket(self, stack: Stack, tmp_path: Path) -> None:
        """GUNICORN_CONTROL_SOCKET per instance: each binds the path it was given, and only that one."""
        paths = [tmp_path / "a.ctl", tmp_path / "b.ctl"]
        for path in paths:
            stack.gunicorn(GUNICORN_CONTROL_SOCKET=str(path), HOME=str(tmp_path))
        for path in paths:
            wait_for(path.is_socket, timeout=20, what=f"gunicorn to bind {path.name}")
        assert not (tmp_path / ".gunicorn").exists()
