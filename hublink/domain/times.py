"""Times as HubLink shows and reads them: epoch milliseconds to ISO-8601 UTC, and operators' input back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


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


def check_time_zone(name: str) -> str:
    """``name`` when it is an IANA time zone this machine knows (``Europe/Berlin``, ``UTC``); else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"expected an IANA time zone such as 'Europe/Berlin' or 'UTC', got {name[:60]!r}") from exc
    return name


def seconds_until_midnight(now_s: float, time_zone: str) -> float:
    """Seconds from ``now_s`` (epoch) to the next midnight in ``time_zone``: when HubSpot's daily limit resets."""
    zone = ZoneInfo(time_zone)
    local = datetime.fromtimestamp(now_s, zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return max(midnight.timestamp() - now_s, 0.0)
