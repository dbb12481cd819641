"""Journal subscriptions (webhooks-2026-03 spec, ``/webhooks-journal/subscriptions/2026-03``), per portal.

HubSpot's journal holds only the events of journal subscriptions, which are separate from push
subscriptions and made only through this API with an app token (docs/reference/hubspot.md §9.1). Kinds
simulated: ``OBJECT`` (an object type's CREATE, UPDATE, DELETE, MERGE, RESTORE), ``ASSOCIATION``
(ASSOCIATION_ADDED, ASSOCIATION_REMOVED from an object type, optionally to some types),
``GDPR_PRIVACY_DELETION`` (GDPR_DELETE) and ``APP_LIFECYCLE_EVENT`` (install ``4-1909196``, uninstall
``4-1916193``; app-wide, no portal). A POST upserts: the same app, portal, kind and object type update the
existing subscription. Validation raises ValueError naming the field; an unknown id raises KeyError.
Thread-safe (its own lock).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hubspot_sim.messages import iso_utc

ACTIONS = frozenset(
    {
        "CREATE",
        "UPDATE",
        "DELETE",
        "MERGE",
        "RESTORE",
        "ASSOCIATION_ADDED",
        "ASSOCIATION_REMOVED",
        "SNAPSHOT",
        "APP_INSTALL",
        "APP_UNINSTALL",
        "ADDED_TO_LIST",
        "REMOVED_FROM_LIST",
        "GDPR_DELETE",
    }
)
KINDS = ("OBJECT", "ASSOCIATION", "GDPR_PRIVACY_DELETION", "APP_LIFECYCLE_EVENT")
APP_INSTALL_EVENT_TYPE = "4-1909196"
APP_UNINSTALL_EVENT_TYPE = "4-1916193"
LIFECYCLE_ACTIONS = {APP_INSTALL_EVENT_TYPE: "APP_INSTALL", APP_UNINSTALL_EVENT_TYPE: "APP_UNINSTALL"}


@dataclass(frozen=True, slots=True)
class JournalSubscription:
    """One journal subscription (the spec's ``SubscriptionResponse_1``)."""

    subscription_id: int
    app_id: int
    kind: str
    object_type_id: str
    actions: tuple[str, ...]
    portal_id: int | None
    created_at: float
    updated_at: float
    associated_types: tuple[str, ...] = ()
    object_ids: tuple[int, ...] = ()

    def covers(self, portal_id: int, object_type_id: str, action: str, to_type_id: str | None = None) -> bool:
        """True when an event of this portal, object type and action belongs in the journal by this subscription."""
        if self.kind == "APP_LIFECYCLE_EVENT":
            return action == LIFECYCLE_ACTIONS.get(self.object_type_id)
        if self.portal_id != portal_id or self.object_type_id != object_type_id or action not in self.actions:
            return False
        return not (self.associated_types and to_type_id is not None and to_type_id not in self.associated_types)

    def as_dict(self) -> dict[str, Any]:
        """The spec's ``SubscriptionResponse_1``."""
        body: dict[str, Any] = {
            "id": self.subscription_id,
            "appId": self.app_id,
            "subscriptionType": self.kind,
            "objectTypeId": self.object_type_id,
            "actions": list(self.actions),
            "createdAt": iso_utc(self.created_at),
            "updatedAt": iso_utc(self.updated_at),
        }
        if self.portal_id is not None:
            body["portalId"] = self.portal_id
        if self.associated_types:
            body["associatedObjectTypeIds"] = list(self.associated_types)
        if self.object_ids:
            body["objectIds"] = list(self.object_ids)
        return body


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise ValueError(f"{where}: expected an integer id, got {value!r}")
    return int(value)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


class JournalSubscriptions:
    """Every app's journal subscriptions (see the module docstring)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._subscriptions: dict[int, JournalSubscription] = {}
        self._ids = itertools.count(1)

    def clear(self) -> None:
        """Forget every subscription."""
        with self._lock:
            self._subscriptions.clear()

    def has_any(self) -> bool:
        """True when some subscription exists (checked on every association write: no lock needed for a len)."""
        return bool(self._subscriptions)

    def upsert(self, app_id: int, body: Any) -> dict[str, Any]:
        """Validate a ``SubscriptionUpsertRequest`` and create or update. Raises ValueError naming the field."""
        if not isinstance(body, dict):
            raise ValueError('expected {"subscriptionType": "OBJECT", "portalId", "objectTypeId", "actions": [...]}')
        kind = body.get("subscriptionType", "OBJECT")
        if kind not in KINDS:
            raise ValueError(f"subscriptionType: expected one of {list(KINDS)}, got {kind!r}")
        portal: int | None = None
        if kind == "APP_LIFECYCLE_EVENT":
            type_id = body.get("eventTypeId")
            if type_id not in LIFECYCLE_ACTIONS:
                raise ValueError(f"eventTypeId: expected one of {sorted(LIFECYCLE_ACTIONS)}, got {type_id!r}")
            actions: tuple[str, ...] = (LIFECYCLE_ACTIONS[str(type_id)],)
        else:
            portal = _int(body.get("portalId"), "portalId")
            type_id = body.get("objectTypeId")
            if not isinstance(type_id, str) or not type_id:
                raise ValueError(f"objectTypeId: expected an object type id such as 0-3, got {type_id!r}")
            actions = _strings(body.get("actions"), "actions")
            if not actions or not set(actions) <= ACTIONS:
                raise ValueError(
                    f"actions: expected a non-empty list of {sorted(ACTIONS)}, got {body.get('actions')!r}"
                )
        associated = _strings(body.get("associatedObjectTypeIds"), "associatedObjectTypeIds")
        raw_ids = body.get("objectIds") or []
        if not isinstance(raw_ids, list):
            raise ValueError(f"objectIds: expected a list of integers, got {raw_ids!r}")
        object_ids = tuple(_int(v, f"objectIds[{i}]") for i, v in enumerate(raw_ids))
        with self._lock:
            now = self._clock()
            for found in self._subscriptions.values():
                same = (found.app_id, found.kind, found.object_type_id, found.portal_id)
                if same == (app_id, kind, type_id, portal):
                    updated = replace(
                        found, actions=actions, associated_types=associated, object_ids=object_ids, updated_at=now
                    )
                    self._subscriptions[found.subscription_id] = updated
                    return updated.as_dict()
            created = JournalSubscription(
                next(self._ids), app_id, str(kind), str(type_id), actions, portal, now, now, associated, object_ids
            )
            self._subscriptions[created.subscription_id] = created
            return created.as_dict()

    def listing(self, app_id: int) -> dict[str, Any]:
        """``CollectionResponseSubscriptionResponseNoPaging``: the app's subscriptions."""
        with self._lock:
            return {"results": [s.as_dict() for s in self._subscriptions.values() if s.app_id == app_id]}

    def one(self, app_id: int, subscription_id: int) -> dict[str, Any]:
        """One subscription. Raises KeyError when the app has none by that id."""
        with self._lock:
            found = self._subscriptions.get(subscription_id)
            if found is None or found.app_id != app_id:
                raise KeyError(f"No journal subscription {subscription_id}")
            return found.as_dict()

    def delete(self, app_id: int, subscription_id: int) -> None:
        """Remove one subscription. Raises KeyError when the app has none by that id."""
        with self._lock:
            found = self._subscriptions.get(subscription_id)
            if found is None or found.app_id != app_id:
                raise KeyError(f"No journal subscription {subscription_id}")
            del self._subscriptions[subscription_id]

    def delete_portal(self, portal_id: int, app_id: int | None = None) -> int:
        """Remove a portal's subscriptions (one app's, or every app's); returns how many."""
        with self._lock:
            gone = [
                s.subscription_id
                for s in self._subscriptions.values()
                if s.portal_id == portal_id and (app_id is None or s.app_id == app_id)
            ]
            for subscription_id in gone:
                del self._subscriptions[subscription_id]
            return len(gone)

    def covering(
        self, portal_id: int, object_type_id: str, action: str, to_type_id: str | None = None
    ) -> list[JournalSubscription]:
        """The subscriptions that put such an event in the journal."""
        with self._lock:
            return [s for s in self._subscriptions.values() if s.covers(portal_id, object_type_id, action, to_type_id)]
