"""HubSpotClient: the one way HubLink talks to HubSpot, and the one place HTTP outcomes become errors.

One ``requests.Session`` per process (pooled keep-alive connections), connect and read timeouts on every
call (there is no code path without them), a User-Agent naming HubLink and its version, and methods named
after HubSpot operations. Each method makes exactly one attempt and returns or raises a
:class:`~hublink.domain.errors.DeliveryError`; whether to retry is ``domain.retry_policy``'s decision.
Tokens are passed per call (many portals, one client) and never appear in errors or logs.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import requests

from hublink import __version__, tracing
from hublink.domain.associations import AssociationType, types_wire
from hublink.domain.errors import (
    AssociationLimitError,
    AuthError,
    ConnectionFailedError,
    DeliveryError,
    ForbiddenError,
    HubSpotErrorDetail,
    HubSpotTimeoutError,
    NotFoundError,
    PermanentError,
    RateHeaders,
    RateLimitedError,
    ServerError,
    TransientError,
    ValidationRejectedError,
)

USER_AGENT = f"HubLink/{__version__} (+https://github.com/hublink/hublink) python-requests/{requests.__version__}"
API_VERSION = "2026-03"
#: OAuth token endpoints: the 2026-03 one, and v1, deprecated from 2027-02-16 (docs/reference/hubspot.md §8).
OAUTH_TOKEN_PATH = f"/oauth/{API_VERSION}/token"
LEGACY_OAUTH_TOKEN_PATH = "/oauth/v1/token"  # noqa: S105 - a path, not a secret
#: Statuses HubSpot documents as worth a retry (docs/reference/hubspot.md §3.2): locks, migrations, 5xx and 52x.
TRANSIENT_STATUSES = frozenset({423, 477, 500, 502, 503, 504, 521, 522, 523, 524})
#: SSL failures at HubSpot's edge: retrying will not fix them, an operator must look.
EDGE_PERMANENT_STATUSES = frozenset({525, 526})
#: HubSpot asks to wait at least 2 s after a 423 (records locked by a high-volume sync).
LOCKED_MIN_WAIT_S = 2.0
#: HubSpot has not published its refusal of an input past an association limit (docs/reference/hubspot.md
#: §9.4). HubLink assumes a 400 with category ``VALIDATION_ERROR`` and this subCategory, or a batch's
#: ``errors[]`` entry (which carries no subCategory) with that category and a ``context`` naming ``limit``;
#: the context names ``fromObjectType``, ``toObjectType``, ``limit`` and maybe ``label``, but no record id.
#: :func:`is_association_limit` is the one place that reads it, to correct from one captured real answer.
LIMIT_SUBCATEGORY = "ASSOCIATION_LIMIT_EXCEEDED"
#: The category a dead letter past an association limit carries (HubSpot's subCategory stays beside it).
ASSOCIATION_LIMIT_CATEGORY = "ASSOCIATION_LIMIT"
#: Label definitions asked for per page (the 2026-03 path's limit goes to 500; 100 is its default).
LABEL_PAGE_SIZE = 500
#: The most pages of label definitions read for one pair of object types.
MAX_LABEL_PAGES = 100
#: The ``context`` key of a "pair missing" error listing the pairs HubSpot answered that were not asked for
#: (``docs/reference/hubspot.md`` §9.2: a write naming a merged id may answer with the new id), at most
#: ``MAX_ECHOED`` of them.
ECHOED = "echoedPairs"
MAX_ECHOED = 100


@dataclass(frozen=True, slots=True)
class CallResult:
    """The answer to one association call: which pairs HubSpot linked and which it refused.

    The client returns it for a 2xx and raises for anything else; the drain keeps a whole call's refusal
    in ``error`` (:meth:`refused`), so that one shape carries every answer to the settle step.
    """

    linked: frozenset[tuple[str, str]]
    failed: Mapping[tuple[str, str], DeliveryError] = field(default_factory=dict)
    rate: RateHeaders | None = None
    correlation_id: str | None = None
    #: The error of the whole call (nothing in it was linked), or None for a 2xx.
    error: DeliveryError | None = None

    @classmethod
    def refused(cls, error: DeliveryError) -> CallResult:
        """A whole call HubSpot refused (or that never got an answer)."""
        return cls(linked=frozenset(), rate=error.detail.rate, correlation_id=error.correlation_id, error=error)

    def outcome(self, pair: tuple[str, str]) -> DeliveryError | None:
        """What this call said of ``pair``: None (linked), its error, the whole call's, or "no outcome".

        Some integrators saw a 2xx whose results left a pair out (a silent no-op): that is not a success.
        """
        if self.error is not None:
            return self.error
        if pair in self.linked:
            return None
        return self.failed.get(pair) or DeliveryError(HubSpotErrorDetail(message="no outcome for pair"))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "nan", "inf" and "1e400" parse as floats but are no delay at all.
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


def parse_rate_headers(headers: Mapping[str, str]) -> RateHeaders | None:
    """HubSpot's rate-limit headers: the burst window's when all three are numeric, the daily pair when both are.

    None when neither set came whole.
    """

    def number(name: str) -> int | None:
        value = headers.get(name)
        if value is None:
            return None
        value = value.strip()
        return int(value) if value.isascii() and value.isdigit() and len(value) <= 12 else None

    window = [number(f"X-HubSpot-RateLimit-{n}") for n in ("Max", "Remaining", "Interval-Milliseconds")]
    daily = number("X-HubSpot-RateLimit-Daily")
    daily_remaining = number("X-HubSpot-RateLimit-Daily-Remaining")
    has_daily = daily is not None and daily_remaining is not None
    if None in window and not has_daily:
        return None
    max_, remaining, interval = (0, 0, 0) if None in window else (w or 0 for w in window)
    return RateHeaders(
        max_,
        remaining,
        interval,
        daily=daily if has_daily else None,
        daily_remaining=daily_remaining if has_daily else None,
    )


def _oauth_reason(body: dict[str, Any]) -> str | None:
    """The token endpoint's reason (``BAD_REFRESH_TOKEN``, ``BAD_CLIENT_ID``): OAuth refusals name it in ``status``,
    where other errors say ``"error"`` (docs/reference/hubspot.md §9.6)."""
    value = body.get("status")
    return value if isinstance(value, str) and value.isupper() and value.startswith("BAD_") else None


def _detail(status: int | None, body: Any, *, rate: RateHeaders | None = None, text: str = "") -> HubSpotErrorDetail:
    """Parse HubSpot's error body defensively: every field may be missing or of another type."""
    body = body if isinstance(body, dict) else {}
    context = body.get("context")

    def s(key: str) -> str | None:
        value = body.get(key)
        return str(value) if isinstance(value, str | int) and value != "" else None

    return HubSpotErrorDetail(
        status=status,
        category=s("category") or s("errorType"),
        sub_category=s("subCategory") or _oauth_reason(body),
        message=(s("message") or text[:200] or f"HTTP {status}"),
        correlation_id=s("correlationId"),
        policy_name=s("policyName"),
        context=context if isinstance(context, dict) else {},
        rate=rate,
    )


