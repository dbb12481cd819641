"""The HubLink exception tree: every failure HubLink names, and what each type makes happen next.

::

    HubLinkError
    ├── ConfigError                  start-up refused: names the environment variable or file
    │   └── RulesError               the rules file is invalid: every problem, with its line
    ├── InvalidInputError            refused at intake: a 4xx for the sender, names the field
    │   └── InvalidSignatureError    reason: missing | unknown-version | stale | future | mismatch | malformed
    ├── StoreUnavailableError        Redis did not answer or refused writes: 503, a worker stops taking work
    │   ├── StoreFullError           Redis is at maxmemory (OOM under noeviction): 503 store_full
    │   ├── StoreBusyError           no connection of the process's pool came free in time: 503 store_busy
    │   └── NotReplicatedError       stored, but too few replicas confirmed it in time: 503 not_replicated
    ├── TokenWaitTooLongError        the shared limiter asks for a longer wait than a worker may hold: park
    └── DeliveryError                carries status, category, sub_category, message, correlation_id
        ├── TransientError           retry with backoff
        │   ├── HubSpotTimeoutError  connect or read timeout
        │   ├── ConnectionFailedError  refused, reset, DNS
        │   ├── ServerError          5xx, 423, 477, 52x
        │   └── TokenRefreshError    an OAuth refresh failed for a reason that may pass: hand back, no attempt
        │       └── TokenEndpointError  the token endpoint answered 429, 5xx or nothing: park for its Retry-After
        ├── RateLimitedError         retry at retry_after; policy SECONDLY | TEN_SECONDLY_ROLLING | DAILY
        └── PermanentError           not retried as is: dead-letter this association
            ├── AuthError            401
            ├── ForbiddenError       403, with missing_scopes
            ├── NotFoundError        404 (and INVALID_OBJECT_IDS: retried inside the fresh-record grace)
            │   ├── LookupNoMatchError   a rule's search found nothing (retried inside the fresh-record grace)
            │   └── LookupNoValueError   the property a rule reads is empty
            ├── LookupAmbiguousError  a rule's search found several records and the rule says dead-letter
            ├── UnknownPortalError   an association names a portal HubLink has no credentials for
            ├── RecordDeletedError   the association names a record deleted in HubSpot: ends record_deleted
            ├── AppUninstalledError  the app was uninstalled from the portal past the hold: ends app_uninstalled
            └── ValidationRejectedError  400, 409, 414 and other 4xx
                └── AssociationLimitError  an input past an admin's association limit: dead-lettered at once

Callers branch on these types, never on message text. Exactly one place, ``hublink.delivery.hubspot``, turns
HTTP outcomes into :class:`DeliveryError` subclasses. No error ever carries a token: the client builds
them from HubSpot's answer, which does not echo credentials, and the request URL, which holds none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class HubLinkError(Exception):
    """The root of every error HubLink raises on purpose."""


class ConfigError(HubLinkError):
    """The configuration is unusable; the message names the variable or file and what was expected."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong with one field of an input: ``where`` is a JSON-pointer-like path."""

    where: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """Return the wire form used in 422 ``details``."""
        return {"field": self.where, "message": self.message}


