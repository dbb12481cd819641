"""What crosses the simulator's wire: the parsed request, the answer to send, and HubSpot's timestamp format.

The HTTP transport (``server.py``) turns bytes into a ``Request`` and an ``Answer`` back into bytes; the
HubSpot API (``api.py``) and the control API (``control.py``) only ever see these values, so they can be
tested without sockets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the handlers see it: method, path, raw query string, raw body, auth and Host headers."""

    method: str
    path: str
    query: str = ""
    body: bytes = b""
    authorization: str | None = None
    host: str | None = None
    #: Who the API authenticated (a ``state.Caller``), set by ``HubSpotApi`` before an endpoint runs.
    caller: Any = None

    def query_values(self, name: str) -> list[str]:
        """Every value of query parameter ``name``, comma-separated lists split (HubSpot's convention)."""
        values = parse_qs(self.query).get(name, [])
        return [part for value in values for part in value.split(",") if part]

    def json(self) -> Any:
        """The body as JSON; an empty body is ``None``.

        Raises ValueError (naming the problem) when the body is not UTF-8 JSON.
        """
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"the body is not valid JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer: status, JSON body (or ``raw``, the body already encoded) and extra headers.

    ``close`` ends the connection after the answer (used after a hang, when the client has likely given up);
    ``drop`` ends it *without* an answer, as a reset connection would.
    """

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    close: bool = False
    drop: bool = False
    raw: bytes | None = None

    def payload(self) -> bytes:
        """The body as compact UTF-8 JSON (compact: the benchmarks read 20,000-entry lists)."""
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, separators=(",", ":")).encode()

    def json(self) -> Any:
        """The body as the client will decode it, whichever way it was given."""
        return json.loads(self.raw) if self.raw is not None else self.body

    def correlation_id(self) -> str | None:
        """The body's ``correlationId``, so that the header and the body name the same one."""
        if isinstance(self.body, dict):
            value = self.body.get("correlationId")
            return value if isinstance(value, str) else None
        return None


def iso_utc(epoch_s: float) -> str:
    """``epoch_s`` as ISO-8601 UTC with milliseconds and a ``Z``, the way HubSpot writes timestamps."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
