"""RateLimit: a request budget, ``requests`` per ``window_s`` seconds (HubSpot's burst and search limits)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A request budget: ``requests`` per ``window_s`` seconds."""

    requests: int
    window_s: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse ``100/10s``, ``5/1s`` or ``190/10000ms``; raise ValueError otherwise."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", text)
        if not match or int(match.group(1)) < 1 or float(match.group(2)) <= 0:
            raise ValueError(f"expected N/<window>s, e.g. 100/10s, got {text!r}")
        window = float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
        return cls(int(match.group(1)), window)

    def __str__(self) -> str:
        return f"{self.requests}/{self.window_s:g}s"
