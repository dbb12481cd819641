"""LookupResolver: find the records a rule's ``lookup`` names, through the shared limits, with a cache.

Property reads spend the app's ordinary rate-limit bucket; searches spend the separate search bucket
(HubSpot allows about 5 searches per second per account). Found ids are cached in Redis for
``HUBLINK_LOOKUP_CACHE_TTL_S``; misses are not cached, because a record created a moment ago may simply
not be searchable yet.

Each resolved lookup is kept in the event history (:class:`ResolutionHistory`, entry ``lookup-<lookup id>``)
with the association it became and both its records, so a record's trace names what a lookup found and
finds the association from either end.

Keys owned: ``lookup:<digest>``. Fails closed: raises StoreUnavailableError without Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis

from hublink.delivery.credentials import Credential
from hublink.delivery.hubspot import HubSpotClient
from hublink.domain.associations import AssociationRequest
from hublink.domain.errors import (
    HubSpotErrorDetail,
    InvalidInputError,
    LookupAmbiguousError,
    LookupNoMatchError,
    LookupNoValueError,
)
from hublink.domain.limits import RateLimit
from hublink.domain.lookups import LookupRequest, describe
from hublink.domain.rules import Fixed, PropertyLookup, SearchLookup, Side
from hublink.intake.history import EventHistory, EventOutcome
from hublink.store.connections import store_errors
from hublink.store.keys import Keys


@dataclass(frozen=True, slots=True)
class Resolution:
    """A lookup's result: the association to enqueue, or None when the rule says skip."""

    association: AssociationRequest | None
    skipped_reason: str | None = None


#: The event history's ``kind`` of a lookup's resolution (``hublink.ops.trace`` reads it).
RESOLUTION_KIND = "lookup"


def resolution_entry(lookup_id: str) -> str:
    """The event history's entry id of the resolution of the lookup ``lookup_id``."""
    return f"lookup-{lookup_id}"


class ResolutionHistory:
    """Keeps resolved lookups in the event history, each as an entry naming the association it became."""

    def __init__(self, history: EventHistory, *, clock: Callable[[], float] = time.time) -> None:
        self._history = history
        self._clock = clock

    def record(self, lookup_id: str, rule: str, association_id: str, association: AssociationRequest) -> None:
        """Keep one resolution (written after the association is stored; a repeat changes nothing)."""
        outcome = EventOutcome(0, "accepted", rules=(rule,), produced=((association_id, association),))
        self._history.record(resolution_entry(lookup_id), self._clock(), RESOLUTION_KIND, [outcome])


class LookupResolver:
    """Resolves LookupRequests one side at a time; raises DeliveryError subclasses on failure."""

    def __init__(
        self, redis: Redis, keys: Keys, client: HubSpotClient, *, cache_ttl_s: int, search_rate_limit: RateLimit
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._client = client
        self._cache_ttl_s = cache_ttl_s
        self.search_rate_limit = search_rate_limit

    def resolve(self, request: LookupRequest, credential: Credential, take_token: Callable[[str], None]) -> Resolution:
        """Find both ends with ``credential`` (its token and host); ``take_token(kind)`` ("read" or "search")
        blocks briefly or raises TokenWaitTooLongError.

        Raises DeliveryError subclasses (HubSpot failures, no match, ambiguity) and TokenWaitTooLongError.
        """
        from_id = self._side(request, request.from_side, credential, take_token)
        to_id = self._side(request, request.to_side, credential, take_token)
        if from_id is None or to_id is None:
            return Resolution(None, "several matches; the rule says skip")
        try:
            return Resolution(request.resolved(from_id, to_id))
        except InvalidInputError as exc:
            raise LookupNoValueError(
                HubSpotErrorDetail(
                    category="LOOKUP_NO_VALUE", message=str(exc.problems[0].message if exc.problems else exc)
                )
            ) from None

    def _side(
        self, request: LookupRequest, side: Side, credential: Credential, take_token: Callable[[str], None]
    ) -> str | None:
        if isinstance(side, Fixed):
            return side.object_id
        if isinstance(side, PropertyLookup):
            key = f"{request.portal_id}|property|{side.object_type}|{side.object_id}|{side.property}"
            cached = self._cached(key)
            if cached is None:
                take_token("read")
                props = self._client.read_object(
                    credential.token, side.object_type, side.object_id, [side.property], base_url=credential.base_url
                )
                value = props.get(side.property)
                if value in (None, ""):
                    raise LookupNoValueError(
                        HubSpotErrorDetail(
                            category="LOOKUP_NO_VALUE", message=f"{describe(side)}: the property is empty"
                        )
                    )
                cached = [str(value)]
                self._store(key, cached)
            return cached[0]
        return self._search(request, side, credential, take_token)

    def _search(
        self, request: LookupRequest, side: SearchLookup, credential: Credential, take_token: Callable[[str], None]
    ) -> str | None:
        key = f"{request.portal_id}|search|{side.target_type}|{side.property}|{side.value.lower()}"
        ids = self._cached(key)
        if ids is None:
            take_token("search")
            ids = self._client.search_ids(
                credential.token, side.target_type, side.property, side.value, limit=2, base_url=credential.base_url
            )
            if ids:
                self._store(key, ids)
        if not ids:
            raise LookupNoMatchError(HubSpotErrorDetail(category="LOOKUP_NO_MATCH", message=f"no {describe(side)}"))
        if len(ids) > 1:
            if side.on_multiple == "skip":
                return None
            if side.on_multiple == "dead-letter":
                raise LookupAmbiguousError(
                    HubSpotErrorDetail(category="LOOKUP_AMBIGUOUS", message=f"several {describe(side)}")
                )
        return ids[0]

    def _cached(self, key: str) -> list[str] | None:
        with store_errors():
            raw = self._redis.get(self._keys.lookup_cache(key))
        return json.loads(raw) if raw else None

    def _store(self, key: str, ids: list[str]) -> None:
        if self._cache_ttl_s <= 0:
            return
        with store_errors():
            self._redis.set(self._keys.lookup_cache(key), json.dumps(ids), ex=self._cache_ttl_s)
