"""Admin-configured association limits: the most records of one type a record may hold, per pair or label.

HubSpot lets admins cap a pair (each deal at most N companies) or one label of it (at most N companies
labelled "Decision maker"), from 1 to 10,000, on every create path and not retroactively
(docs/reference/hubspot.md §9.4). ``PUT /_sim/config {"association_limits": {"deals>companies": 1,
"deals>companies:Primary": 1}}`` sets them; the key names the side that is limited first. A write that
would take a record past a limit fails for that input only; the body of the refusal lives in
``errors.association_limit_body`` (one place, since HubSpot has not published it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hubspot_sim.object_types import canonical_type

MIN_LIMIT = 1
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class LimitKey:
    """One limited direction: from ``from_type`` to ``to_type``, all types (``label`` None) or one label."""

    from_type: str
    to_type: str
    label: str | None = None

    @classmethod
    def parse(cls, text: str) -> LimitKey:
        """``"deals>companies"`` or ``"deals>companies:Primary"``. Raises ValueError naming the key."""
        pair, _, label = text.partition(":")
        from_raw, sep, to_raw = pair.partition(">")
        from_type, to_type = canonical_type(from_raw.strip()), canonical_type(to_raw.strip())
        if not sep or from_type is None or to_type is None or (_ and not label.strip()):
            raise ValueError(
                f"association_limits: expected keys like 'deals>companies' or 'deals>companies:Primary', got {text!r}"
            )
        return cls(from_type, to_type, label.strip() or None)

    def __str__(self) -> str:
        base = f"{self.from_type}>{self.to_type}"
        return f"{base}:{self.label}" if self.label else base


def parse_limits(raw: Any) -> tuple[tuple[str, int], ...]:
    """Validate an ``association_limits`` object into sorted (key, limit) pairs; null or {} clears them.

    Raises ValueError naming the bad key or value.
    """
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ValueError(f'association_limits: expected {{"deals>companies": 1, ...}}, got {raw!r}')
    parsed = []
    for key, value in raw.items():
        limit_key = LimitKey.parse(str(key))
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_LIMIT <= value <= MAX_LIMIT:
            raise ValueError(f"association_limits[{key!r}]: expected an integer from {MIN_LIMIT} to {MAX_LIMIT}")
        parsed.append((str(limit_key), value))
    return tuple(sorted(parsed))


class AssociationLimits:
    """The limits in force, looked up by direction and label (built from ``Config.association_limits``)."""

    def __init__(self, limits: tuple[tuple[str, int], ...]) -> None:
        self._by_key = {LimitKey.parse(key): value for key, value in limits}
        self._pairs = {(k.from_type, k.to_type) for k in self._by_key}

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def applies(self, from_type: str, to_type: str) -> bool:
        """True when some limit names this direction."""
        return (from_type, to_type) in self._pairs

    def pair_limit(self, from_type: str, to_type: str) -> int | None:
        """The most ``to_type`` records one ``from_type`` record may hold, or None."""
        return self._by_key.get(LimitKey(from_type, to_type))

    def label_limits(self, from_type: str, to_type: str) -> dict[str, int]:
        """The limits on single labels of the direction: label name -> the most records holding it."""
        return {
            k.label: v for k, v in self._by_key.items() if (k.from_type, k.to_type) == (from_type, to_type) and k.label
        }