def is_association_limit(detail: HubSpotErrorDetail) -> bool:
    """True for HubSpot's refusal of an input past an association limit (as HubLink assumes it, above)."""
    if (detail.sub_category or "").upper() == LIMIT_SUBCATEGORY:
        return True
    return (detail.category or "").upper() == "VALIDATION_ERROR" and "limit" in detail.context


def _rejected(detail: HubSpotErrorDetail) -> ValidationRejectedError:
    """A validation refusal: an :class:`AssociationLimitError` (which says so first) or the generic one."""
    if not is_association_limit(detail):
        return ValidationRejectedError(detail)

    def first(key: str) -> str | None:
        value = detail.context.get(key)
        value = value[0] if isinstance(value, list | tuple) and value else value
        return str(value) if isinstance(value, str | int) and value != "" else None

    pair = f"{first('fromObjectType') or '?'}→{first('toObjectType') or '?'}"
    label = first("label")
    said = f"association limit reached ({pair}{f', label {label!r}' if label else ''}, at most {first('limit') or '?'})"
    return AssociationLimitError(
        replace(detail, category=ASSOCIATION_LIMIT_CATEGORY, message=f"{said}: {detail.message}")
    )


def error_for_status(status: int, body: Any, headers: Mapping[str, str], now: float, text: str = "") -> DeliveryError:
    """Map one non-2xx answer to its error class (the table in docs/concepts/delivery.md, "Error classes")."""
    rate = parse_rate_headers(headers)
    detail = _detail(status, body, rate=rate, text=text)
    retry_after = parse_retry_after(headers.get("Retry-After"), now)
    if status == 429:
        return RateLimitedError(detail, retry_after)
    if status == 423:
        return ServerError(detail, max(retry_after or 0.0, LOCKED_MIN_WAIT_S))
    if status in TRANSIENT_STATUSES or (status >= 500 and status not in EDGE_PERMANENT_STATUSES):
        return ServerError(detail, retry_after)
    if status in EDGE_PERMANENT_STATUSES:
        return PermanentError(detail)
    if status == 401:
        return AuthError(detail)
    if status == 403:
        return ForbiddenError(detail)
    if status == 404:
        return NotFoundError(detail)
    return _rejected(detail)


