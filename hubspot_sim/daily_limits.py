"""An account's daily request allowance, reset at midnight in its time zone (docs/reference/hubspot.md §2.1).

HubSpot counts every app's calls against one allowance per account and resets it at the next midnight in the
account's time-zone setting; answers carry ``X-HubSpot-RateLimit-Daily`` and ``-Daily-Remaining`` (§2.2), and
past the allowance a 429 with ``policyName`` DAILY (§2.3). The counters are not thread-safe on their own;
``SimState`` calls them under its lock, with its injectable clock, so a test moves past midnight at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "UTC"


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. ``Europe/Paris``). Raises ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: expected an IANA time zone such as UTC or Europe/Paris, got {name!r}") from None


@dataclass(frozen=True, slots=True)
class DailyLimit:
    """At most ``max_requests`` accepted requests per account per calendar day in ``timezone``."""

    max_requests: int
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        if isinstance(self.max_requests, bool) or self.max_requests < 1:
            raise ValueError(f"daily limit: expected at least 1 request a day, got {self.max_requests!r}")
        parse_timezone(self.timezone)

    def day(self, now: float) -> date:
        """The account's calendar day at epoch ``now``."""
        return datetime.fromtimestamp(now, ZoneInfo(self.timezone)).date()

    def resets_at(self, now: float) -> float:
        """Epoch seconds of the next midnight in the time zone (a DST-safe wall-clock midnight)."""
        zone = ZoneInfo(self.timezone)
        tomorrow = self.day(now) + timedelta(days=1)
        return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=zone).timestamp()

    def headers(self, remaining: int) -> dict[str, str]:
        """HubSpot's daily headers, ``remaining`` requests being left today."""
        return {
            "X-HubSpot-RateLimit-Daily": str(self.max_requests),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(remaining, 0)),
        }


class DailyCounters:
    """Requests accepted today per account (a static token's account, or an OAuth portal)."""

    def __init__(self, limit: DailyLimit) -> None:
        self.limit = limit
        self._used: dict[str, tuple[date, int]] = {}

    def remaining(self, account: str, now: float) -> int:
        """Requests left today for ``account``; a new day starts with the whole allowance."""
        day, used = self._used.get(account, (None, 0))
        if day != self.limit.day(now):
            used = 0
        return self.limit.max_requests - used

    def take(self, account: str, now: float) -> int:
        """Count one accepted request; returns what is left today. The caller checks ``remaining`` first."""
        today = self.limit.day(now)
        day, used = self._used.get(account, (today, 0))
        used = used + 1 if day == today else 1
        self._used[account] = (today, used)
        return self.limit.max_requests - used
