"""Injected failures: random errors and hangs, added latency, and a script of answers handed out in order.

A ``POST /_sim/faults`` body is validated as a whole before any of it is applied, so a call with one bad
key changes nothing and answers 400 naming that key. Not thread-safe on its own: ``SimState`` holds the
lock.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hubspot_sim.errors import RATE_LIMIT_POLICIES

#: The API endpoints by name, as ``/_sim/requests`` counts them and fault ``endpoints`` filters name them.
ENDPOINTS = (
    "associate_default",
    "batch_associate_default",
    "associate_labels",
    "delete_association",
    "read_associations",
    "batch_create",
    "batch_archive",
    "batch_labels_archive",
    "batch_read",
    "association_labels",
    "read_object",
    "search",
    "oauth_token",
    "journal_earliest",
    "journal_latest",
    "journal_next",
    "journal_batch_earliest",
    "journal_batch_latest",
    "journal_batch_next",
    "journal_batch_read",
    "read_webhook_settings",
    "put_webhook_settings",
    "delete_webhook_settings",
    "list_subscriptions",
    "create_subscription",
    "read_subscription",
    "patch_subscription",
    "delete_subscription",
)
DEFAULT_ERROR_STATUS = 503
DEFAULT_HANG_MS = 30_000  # past any sane client timeout: the point of a hang is that the client gives up
_FAULT_KEYS = frozenset(
    {"error_rate", "error_status", "hang_rate", "hang_ms", "latency_ms", "script", "endpoints"},
)
_SCRIPT_KEYS = frozenset({"status", "body", "headers", "policy", "missing_scopes", "message", "pass", "drop"})


def _rate(body: Mapping[str, Any], key: str) -> float:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{key}: expected a number from 0 to 1, got {value!r}")
    return float(value)


def _count(value: Any, where: str, *, low: int = 0, high: int | None = None) -> int:
    in_range = isinstance(value, int) and low <= value and (high is None or value <= high)
    if in_range and not isinstance(value, bool):
        return int(value)
    bound = f"{low} to {high}" if high is not None else f"at least {low}"
    raise ValueError(f"{where}: expected an integer {bound}, got {value!r}")


def _status(value: Any, where: str) -> int:
    return _count(value, where, low=100, high=599)


@dataclass(frozen=True, slots=True)
class ScriptedAnswer:
    """One scripted answer: ``status`` with HubSpot's body for it (or ``body``), plus ``headers``.

    ``policy`` picks the 429 flavour (TEN_SECONDLY_ROLLING, SECONDLY, DAILY); ``missing_scopes`` fills a
    403's ``context.missingScopes``; ``message`` replaces the default message; ``passes`` lets one request
    through to normal processing; ``drops`` closes the connection without answering.
    """

    status: int = DEFAULT_ERROR_STATUS
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    policy: str | None = None
    missing_scopes: tuple[str, ...] | None = None
    message: str | None = None
    passes: bool = False
    drops: bool = False

    @classmethod
    def parse(cls, raw: Any, where: str) -> ScriptedAnswer:
        """Validate one script entry. Raises ValueError naming ``where`` and the bad field."""
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected an object, got {raw!r}")
        unknown = sorted(set(raw) - _SCRIPT_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; expected some of {sorted(_SCRIPT_KEYS)}")
        passes, drops = raw.get("pass") is True, raw.get("drop") is True
        if not (passes or drops) and "status" not in raw:
            raise ValueError(f'{where}: expected "status" (or "pass": true, or "drop": true)')
        status = _status(raw.get("status", DEFAULT_ERROR_STATUS), f"{where}.status")
        headers = raw.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError(f"{where}.headers: expected an object of string values, got {headers!r}")
        policy = raw.get("policy")
        if policy is not None and policy not in RATE_LIMIT_POLICIES:
            raise ValueError(f"{where}.policy: expected one of {list(RATE_LIMIT_POLICIES)}, got {policy!r}")
        scopes = raw.get("missing_scopes")
        is_list = isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)
        if scopes is not None and not is_list:
            raise ValueError(f"{where}.missing_scopes: expected a list of strings, got {scopes!r}")
        message = raw.get("message")
        if message is not None and not isinstance(message, str):
            raise ValueError(f"{where}.message: expected a string, got {message!r}")
        return cls(
            status=status,
            body=raw.get("body"),
            headers=dict(headers),
            policy=policy,
            missing_scopes=tuple(scopes) if scopes is not None else None,
            message=message,
            passes=passes,
            drops=drops,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON form, as it could be posted again."""
        if self.passes:
            return {"pass": True}
        if self.drops:
            return {"drop": True}
        optional = {
            "body": self.body,
            "headers": dict(self.headers) or None,
            "policy": self.policy,
            "missing_scopes": list(self.missing_scopes) if self.missing_scopes is not None else None,
            "message": self.message,
        }
        return {"status": self.status, **{key: value for key, value in optional.items() if value is not None}}


