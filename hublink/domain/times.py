"""Times as HubLink shows and reads them: epoch milliseconds to ISO-8601 UTC, and operators' input back."""

from __future__ import annotations

import re
from datetime import UTC, datetime


def iso(ms: int | float) -> str:
    """Epoch milliseconds as ISO-8601 UTC."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    """Parse epoch seconds (``1764331200`` or ``1764331200.5``) or an ISO-8601 date-time into epoch ms.

    Raises ValueError for anything else (exponents, bare dates, junk).
    """
    if re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,6})?", text):
        return float(text) * 1000
    if "T" not in text:
        raise ValueError(f"expected epoch seconds or an ISO-8601 date-time, got {text[:40]!r}")
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp() * 1000
