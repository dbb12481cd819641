"""Benchmarks (``make bench``): HubLink's figures measured beside baselines in the same run."""

from __future__ import annotations

from datetime import datetime


def say(text: str) -> None:
    """Progress, as it happens."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", flush=True)