@dataclass(frozen=True, slots=True)
class Decision:
    """What the fault layer decided for one request: added latency, then a hang or an answer, or nothing."""

    latency_ms: int = 0
    hang_ms: int = 0
    answer: ScriptedAnswer | None = None


@dataclass(slots=True)
class Faults:
    """The faults in force (see README.md, ``POST /_sim/faults``)."""

    error_rate: float = 0.0
    error_status: int = DEFAULT_ERROR_STATUS
    hang_rate: float = 0.0
    hang_ms: int = DEFAULT_HANG_MS
    latency_ms: int = 0
    script: deque[ScriptedAnswer] = field(default_factory=deque)
    endpoints: frozenset[str] | None = None

    def merge(self, body: Any) -> None:
        """Merge a ``POST /_sim/faults`` body: given keys replace, ``script`` entries are appended.

        Everything is validated before anything changes. Raises ValueError naming the bad key.
        """
        if not isinstance(body, dict):
            raise ValueError(f"expected a JSON object of faults, got {body!r}")
        unknown = sorted(set(body) - _FAULT_KEYS)
        if unknown:
            raise ValueError(f"unknown fault keys {unknown}; expected some of {sorted(_FAULT_KEYS)}")
        updates: dict[str, Any] = {}
        for key in ("error_rate", "hang_rate"):
            if key in body:
                updates[key] = _rate(body, key)
        if "error_status" in body:
            updates["error_status"] = _status(body["error_status"], "error_status")
        for key in ("hang_ms", "latency_ms"):
            if key in body:
                updates[key] = _count(body[key], key)
        script: list[ScriptedAnswer] = []
        if "script" in body:
            raw_script = body["script"] or []
            if not isinstance(raw_script, list):
                raise ValueError(f"script: expected a list of answers, got {raw_script!r}")
            script = [ScriptedAnswer.parse(entry, f"script[{i}]") for i, entry in enumerate(raw_script)]
        if "endpoints" in body:
            updates["endpoints"] = _endpoints(body["endpoints"])
        for key, value in updates.items():
            setattr(self, key, value)
        self.script.extend(script)

    def applies_to(self, endpoint: str) -> bool:
        """True unless an ``endpoints`` filter leaves ``endpoint`` out."""
        return self.endpoints is None or endpoint in self.endpoints

    def decide(self, endpoint: str, base_latency_ms: int, rng: random.Random) -> Decision:
        """The fault for one request: the next scripted answer, else maybe a hang, else maybe an error."""
        if not self.applies_to(endpoint):
            return Decision(latency_ms=base_latency_ms)
        latency = base_latency_ms + self.latency_ms
        if self.script:
            return Decision(latency_ms=latency, answer=self.script.popleft())
        if self.hang_rate and rng.random() < self.hang_rate:
            return Decision(latency_ms=latency, hang_ms=self.hang_ms)
        if self.error_rate and rng.random() < self.error_rate:
            return Decision(latency_ms=latency, answer=ScriptedAnswer(status=self.error_status))
        return Decision(latency_ms=latency)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``GET /_sim/faults``)."""
        return {
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "hang_rate": self.hang_rate,
            "hang_ms": self.hang_ms,
            "latency_ms": self.latency_ms,
            "script": [entry.as_dict() for entry in self.script],
            "endpoints": sorted(self.endpoints) if self.endpoints is not None else None,
        }


def _endpoints(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v in ENDPOINTS for v in value):
        raise ValueError(f"endpoints: expected null or a list drawn from {list(ENDPOINTS)}, got {value!r}")
    return frozenset(value)
