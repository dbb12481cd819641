"""The clock HubLink's Redis data is kept in: wall-clock epoch milliseconds.

Lanes, leases, dead letters and rate-limit windows are shared by processes on several machines, so their
times are wall-clock epoch milliseconds (a monotonic clock is per machine and cannot be shared).
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return int(time.time() * 1000)