def error_for_entry(entry: Any, rate: RateHeaders | None) -> DeliveryError:
    """Map one ``errors[]`` entry of a batch-shaped answer (a per-input failure) to its error class."""
    detail = _detail(None, entry, rate=rate)
    category = (detail.category or "").upper()
    if category in {"OBJECT_NOT_FOUND", "NOT_FOUND"}:
        return NotFoundError(detail)
    if category in {"VALIDATION_ERROR", "INVALID_PARAMS", "CONFLICT"} or is_association_limit(detail):
        return _rejected(detail)
    if category in {"MISSING_SCOPES", "FORBIDDEN"} or detail.missing_scopes:
        return ForbiddenError(detail)
    if category in {"RATE_LIMIT", "RATE_LIMITS"}:
        return RateLimitedError(detail)
    # An error HubSpot did not explain is retried (and dead-lettered when the budget runs out) rather
    # than dropped: "nothing acknowledged is lost" beats "give up early".
    return TransientError(detail)


def _entry_ids(entry: Any) -> set[str]:
    """Object ids an ``errors[]`` entry names, wherever HubSpot put them."""
    ids: set[str] = set()
    context = entry.get("context") if isinstance(entry, dict) else None
    if isinstance(context, dict):
        for key in ("objectId", "fromObjectId", "toObjectId", "ids", "id"):
            values = context.get(key)
            if isinstance(values, list):
                ids.update(str(v) for v in values)
        invalid = context.get("INVALID_OBJECT_IDS")
        for text in invalid if isinstance(invalid, list) else ():
            # "CONTACT=38374264688 is not valid"
            head = str(text).split(" ", 1)[0]
            ids.add(head.split("=", 1)[-1])
    return ids


