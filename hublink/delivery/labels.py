"""LabelCatalog: HubSpot's association label definitions per pair of object types, read through a Redis cache.

A label is named by people ("Decision maker", "Primary") but sent to HubSpot as an association type
(``associationCategory`` + ``associationTypeId``), and user-defined labels differ from account to account.
The catalog reads ``GET /crm/v4/associations/{from}/{to}/labels`` once per portal and pair of types and
keeps the answer in Redis for ``HUBLINK_LABEL_CACHE_TTL_S``, so that the web (answering 422 for an unknown
name), the worker at start-up (checking the rules' labels) and the drain (sending labelled work) agree
without asking HubSpot each time. Names match without regard to case or surrounding spaces.

Keys owned: ``labels:<portal|from|to>``. Fails closed: raises StoreUnavailableError without Redis.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redis import Redis

from hublink.delivery.credentials import Credential
from hublink.domain.associations import AssociationRequest, AssociationType
from hublink.domain.errors import (
    DeliveryError,
    HubSpotErrorDetail,
    NotFoundError,
    RateLimitedError,
    StoreUnavailableError,
    TokenWaitTooLongError,
    TransientError,
    ValidationRejectedError,
)
from hublink.domain.rules import Rule, RuleSet
from hublink.store.connections import store_errors
from hublink.store.keys import Keys

#: The category HubLink writes on a dead letter whose label HubSpot does not define.
UNKNOWN_LABEL_CATEGORY = "UNKNOWN_LABEL"


class LabelSource(Protocol):
    """The HubSpot call the catalog makes (``HubSpotClient.association_labels``)."""

    def association_labels(
        self, token: str, from_type: str, to_type: str, *, base_url: str | None = None
    ) -> list[tuple[str, int, str | None]]:
        """(category, typeId, label or None) of each definition for the pair."""
        ...


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


@dataclass(frozen=True, slots=True)
class LabelDefinitions:
    """The labels HubSpot defines for one portal and one (from, to) pair of object types."""

    #: (category, typeId, label or None), as HubSpot listed them.
    entries: tuple[tuple[str, int, str | None], ...] = ()
    _by_name: Mapping[str, tuple[AssociationType, ...]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, entries: Sequence[tuple[str, int, str | None]]) -> LabelDefinitions:
        """Index ``entries`` by label name (a name HubSpot lists twice maps to every type it names)."""
        by_name: dict[str, list[AssociationType]] = {}
        for category, type_id, label in entries:
            if label:
                by_name.setdefault(_key(label), []).append((category, type_id))
        return cls(tuple(entries), {k: tuple(v) for k, v in by_name.items()})

    def types_for(self, name: str) -> tuple[AssociationType, ...] | None:
        """The association types a label name stands for, or None when HubSpot defines no such label."""
        return self._by_name.get(_key(name))

    @property
    def known(self) -> list[str]:
        """Every label name defined for the pair, sorted, for messages."""
        return sorted({label for _, _, label in self.entries if label}, key=str.casefold)


def unknown_label_message(name: str, from_type: str, to_type: str, known: Sequence[str]) -> str:
    """``label 'X' is not defined for deals -> companies; known labels: A, B`` (or none)."""
    listed = ", ".join(repr(k) for k in known) if known else "none"
    return f"label {name!r} is not defined for {from_type} -> {to_type}; known labels: {listed}"


def unknown_label_error(name: str, from_type: str, to_type: str, known: Sequence[str]) -> ValidationRejectedError:
    """The permanent error of work whose label HubSpot does not define (its dead letter names the known ones)."""
    return ValidationRejectedError(
        HubSpotErrorDetail(
            category=UNKNOWN_LABEL_CATEGORY,
            message=unknown_label_message(name, from_type, to_type, known),
            context={"knownLabels": list(known)},
        )
    )


class LabelCatalog:
    """Label definitions per portal and pair of object types, cached in Redis."""

    def __init__(self, redis: Redis, keys: Keys, client: LabelSource, *, cache_ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._client = client
        self._ttl_s = max(cache_ttl_s, 1)

    def definitions(
        self,
        credential: Credential,
        portal: str | None,
        from_type: str,
        to_type: str,
        take_token: Callable[[], None] = lambda: None,
    ) -> LabelDefinitions:
        """The pair's definitions: from the cache, else from HubSpot (``take_token`` is called first).

        A 404 means none are defined. Raises DeliveryError when HubSpot does not answer, StoreUnavailableError
        without Redis.
        """
        cached = LabelCache(self._redis, self._keys).definitions(portal, from_type, to_type)
        if cached is not None:
            return cached
        take_token()
        try:
            entries = self._client.association_labels(
                credential.token, from_type, to_type, base_url=credential.base_url
            )
        except NotFoundError:
            # HubSpot defines nothing for this pair of types (they cannot be associated): every name is
            # unknown. Not cached: a 404 from a host that is being moved should not last an hour.
            return LabelDefinitions()
        with store_errors():
            self._redis.set(LabelCache.key(self._keys, portal, from_type, to_type), json.dumps(entries), ex=self._ttl_s)
        return LabelDefinitions.of(entries)

    def types_for(
        self,
        credential: Credential,
        portal: str | None,
        from_type: str,
        to_type: str,
        name: str,
        take_token: Callable[[], None] = lambda: None,
    ) -> tuple[AssociationType, ...]:
        """The types ``name`` stands for; raises the ValidationRejectedError of :func:`unknown_label_error`."""
        found = self.definitions(credential, portal, from_type, to_type, take_token)
        types = found.types_for(name)
        if types is None:
            raise unknown_label_error(name, from_type, to_type, found.known)
        return types


class LabelCache:
    """The catalog's Redis cache alone, read only: what the web checks labels against (it never calls HubSpot).

    The workers fill the cache (:class:`LabelCatalog`); a pair no worker has read yet, or whose entry
    expired, is a miss (None), never a call.
    """

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    @staticmethod
    def key(keys: Keys, portal: str | None, from_type: str, to_type: str) -> str:
        """The cache key of one portal's pair of object types."""
        return keys.labels(f"{portal or '_'}|{from_type}|{to_type}")

    def definitions(self, portal: str | None, from_type: str, to_type: str) -> LabelDefinitions | None:
        """The pair's cached definitions, None on a miss or an unreadable entry; StoreUnavailableError without Redis."""
        with store_errors():
            raw = self._redis.get(self.key(self._keys, portal, from_type, to_type))
        if raw is None:
            return None
        try:
            cached = json.loads(raw)
            return LabelDefinitions.of([(str(c), int(t), lb) for c, t, lb in cached])
        except (ValueError, TypeError):
            return None  # an unreadable entry is a miss: the catalog reads it again from HubSpot


