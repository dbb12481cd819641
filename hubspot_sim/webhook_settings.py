"""An app's webhook settings and subscriptions (webhooks-2026-03 spec, ``/webhooks/2026-03/{appId}/...``).

Settings are ``{targetUrl, throttling: {maxConcurrentRequests}}`` with their times; subscriptions are
``{id, eventType, active, propertyName?, objectTypeId?}`` with theirs, at most 1,000 per app
(docs/reference/hubspot.md §4.1). Validation raises ValueError naming the field (400 ``VALIDATION_ERROR``); a missing
app setting or subscription raises KeyError (404). Thread-safe (its own lock).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from hubspot_sim.messages import iso_utc

MAX_SUBSCRIPTIONS = 1000  # per app (docs/reference/hubspot.md §4.1)
MIN_CONCURRENT_REQUESTS = 6  # the v3 docs ask for more than 5 (docs/reference/hubspot.md §4.3)
#: The spec's SubscriptionCreateRequest.eventType enum.
EVENT_TYPES = frozenset(
    [f"{o}.{a}" for o in ("company", "contact", "deal", "ticket", "line_item") for a in ("associationChange",)]
    + [
        f"{o}.{a}"
        for o in ("company", "contact", "deal", "ticket", "line_item", "product", "object")
        for a in ("creation", "deletion", "merge", "propertyChange", "restore")
    ]
    + ["object.associationChange", "contact.privacyDeletion", "event.completed"]
    + [f"conversation.{a}" for a in ("creation", "deletion", "newMessage", "privacyDeletion", "propertyChange")]
)


@dataclass(frozen=True, slots=True)
class Settings:
    """One app's target and throttling."""

    target_url: str
    max_concurrent_requests: int
    created_at: float
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        """The spec's ``SettingsResponse``."""
        return {
            "targetUrl": self.target_url,
            "throttling": {"maxConcurrentRequests": self.max_concurrent_requests},
            "createdAt": iso_utc(self.created_at),
            "updatedAt": iso_utc(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription of an app."""

    subscription_id: str
    event_type: str
    active: bool
    created_at: float
    updated_at: float
    property_name: str | None = None
    object_type_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The spec's ``SubscriptionResponse``."""
        body: dict[str, Any] = {
            "id": self.subscription_id,
            "eventType": self.event_type,
            "active": self.active,
            "createdAt": iso_utc(self.created_at),
            "updatedAt": iso_utc(self.updated_at),
        }
        if self.property_name is not None:
            body["propertyName"] = self.property_name
        if self.object_type_id is not None:
            body["objectTypeId"] = self.object_type_id
        return body


@dataclass(slots=True)
class _App:
    settings: Settings | None = None
    subscriptions: dict[str, Subscription] = field(default_factory=dict)


class WebhookApps:
    """Every app's settings and subscriptions, created on first use."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._apps: dict[str, _App] = {}
        self._ids = itertools.count(1)

    def clear(self) -> None:
        """Forget every app."""
        with self._lock:
            self._apps.clear()

    # --- settings ---

    def settings(self, app_id: str) -> dict[str, Any]:
        """The app's ``SettingsResponse``. Raises KeyError when none are set."""
        with self._lock:
            found = self._apps.get(app_id, _App()).settings
            if found is None:
                raise KeyError(f"No webhook settings for app {app_id}")
            return found.as_dict()

    def put_settings(self, app_id: str, body: Any) -> dict[str, Any]:
        """Validate a ``SettingsChangeRequest`` and store it. Raises ValueError naming the bad field."""
        if not isinstance(body, dict):
            raise ValueError('expected {"targetUrl": "https://...", "throttling": {"maxConcurrentRequests": 10}}')
        url = body.get("targetUrl")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"targetUrl: expected an http(s) URL, got {url!r}")
        throttling = body.get("throttling")
        limit = throttling.get("maxConcurrentRequests") if isinstance(throttling, dict) else None
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < MIN_CONCURRENT_REQUESTS:
            raise ValueError(
                f"throttling.maxConcurrentRequests: expected an integer of at least {MIN_CONCURRENT_REQUESTS}, "
                f"got {limit!r}"
            )
        with self._lock:
            app = self._apps.setdefault(app_id, _App())
            now = self._clock()
            created = app.settings.created_at if app.settings is not None else now
            app.settings = Settings(str(url), limit, created, now)
            return app.settings.as_dict()

    def delete_settings(self, app_id: str) -> None:
        """Remove the app's settings (nothing set: nothing to do)."""
        with self._lock:
            if app_id in self._apps:
                self._apps[app_id].settings = None

    def target(self, app_id: str) -> tuple[str | None, list[Subscription]]:
        """The app's target URL (None without settings) and its active subscriptions."""
        with self._lock:
            app = self._apps.get(app_id, _App())
            url = app.settings.target_url if app.settings is not None else None
            return url, [s for s in app.subscriptions.values() if s.active]

    # --- subscriptions ---

    def subscriptions(self, app_id: str) -> dict[str, Any]:
        """The spec's ``SubscriptionListResponse``."""
        with self._lock:
            app = self._apps.get(app_id, _App())
            return {"results": [s.as_dict() for s in app.subscriptions.values()]}

    def subscription(self, app_id: str, subscription_id: str) -> dict[str, Any]:
        """One ``SubscriptionResponse``. Raises KeyError when the app has no such subscription."""
        with self._lock:
            return self._find(app_id, subscription_id).as_dict()

    def _find(self, app_id: str, subscription_id: str) -> Subscription:
        found = self._apps.get(app_id, _App()).subscriptions.get(subscription_id)
        if found is None:
            raise KeyError(f"No subscription {subscription_id} in app {app_id}")
        return found

    def create(self, app_id: str, body: Any) -> dict[str, Any]:
        """Validate a ``SubscriptionCreateRequest`` and add it. Raises ValueError naming the bad field."""
        if not isinstance(body, dict):
            raise ValueError('expected {"eventType": "deal.creation", "active": true}')
        event_type = body.get("eventType")
        if event_type not in EVENT_TYPES:
            raise ValueError(f"eventType: expected one of the spec's event types, got {event_type!r}")
        active = body.get("active")
        if not isinstance(active, bool):
            raise ValueError(f"active: expected true or false, got {active!r}")
        property_name = body.get("propertyName")
        if str(event_type).endswith(".propertyChange") and (not isinstance(property_name, str) or not property_name):
            raise ValueError("propertyName: required for a propertyChange subscription")
        object_type_id = body.get("objectTypeId")
        if str(event_type).startswith("object.") and (not isinstance(object_type_id, str) or not object_type_id):
            raise ValueError("objectTypeId: required for an object.* subscription (e.g. 0-3)")
        with self._lock:
            app = self._apps.setdefault(app_id, _App())
            if len(app.subscriptions) >= MAX_SUBSCRIPTIONS:
                raise ValueError(f"an app has at most {MAX_SUBSCRIPTIONS} subscriptions")
            now = self._clock()
            subscription = Subscription(
                str(next(self._ids)),
                str(event_type),
                active,
                now,
                now,
                property_name if isinstance(property_name, str) else None,
                object_type_id if isinstance(object_type_id, str) else None,
            )
            app.subscriptions[subscription.subscription_id] = subscription
            return subscription.as_dict()

    def patch(self, app_id: str, subscription_id: str, body: Any) -> dict[str, Any]:
        """Apply a ``SubscriptionPatchRequest`` (``active``). Raises KeyError (unknown) or ValueError (bad)."""
        active = body.get("active") if isinstance(body, dict) else None
        if body is not None and not isinstance(body, dict):
            raise ValueError('expected {"active": true}')
        if active is not None and not isinstance(active, bool):
            raise ValueError(f"active: expected true or false, got {active!r}")
        with self._lock:
            found = self._find(app_id, subscription_id)
            changed = replace(found, active=found.active if active is None else active, updated_at=self._clock())
            self._apps[app_id].subscriptions[subscription_id] = changed
            return changed.as_dict()

    def delete(self, app_id: str, subscription_id: str) -> None:
        """Remove a subscription. Raises KeyError when the app has no such subscription."""
        with self._lock:
            self._find(app_id, subscription_id)
            del self._apps[app_id].subscriptions[subscription_id]