class HubSpotClient:
    """HubSpot's CRM API, one attempt per call. Thread-safe enough for one thread per process."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        session: requests.Session | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = (connect_timeout_s, read_timeout_s)
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.headers["Accept"] = "application/json"

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def associate_default(
        self, token: str, from_type: str, from_id: str, to_type: str, to_id: str, *, base_url: str | None = None
    ) -> CallResult:
        """``PUT /crm/objects/2026-03/{from}/{fromId}/associations/default/{to}/{toId}``.

        A 200 with ``numErrors > 0`` is a failure of that pair. Raises DeliveryError for a failed call.
        """
        path = (
            f"/crm/objects/{API_VERSION}/{_seg(from_type)}/{_seg(from_id)}/associations/default/"
            f"{_seg(to_type)}/{_seg(to_id)}"
        )
        body, rate, correlation = self._send("PUT", path, token, None, base_url=base_url)
        result = self._parse_batch(body, [(from_id, to_id)], rate, correlation)
        if (from_id, to_id) in result.failed:
            raise result.failed[(from_id, to_id)]
        return result

    def associate_default_batch(
        self,
        token: str,
        from_type: str,
        to_type: str,
        pairs: Sequence[tuple[str, str]],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """``POST /crm/associations/2026-03/{from}/{to}/batch/associate/default`` with up to 2,000 pairs.

        Per-input outcomes are mapped back to each pair; raises DeliveryError only when the whole call failed.
        """
        path = f"/crm/associations/{API_VERSION}/{_seg(from_type)}/{_seg(to_type)}/batch/associate/default"
        payload = {"inputs": [{"from": {"id": f}, "to": {"id": t}} for f, t in pairs]}
        body, rate, correlation = self._send("POST", path, token, payload, base_url=base_url)
        return self._parse_batch(body, pairs, rate, correlation)

    def association_labels(
        self,
        token: str,
        from_type: str,
        to_type: str,
        *,
        base_url: str | None = None,
        page_size: int = LABEL_PAGE_SIZE,
    ) -> list[tuple[str, int, str | None]]:
        """``GET /crm/associations/2026-03/{from}/{to}/labels``, every page: (category, typeId, label or None) each.

        The 2026-03 path pages (``limit``, ``after``, ``paging.next.after``); the v4 one stops being served on
        2027-03-30 (docs/reference/hubspot.md §9.7). The unlabelled type comes with no label. At most
        ``MAX_LABEL_PAGES`` pages are read (a cursor that never ends is HubSpot's fault, not a reason to loop).
        Raises DeliveryError.
        """
        path = f"/crm/associations/{API_VERSION}/{_seg(from_type)}/{_seg(to_type)}/labels"
        found: list[tuple[str, int, str | None]] = []
        after: str | None = None
        for _ in range(MAX_LABEL_PAGES):
            params = {"limit": str(page_size)} | ({"after": after} if after else {})
            body, _, _ = self._send("GET", path, token, None, params=params, base_url=base_url)
            results = body.get("results") if isinstance(body, dict) else None
            for entry in results if isinstance(results, list) else ():
                if not isinstance(entry, dict):
                    continue
                category, type_id, label = entry.get("category"), entry.get("typeId"), entry.get("label")
                if isinstance(category, str) and isinstance(type_id, int) and not isinstance(type_id, bool):
                    found.append((category, type_id, label if isinstance(label, str) and label else None))
            after = _next_after(body)
            if after is None:
                break
        return found

    def associate_labelled(
        self,
        token: str,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        types: Sequence[AssociationType],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """``PUT /crm/objects/2026-03/{from}/{fromId}/associations/{to}/{toId}`` with the types as its body (201).

        Raises DeliveryError for a failed call.
        """
        path = (
            f"/crm/objects/{API_VERSION}/{_seg(from_type)}/{_seg(from_id)}/associations/{_seg(to_type)}/{_seg(to_id)}"
        )
        body, rate, correlation = self._send("PUT", path, token, types_wire(types), base_url=base_url)
        if isinstance(body, dict) and not body.get("errors") and "fromObjectId" not in body:
            body = {**body, "fromObjectId": from_id, "toObjectId": to_id}  # a 201 without the pair still created it
        result = self._parse_batch(
            {"results": [body]} if isinstance(body, dict) else body, [(from_id, to_id)], rate, correlation
        )
        if (from_id, to_id) in result.failed:
            raise result.failed[(from_id, to_id)]
        return result

    def create_labelled_batch(
        self,
        token: str,
        from_type: str,
        to_type: str,
        inputs: Sequence[tuple[tuple[str, str], Sequence[AssociationType]]],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """``POST /crm/associations/2026-03/{from}/{to}/batch/create``: labelled links, 200, 201 or 207 multi-status.

        HubSpot answers 200 (201 before 2025-08, as the spec still declares: docs/reference/hubspot.md §9.7);
        any 2xx is read the same way. Each input is ((from id, to id), types); per-input outcomes are mapped
        back to each pair.
        """
        path = f"/crm/associations/{API_VERSION}/{_seg(from_type)}/{_seg(to_type)}/batch/create"
        payload = {"inputs": [{"from": {"id": f}, "to": {"id": t}, "types": types_wire(ty)} for (f, t), ty in inputs]}
        body, rate, correlation = self._send("POST", path, token, payload, base_url=base_url)
        return self._parse_batch(body, [pair for pair, _ in inputs], rate, correlation)

    def archive_batch(
        self, token: str, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]], *, base_url: str | None = None
    ) -> CallResult:
        """``POST /crm/associations/2026-03/{from}/{to}/batch/archive``: remove whole associations (every label).

        HubSpot answers without results; a pair no ``errors[]`` entry names is removed.
        """
        path = f"/crm/associations/{API_VERSION}/{_seg(from_type)}/{_seg(to_type)}/batch/archive"
        by_from: dict[str, list[dict[str, str]]] = {}
        for from_id, to_id in pairs:
            by_from.setdefault(from_id, []).append({"id": to_id})
        payload = {"inputs": [{"from": {"id": f}, "to": tos} for f, tos in by_from.items()]}
        body, rate, correlation = self._send("POST", path, token, payload, base_url=base_url)
        return self._parse_removal(body, pairs, rate, correlation)

    def archive_labels_batch(
        self,
        token: str,
        from_type: str,
        to_type: str,
        inputs: Sequence[tuple[tuple[str, str], Sequence[AssociationType]]],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """``POST /crm/associations/2026-03/{from}/{to}/batch/labels/archive``: remove only these labels.

        A pair no ``errors[]`` entry names had its labels removed.
        """
        path = f"/crm/associations/{API_VERSION}/{_seg(from_type)}/{_seg(to_type)}/batch/labels/archive"
        payload = {"inputs": [{"from": {"id": f}, "to": {"id": t}, "types": types_wire(ty)} for (f, t), ty in inputs]}
        body, rate, correlation = self._send("POST", path, token, payload, base_url=base_url)
        return self._parse_removal(body, [pair for pair, _ in inputs], rate, correlation)

    def read_associations_batch(
        self, token: str, from_type: str, to_type: str, from_ids: Sequence[str], *, base_url: str | None = None
    ) -> dict[str, list[tuple[str, tuple[AssociationType, ...]]]]:
        """``POST /crm/associations/2026-03/{from}/{to}/batch/read`` (200 or 207; up to 1,000 ids).

        Each asked-for id maps to its associated records, each with its association types. An id HubSpot
        answers nothing for (no associations, or an ``errors[]`` entry such as "no associations found")
        maps to an empty list. Only the first page of each record's associations is read (HubSpot pages
        beyond 500). Raises DeliveryError when the whole call failed.
        """
        path = f"/crm/associations/{API_VERSION}/{_seg(from_type)}/{_seg(to_type)}/batch/read"
        payload = {"inputs": [{"id": i} for i in from_ids]}
        body, _, _ = self._send("POST", path, token, payload, base_url=base_url)
        found: dict[str, list[tuple[str, tuple[AssociationType, ...]]]] = {i: [] for i in from_ids}
        results = body.get("results") if isinstance(body, dict) else None
        for result in results if isinstance(results, list) else ():
            try:
                from_id = str(result["from"]["id"])
                targets = result.get("to") or []
            except (KeyError, TypeError, AttributeError):
                continue
            if from_id not in found:
                continue
            for target in targets if isinstance(targets, list) else ():
                if not isinstance(target, dict) or "toObjectId" not in target:
                    continue
                specs = target.get("associationTypes") or []
                types = tuple(
                    (str(t["category"]), int(t["typeId"]))
                    for t in (specs if isinstance(specs, list) else ())
                    if isinstance(t, dict) and "category" in t and isinstance(t.get("typeId"), int)
                )
                found[from_id].append((str(target["toObjectId"]), types))
        return found

    def read_object(
        self,
        token: str,
        object_type: str,
        object_id: str,
        properties: Iterable[str],
        *,
        base_url: str | None = None,
        archived: bool = False,
    ) -> dict[str, Any]:
        """``GET /crm/objects/2026-03/{type}/{id}?properties=...``: the record's properties.

        ``archived``: read only a deleted (archived) record; HubSpot answers 404 for a live or unknown one.
        """
        path = f"/crm/objects/{API_VERSION}/{_seg(object_type)}/{_seg(object_id)}"
        params = {"properties": ",".join(properties)}
        if archived:
            params["archived"] = "true"
        body, _, _ = self._send("GET", path, token, None, params=params, base_url=base_url)
        props = body.get("properties") if isinstance(body, dict) else None
        return props if isinstance(props, dict) else {}

    def search_ids(
        self,
        token: str,
        object_type: str,
        property_name: str,
        value: str,
        limit: int = 2,
        *,
        base_url: str | None = None,
    ) -> list[str]:
        """``POST /crm/objects/2026-03/{type}/search`` for ``property == value``: matching ids (at most ``limit``)."""
        path = f"/crm/objects/{API_VERSION}/{_seg(object_type)}/search"
        payload = {
            "filterGroups": [{"filters": [{"propertyName": property_name, "operator": "EQ", "value": value}]}],
            "properties": [property_name],
            "limit": limit,
        }
        body, _, _ = self._send("POST", path, token, payload, base_url=base_url)
        results = body.get("results") if isinstance(body, dict) else None
        return [
            str(r["id"]) for r in (results if isinstance(results, list) else ()) if isinstance(r, dict) and "id" in r
        ]

    def search_records(
        self,
        token: str,
        object_type: str,
        filters: Sequence[Mapping[str, str]],
        properties: Sequence[str],
        limit: int,
        *,
        base_url: str | None = None,
    ) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        """``POST /crm/objects/2026-03/{type}/search``, ascending by ``hs_object_id``: (total, [(id, properties)]).

        ``filters`` form one filter group (all must hold). HubSpot answers at most 10,000 results per query,
        so callers page with a ``hs_object_id GT last`` filter rather than with ``after``. Raises DeliveryError.
        """
        path = f"/crm/objects/{API_VERSION}/{_seg(object_type)}/search"
        payload = {
            "filterGroups": [{"filters": [dict(f) for f in filters]}] if filters else [],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": limit,
        }
        body, _, _ = self._send("POST", path, token, payload, base_url=base_url)
        total = body.get("total") if isinstance(body, dict) else None
        results = body.get("results") if isinstance(body, dict) else None
        records: list[tuple[str, dict[str, Any]]] = []
        for result in results if isinstance(results, list) else ():
            if isinstance(result, dict) and isinstance(result.get("id"), str | int):
                props = result.get("properties")
                records.append((str(result["id"]), props if isinstance(props, dict) else {}))
        return (total if isinstance(total, int) and not isinstance(total, bool) else len(records)), records

    def refresh_token(
        self, client_id: str, client_secret: str, refresh_token: str, *, base_url: str | None = None
    ) -> dict[str, Any]:
        """``POST /oauth/2026-03/token`` (grant_type=refresh_token): HubSpot's token answer.

        ``/oauth/v1/token`` is deprecated from 2027-02-16; it is tried only where the 2026-03 endpoint
        answers 404 (a host that does not serve it yet).
        """
        form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }
        try:
            body, _, _ = self._send("POST", OAUTH_TOKEN_PATH, None, None, form=form, base_url=base_url)
        except NotFoundError:
            body, _, _ = self._send("POST", LEGACY_OAUTH_TOKEN_PATH, None, None, form=form, base_url=base_url)
        return body if isinstance(body, dict) else {}

    def app_token(
        self, client_id: str, client_secret: str, scopes: Sequence[str], *, base_url: str | None = None
    ) -> dict[str, Any]:
        """``POST /oauth/2026-03/token`` (grant_type=client_credentials): the app's own token, no refresh token.

        The Webhooks Journal and its subscriptions take this app token, not a portal's
        (docs/reference/hubspot.md §9.1). Raises DeliveryError (RateLimitedError for the token endpoint's 429).
        """
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        if scopes:
            form["scope"] = " ".join(scopes)
        body, _, _ = self._send("POST", OAUTH_TOKEN_PATH, None, None, form=form, base_url=base_url)
        return body if isinstance(body, dict) else {}

    def journal_fetch(
        self, token: str, after: str | None, *, portal_id: str, base_url: str | None = None
    ) -> dict[str, Any] | None:
        """``GET /webhooks-journal/journal/2026-03/earliest`` (``after`` None) or ``.../offset/{after}/next``.

        Only ``portal_id``'s entries (``installPortalId``). Returns the ``JournalFetchResponse`` (``currentOffset``,
        ``url``, ``expiresAt``) as sent, or None when there is no entry (yet): HubSpot's 204. Raises
        DeliveryError; NotFoundError when ``after`` is unknown or expired (the journal keeps three days).
        """
        tail = "earliest" if after is None else f"offset/{_seg(after)}/next"
        path = f"/webhooks-journal/journal/{API_VERSION}/{tail}"
        body, _, _ = self._send("GET", path, token, None, params={"installPortalId": portal_id}, base_url=base_url)
        return body if isinstance(body, dict) and body else None

    def journal_download(self, url: str) -> bytes:
        """``GET`` a journal fetch's ``url`` (a pre-signed URL: sent without the token): the entry's raw body.

        Raises DeliveryError (an expired URL answers 403 or 404).
        """
        try:
            response = self._session.get(url, timeout=self._timeout)
        except requests.Timeout as exc:
            raise HubSpotTimeoutError(HubSpotErrorDetail(message=f"GET journal file: {type(exc).__name__}")) from None
        except requests.RequestException as exc:
            raise ConnectionFailedError(HubSpotErrorDetail(message=f"GET journal file: {type(exc).__name__}")) from None
        if not 200 <= response.status_code < 300:
            text = response.text
            try:
                body: Any = json.loads(text) if text else {}
            except ValueError:
                body = None
            raise error_for_status(response.status_code, body, response.headers, time.time(), text=text)
        return response.content

    def _send(
        self,
        method: str,
        path: str,
        token: str | None,
        payload: Any,
        *,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        base_url: str | None = None,
    ) -> tuple[Any, RateHeaders | None, str | None]:
        url = (base_url.rstrip("/") if base_url else self._base) + path
        if not tracing.enabled():
            return self._exchange(method, url, path, token, payload, params, form)[1:]
        # With tracing on, every call to HubSpot is a CLIENT span: its status and correlation id, or its error.
        with tracing.http_client(method, url) as span:
            try:
                status, body, rate, correlation = self._exchange(method, url, path, token, payload, params, form)
            except DeliveryError as exc:
                tracing.http_answer(span, exc.status, exc.correlation_id, type(exc).__name__)
                raise
            tracing.http_answer(span, status, correlation)
            return body, rate, correlation

    def _exchange(
        self,
        method: str,
        url: str,
        path: str,
        token: str | None,
        payload: Any,
        params: Mapping[str, str] | None,
        form: Mapping[str, str] | None,
    ) -> tuple[int, Any, RateHeaders | None, str | None]:
        """One request and its answer: (status, body, rate headers, correlation id); raises DeliveryError."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data: Any = form
        if payload is not None:
            # orjson: a 2,000-input batch body and its answer cost the stdlib json ~35 ms a call, orjson ~5.
            data = orjson.dumps(payload)
            headers["Content-Type"] = "application/json"
        try:
            response = self._session.request(
                method, url, data=data, params=params, headers=headers, timeout=self._timeout
            )
        except requests.Timeout as exc:
            message = f"{method} {path}: {type(exc).__name__}"
            raise _sent_to(HubSpotTimeoutError(HubSpotErrorDetail(message=message)), url) from None
        except requests.RequestException as exc:
            message = f"{method} {path}: {type(exc).__name__} ({_cause(exc)})"
            raise _sent_to(ConnectionFailedError(HubSpotErrorDetail(message=message)), url) from None
        content = response.content
        try:
            body: Any = orjson.loads(content) if content else {}
        except ValueError:
            body = None
        if not 200 <= response.status_code < 300:
            text = content.decode("utf-8", "replace")
            raise _sent_to(error_for_status(response.status_code, body, response.headers, time.time(), text=text), url)
        if body is None:
            raise _sent_to(
                ServerError(HubSpotErrorDetail(status=response.status_code, message="answer was not JSON")), url
            )
        correlation = response.headers.get("X-HubSpot-Correlation-Id")
        return response.status_code, body, parse_rate_headers(response.headers), correlation

    @classmethod
    def _parse_removal(
        cls, body: Any, pairs: Sequence[tuple[str, str]], rate: RateHeaders | None, correlation: str | None
    ) -> CallResult:
        """A removal's answer: every pair is done unless an ``errors[]`` entry names it."""
        errors = body.get("errors") if isinstance(body, dict) else None
        echoed = [{"from": {"id": f}, "to": {"id": t}} for f, t in pairs]
        return cls._parse_batch({"results": echoed, "errors": errors or []}, pairs, rate, correlation, removal=True)

    @staticmethod
    def _parse_batch(
        body: Any,
        pairs: Sequence[tuple[str, str]],
        rate: RateHeaders | None,
        correlation: str | None,
        *,
        removal: bool = False,
    ) -> CallResult:
        """Map a batch-shaped answer back to each pair: done (linked, or removed when ``removal``) or its error."""
        linked: set[tuple[str, str]] = set()
        results = body.get("results") if isinstance(body, dict) else None
        for result in results if isinstance(results, list) else ():
            try:
                if "fromObjectId" in result:  # batch/create and the labelled PUT: LabelsBetweenObjectPair
                    linked.add((str(result["fromObjectId"]), str(result["toObjectId"])))
                else:
                    linked.add((str(result["from"]["id"]), str(result["to"]["id"])))
            except (KeyError, TypeError):
                continue
        wanted = set(pairs)
        # Results for pairs not asked for (other than the reverse of one): ids HubSpot answered for merged ones.
        echoed = sorted(p for p in linked - wanted if (p[1], p[0]) not in wanted)[:MAX_ECHOED]
        # HubSpot may answer with both directions; only the pairs that were asked for count.
        linked &= wanted
        failed: dict[tuple[str, str], DeliveryError] = {}
        entries = body.get("errors") if isinstance(body, dict) else None
        unnamed_limits: list[DeliveryError] = []
        for entry in entries if isinstance(entries, list) else ():
            error = error_for_entry(entry, rate)
            named = _entry_ids(entry)
            if not named and isinstance(error, AssociationLimitError):
                unnamed_limits.append(error)
            if removal:  # every pair was echoed as done: the ones an error names are not
                linked -= {pair for pair in pairs if pair[0] in named or pair[1] in named}
                if not named:  # which inputs failed is unknown: removing again is harmless, so all go again
                    linked.clear()
            for pair in pairs:
                if pair not in linked and pair not in failed and (pair[0] in named or pair[1] in named):
                    failed[pair] = error
            if not named:
                for pair in pairs:
                    if pair not in linked and pair not in failed and len(pairs) == 1:
                        failed[pair] = error
        unanswered = [pair for pair in pairs if pair not in linked and pair not in failed]
        if unnamed_limits and len(unanswered) <= len(unnamed_limits):
            # A limit refusal names no record (docs/reference/hubspot.md §9.4): when there are as many as the
            # inputs left without a result, those are the refused ones. Fewer (some input vanished for
            # another reason) cannot be matched: they go again as "pair missing" and a single-input call
            # names its own refusal.
            for pair, error in zip(unanswered, unnamed_limits, strict=False):
                failed[pair] = error
        for pair in pairs:
            if pair not in linked and pair not in failed:
                status = body.get("status") if isinstance(body, dict) else None
                failed[pair] = TransientError(
                    HubSpotErrorDetail(
                        message=f"pair missing from HubSpot's answer (status {status})",
                        correlation_id=correlation,
                        rate=rate,
                        # What it answered instead, for ``hublink.delivery.record_fates`` to recognise a merge.
                        context={ECHOED: [list(p) for p in echoed]} if echoed else {},
                    )
                )
        return CallResult(frozenset(linked), failed, rate, correlation)


