"""A worker whose HubSpot calls fail says why and which host it called, in one line, with no secret."""

from __future__ import annotations

import logging

import pytest

from hublink.delivery.hubspot import HubSpotClient
from hublink.domain.errors import ConnectionFailedError
from hublink.lanes import MemoryLanes
from tests.support.processes import free_port
from tests.unit.test_drain import LANE, Clock, association, drainer

pytestmark = pytest.mark.integration


def test_a_refused_connection_names_the_host_and_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens at the base URL: the client's error and the drain's log line name host and cause."""
    port = free_port()
    client = HubSpotClient(f"http://127.0.0.1:{port}", connect_timeout_s=2, read_timeout_s=2)
    with pytest.raises(ConnectionFailedError) as raised:
        client.associate_default("pat-secret-token", "deals", "1", "contacts", "1001")
    assert raised.value.host == f"127.0.0.1:{port}"
    assert "refused" in raised.value.detail.message.lower()

    clock = Clock()
    lanes = MemoryLanes(clock=clock)
    lanes.add(association(1))
    with caplog.at_level(logging.INFO, logger="hublink.delivery.drain"):
        drainer(lanes, client, clock).drain(LANE)  # type: ignore[arg-type]
    [line] = [r for r in caplog.records if r.getMessage() == "hubspot call failed"]
    assert line.host == f"127.0.0.1:{port}"  # type: ignore[attr-defined]
    assert line.error == "ConnectionFailedError"  # type: ignore[attr-defined]
    assert "refused" in line.reason.lower()  # type: ignore[attr-defined]
    assert "pat-" not in str(vars(line))
