"""The unit tier runs without sockets: pytest-socket refuses any network use here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_sockets() -> Iterator[None]:
    """Unit tests may not open sockets."""
    disable_socket(allow_unix_socket=False)
    yield
    enable_socket()