class LabelReader(Protocol):
    """Reads a pair's label definitions (:class:`LabelCatalog`, :class:`MemoryLabelCatalog`)."""

    def definitions(
        self,
        credential: Credential,
        portal: str | None,
        from_type: str,
        to_type: str,
        take_token: Callable[[], None] = ...,
    ) -> LabelDefinitions:
        """The pair's definitions; raises DeliveryError when they cannot be read."""
        ...


class LabelResolver(Protocol):
    """Turns a label's name into association types (:class:`LabelCatalog`, :class:`MemoryLabelCatalog`)."""

    def types_for(
        self,
        credential: Credential,
        portal: str | None,
        from_type: str,
        to_type: str,
        name: str,
        take_token: Callable[[], None] = ...,
    ) -> tuple[AssociationType, ...]:
        """The types ``name`` stands for; raises DeliveryError (ValidationRejectedError for an unknown name)."""
        ...


def resolve_types(
    labels: LabelResolver | None,
    credential: Credential,
    portal: str | None,
    from_type: str,
    to_type: str,
    requests: Sequence[AssociationRequest],
    types: dict[int, tuple[AssociationType, ...]],
    take_token: Callable[[], None],
) -> dict[int, DeliveryError]:
    """Fill ``types`` (by index) for each labelled request; return the error of each that could not be resolved.

    One catalog look-up per distinct name. ``take_token`` raises TokenWaitTooLongError when HubSpot's
    limit is spent: those requests are deferred (a RateLimitedError spends no attempt).
    """
    errors: dict[int, DeliveryError] = {}
    by_name: dict[str, tuple[AssociationType, ...] | DeliveryError] = {}
    for index, request in enumerate(requests):
        if request.types:
            types[index] = request.types
            continue
        if request.label is None:
            continue
        name = request.label
        if name not in by_name:
            try:
                if labels is None:
                    raise TransientError(
                        HubSpotErrorDetail(message=f"label {name!r}: this worker has no label catalog")
                    )
                by_name[name] = labels.types_for(credential, portal, from_type, to_type, name, take_token)
            except TokenWaitTooLongError as exc:
                detail = HubSpotErrorDetail(message="label definitions: rate limit")
                by_name[name] = RateLimitedError(detail, exc.wait_ms / 1000)
            except DeliveryError as exc:
                by_name[name] = exc
        found = by_name[name]
        if isinstance(found, DeliveryError):
            errors[index] = found
        else:
            types[index] = found
    return errors


class MemoryLabelCatalog(LabelCatalog):
    """The catalog's in-memory twin for unit tests: definitions given per (portal, from, to)."""

    def __init__(
        self, definitions: Mapping[tuple[str | None, str, str], Sequence[tuple[str, int, str | None]]]
    ) -> None:
        self._definitions = {k: LabelDefinitions.of(v) for k, v in definitions.items()}
        self.fetches = 0

    def definitions(
        self,
        credential: Credential,
        portal: str | None,
        from_type: str,
        to_type: str,
        take_token: Callable[[], None] = lambda: None,
    ) -> LabelDefinitions:
        """The given definitions (none for an unknown pair)."""
        self.fetches += 1
        return self._definitions.get((portal, from_type, to_type), LabelDefinitions())


def check_rule_labels(
    rules: RuleSet,
    definitions: Callable[[str | None, str, str], LabelDefinitions],
    portals: Sequence[str | None],
) -> tuple[RuleSet, list[str]]:
    """The rules whose every label HubSpot defines (in each of ``portals``), and a problem per refused rule.

    ``definitions(portal, from, to)`` reads a pair's definitions; when it raises DeliveryError (HubSpot
    unreachable at start-up) or StoreUnavailableError the label cannot be checked and the rule is kept: its work will be
    dead-lettered with the known labels if the name is wrong.
    """
    kept: list[Rule] = []
    problems: list[str] = []
    for rule in rules.rules:
        refused: list[str] = []
        for index, (from_side, to_side) in enumerate(rule.associations):
            name = rule.options_of(index).label
            if name is None:
                continue
            from_type, to_type = from_side.object_type, to_side.object_type
            for portal in portals:
                try:
                    found = definitions(portal, from_type, to_type)
                except (DeliveryError, StoreUnavailableError):
                    continue
                if found.types_for(name) is None:
                    where = f" in portal {portal}" if portal else ""
                    message = unknown_label_message(name, from_type, to_type, found.known)
                    refused.append(f"associations[{index}].label: {message}{where}")
        if refused:
            problems.append(f"rule '{rule.name}' (line {rule.line}) refused: " + "; ".join(refused))
        else:
            kept.append(rule)
    return RuleSet(kept), problems