class InvalidInputError(HubLinkError):
    """Input refused at intake; ``problems`` say which fields and why (a 422 for the sender)."""

    def __init__(self, message: str, problems: Sequence[FieldProblem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = tuple(problems)


#: The reasons :class:`InvalidSignatureError` can carry, one per way a signature check fails.
SIGNATURE_REASONS = frozenset({"missing", "unknown-version", "stale", "future", "mismatch", "malformed"})


class InvalidSignatureError(InvalidInputError):
    """A request's signature or timestamp did not verify; ``reason`` is one of :data:`SIGNATURE_REASONS`."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        if reason not in SIGNATURE_REASONS:
            raise ValueError(f"reason: expected one of {sorted(SIGNATURE_REASONS)}, got {reason!r}")
        super().__init__(message or f"signature check failed: {reason}")
        self.reason = reason


class StoreUnavailableError(HubLinkError):
    """Redis did not answer in time, or refused the write (a read-only replica after a failover).

    Nothing the request asked for is acknowledged; whether a write that timed out was applied is unknown.
    """


class StoreFullError(StoreUnavailableError):
    """Redis refused a write because it is at ``maxmemory`` (OOM with the ``noeviction`` policy)."""


class StoreBusyError(StoreUnavailableError):
    """Every connection of this process's Redis pool stayed in use for the pool's whole wait.

    Redis itself may be fine: the process had more Redis calls under way at once than its pool holds
    (``hublink.store.connections`` documents the sizes). Nothing was sent to Redis.
    """


class NotReplicatedError(StoreUnavailableError):
    """The primary stored the request but fewer replicas than asked confirmed it within the wait.

    Intake answers 503 so the sender retries: the request may be stored (and will be processed), and
    event dedup and the Idempotency-Key make the retry safe.
    """

    def __init__(self, entry_id: str, *, replicas: int, wanted: int) -> None:
        super().__init__(f"entry {entry_id} reached {replicas} of {wanted} replicas in time")
        self.entry_id = entry_id
        self.replicas = replicas
        self.wanted = wanted


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """HubSpot's ``X-HubSpot-RateLimit-Max``, ``-Remaining`` and ``-Interval-Milliseconds`` (0 when absent),
    and ``-Daily`` / ``-Daily-Remaining`` (None when absent: HubSpot sends them to private apps)."""

    max: int
    remaining: int
    interval_ms: int
    daily: int | None = None
    daily_remaining: int | None = None

    @property
    def has_window(self) -> bool:
        """True when the burst-window headers came (all three)."""
        return self.max > 0 and self.interval_ms > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class HubSpotErrorDetail:
    """What HubSpot said about a failure, parsed defensively: every field may be missing."""

    status: int | None = None
    category: str | None = None
    sub_category: str | None = None
    message: str = ""
    correlation_id: str | None = None
    policy_name: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    rate: RateHeaders | None = None

    @property
    def missing_scopes(self) -> tuple[str, ...]:
        """The scopes HubSpot said the token lacks (403 ``context.missingScopes``)."""
        scopes = self.context.get("missingScopes") or ()
        return tuple(str(s) for s in scopes) if isinstance(scopes, list | tuple) else ()


class DeliveryError(HubLinkError):
    """A HubSpot call did not succeed; the subclass says whether and when to try again."""

    #: The host the failed call went to (``api.hubapi.com``), set by the client; None when unknown.
    host: str | None = None

    def __init__(self, detail: HubSpotErrorDetail) -> None:
        super().__init__(detail.message or type(self).__name__)
        self.detail = detail

    @property
    def status(self) -> int | None:
        """The HTTP status, or None when no answer arrived."""
        return self.detail.status

    @property
    def category(self) -> str | None:
        """HubSpot's ``category`` (or ``errorType`` on a 429)."""
        return self.detail.category

    @property
    def correlation_id(self) -> str | None:
        """HubSpot's ``correlationId``, which its support asks for."""
        return self.detail.correlation_id

    def __str__(self) -> str:
        text = self.detail.message or type(self).__name__
        if self.detail.correlation_id:
            text += f" (correlationId {self.detail.correlation_id})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.detail.status!r}, category={self.detail.category!r}, "
            f"correlation_id={self.detail.correlation_id!r})"
        )


class TransientError(DeliveryError):
    """Worth retrying after a backoff."""


class HubSpotTimeoutError(TransientError):
    """No answer within the connect or read timeout."""


class ConnectionFailedError(TransientError):
    """The connection could not be made or was reset."""


class ServerError(TransientError):
    """HubSpot answered 5xx, 423 (locked) or 477 (migration in progress)."""

    def __init__(self, detail: HubSpotErrorDetail, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class TokenRefreshError(TransientError):
    """An OAuth refresh failed for a reason that may pass (HubSpot down, another worker refreshing).

    Nothing is wrong with the work: the drain hands it back without spending an attempt.
    """


class TokenEndpointError(TokenRefreshError):
    """The OAuth token endpoint itself answered 429 or 5xx, or did not answer (docs/reference/hubspot.md §9.6).

    ``retry_after_s`` is its ``Retry-After`` (None when it gave none). The portal's work is handed back
    unspent and its lane parks for that long (capped); the portal's circuit counts it like a 5xx.
    """

    def __init__(self, detail: HubSpotErrorDetail, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class RateLimitedError(DeliveryError):
    """HubSpot answered 429; ``retry_after_s`` is its hint (None when it gave none)."""

    def __init__(self, detail: HubSpotErrorDetail, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s

    @property
    def policy(self) -> str:
        """The limit that was hit: ``DAILY``, ``TEN_SECONDLY_ROLLING``, ``SECONDLY`` (search) or ``UNKNOWN``."""
        if self.detail.policy_name:
            return self.detail.policy_name
        if "secondly limit" in self.detail.message.lower():
            return "SECONDLY"
        return "UNKNOWN"


class PermanentError(DeliveryError):
    """Retrying the same request will not help."""


class AuthError(PermanentError):
    """401: the token is invalid, expired or revoked."""


class ForbiddenError(PermanentError):
    """403: the token lacks a permission or scope (see ``detail.missing_scopes``)."""


class NotFoundError(PermanentError):
    """404: the object does not exist."""


class ValidationRejectedError(PermanentError):
    """400, 409, 414 or another 4xx: HubSpot refused the request as it stands."""

    @property
    def invalid_object_ids(self) -> tuple[str, ...]:
        """Ids HubSpot named as invalid (``context.objectId`` next to ``INVALID_OBJECT_IDS``)."""
        ids = self.detail.context.get("objectId") or ()
        return tuple(str(i) for i in ids) if isinstance(ids, list | tuple) else ()


class AssociationLimitError(ValidationRejectedError):
    """An input that would take a record past an association limit an admin set (docs/reference/hubspot.md §9.4).

    Permanent for that pair until someone raises the limit or removes an association: never retried, never
    bisected. ``context`` names the object types, the label and the limit (as HubLink assumes the body is:
    ``hublink.delivery.hubspot.is_association_limit``), no record ids.
    """

    def _first(self, key: str) -> str | None:
        value = self.detail.context.get(key)
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        return str(value) if value not in (None, "") else None

    @property
    def label(self) -> str | None:
        """The label whose limit was reached, or None for the pair's own limit."""
        return self._first("label")

    @property
    def limit(self) -> str | None:
        """The limit, as HubSpot wrote it (None when not said)."""
        return self._first("limit")

    @property
    def object_types(self) -> tuple[str | None, str | None]:
        """The (from, to) object types the limit is on, as HubSpot named them."""
        return self._first("fromObjectType"), self._first("toObjectType")


class LookupNoMatchError(NotFoundError):
    """A rule's search found no record (HubSpot's search lags record creation, so it is retried for a while)."""


class LookupNoValueError(NotFoundError):
    """The property a rule reads to find the other record is empty or not an id."""


class LookupAmbiguousError(PermanentError):
    """A rule's search found several records and the rule says to dead-letter rather than guess."""


class UnknownPortalError(PermanentError):
    """An association names a portal HubLink has no credentials for."""

    def __init__(self, portal_id: str | None) -> None:
        super().__init__(
            HubSpotErrorDetail(category="UNKNOWN_PORTAL", message=f"no credentials configured for portal {portal_id}")
        )


class RecordDeletedError(PermanentError):
    """The association names a record that was deleted in HubSpot: it ends at once, without a call."""

    def __init__(self, record: str, *, how: str = "a deletion event") -> None:
        super().__init__(
            HubSpotErrorDetail(category="RECORD_DELETED", message=f"{record} was deleted in HubSpot ({how})")
        )


class AppUninstalledError(PermanentError):
    """The app was uninstalled from the portal and its work waited out the hold: it ends without a call."""

    def __init__(self, portal_id: str, hold_h: float) -> None:
        super().__init__(
            HubSpotErrorDetail(
                category="APP_UNINSTALLED",
                message=f"the app was uninstalled from portal {portal_id} and not reinstalled within {hold_h:g} h",
            )
        )


class TokenWaitTooLongError(HubLinkError):
    """The limiter asked for a wait too long to spend holding a worker; ``wait_ms`` says how long."""

    def __init__(self, wait_ms: int) -> None:
        super().__init__(f"rate limit: wait {wait_ms} ms")
        self.wait_ms = wait_ms