def _next_after(body: Any) -> str | None:
    """``paging.next.after`` of a paged answer, or None on the last page."""
    paging = body.get("paging") if isinstance(body, dict) else None
    following = paging.get("next") if isinstance(paging, dict) else None
    after = following.get("after") if isinstance(following, dict) else None
    return str(after) if isinstance(after, str | int) and not isinstance(after, bool) and str(after) else None


def _sent_to(error: DeliveryError, url: str) -> DeliveryError:
    """``error``, naming the host it came from (for the failure's log line; never the URL's credentials)."""
    parts = urlsplit(url)
    error.host = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else None
    return error


#: urllib3's "<...HTTPSConnection object at 0x7f...>: " prefix, which says nothing to an operator.
_OBJECT_PREFIX = re.compile(r"^<[^>]*>:\s*")


def _cause(exc: BaseException) -> str:
    """The innermost reason a connection failed ("Failed to resolve 'api.hubapi.com'"), briefly."""
    reason: object = exc.args[0] if exc.args else exc
    while (inner := getattr(reason, "reason", None)) is not None:
        reason = inner
    return _OBJECT_PREFIX.sub("", str(reason))[:160] or type(reason).__name__


def _seg(value: str) -> str:
    """One URL path segment; values are validated already, quoting is a second fence."""
    return quote(value, safe="")
