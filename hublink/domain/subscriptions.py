"""Webhook subscriptions: which HubSpot events the rules file needs, and the plan that brings an app there.

Pure: the rules give the *wanted* subscriptions (:func:`needed_subscriptions`), HubSpot's answers give the
*current* ones (:meth:`Subscription.parse`, :meth:`WebhookSettings.parse`), and :func:`plan` compares them.
Applying the plan is ``hublink.delivery.webhooks_api``'s work; printing it, the CLI's.

How a rule maps to subscriptions: a ``source: hubspot`` rule's ``when.subscriptionType`` values (one or a
list) are the event types it listens to. ``*.propertyChange`` types also need ``when.propertyName`` (HubSpot
subscribes to one property at a time) and ``object.*`` types ``when.objectTypeId`` (e.g. ``"0-3"``); each
combination of values is one subscription. A rule without ``when.subscriptionType`` (a JMESPath
``condition`` is not read), or with a type HubSpot does not offer, cannot be mapped: it is reported as
skipped, with the reason, and the others go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hublink.domain.rules import Rule

#: The path HubLink receives HubSpot's app webhooks on (web/webhooks/hubspot.py), appended to HUBLINK_PUBLIC_URL.
WEBHOOK_PATH = "/webhooks/hubspot"
#: HubSpot's floor for ``throttling.maxConcurrentRequests``: the v3 docs ask for more than 5 (hubspot-api.md §4.3).
MIN_CONCURRENT_REQUESTS = 6
#: The 2026-03 spec's ``SubscriptionCreateRequest.eventType`` enum (webhooks-2026-03.json).
EVENT_TYPES = frozenset(
    [f"{o}.associationChange" for o in ("company", "contact", "deal", "ticket", "line_item", "object")]
    + [
        f"{o}.{a}"
        for o in ("company", "contact", "deal", "ticket", "line_item", "product", "object")
        for a in ("creation", "deletion", "merge", "propertyChange", "restore")
    ]
    + ["contact.privacyDeletion", "event.completed"]
    + [f"conversation.{a}" for a in ("creation", "deletion", "newMessage", "privacyDeletion", "propertyChange")]
)

SettingsAction = Literal["create", "change", "keep"]
#: create: missing, POST it; activate: there but paused, PATCH it active; keep: there and active;
#: extra: there, and no rule needs it (left as it is: HubLink does not delete what it did not ask for).
SubscriptionAction = Literal["create", "activate", "keep", "extra"]


@dataclass(frozen=True, slots=True)
class SubscriptionKey:
    """What makes two subscriptions the same: the event type and, where it applies, property or object type."""

    event_type: str
    property_name: str | None = None
    object_type_id: str | None = None

    def __str__(self) -> str:
        details = [d for d in (self.property_name, self.object_type_id) if d]
        return self.event_type + (f" ({', '.join(details)})" if details else "")

    @property
    def sort_key(self) -> tuple[str, str, str]:
        """Event type, then property, then object type (unset ones first)."""
        return self.event_type, self.property_name or "", self.object_type_id or ""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription HubSpot holds for the app (the spec's ``SubscriptionResponse``)."""

    id: str
    key: SubscriptionKey
    active: bool

    @classmethod
    def parse(cls, raw: Any) -> Subscription:
        """Read a ``SubscriptionResponse``; raises ValueError naming the field that is missing or wrong."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"subscription: expected an object, got {type(raw).__name__}")
        sub_id, event_type, active = raw.get("id"), raw.get("eventType"), raw.get("active")
        if isinstance(sub_id, bool) or not isinstance(sub_id, str | int) or str(sub_id) == "":
            raise ValueError(f"subscription id: expected a string or integer, got {sub_id!r}")
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"subscription {sub_id} eventType: expected a string, got {event_type!r}")
        if not isinstance(active, bool):
            raise ValueError(f"subscription {sub_id} active: expected true or false, got {active!r}")

        def text(name: str) -> str | None:
            value = raw.get(name)
            return value if isinstance(value, str) and value else None

        return cls(str(sub_id), SubscriptionKey(event_type, text("propertyName"), text("objectTypeId")), active)

    def to_wire(self) -> dict[str, Any]:
        """The subscription as ``show --json`` prints it."""
        body: dict[str, Any] = {"id": self.id, "eventType": self.key.event_type, "active": self.active}
        if self.key.property_name:
            body["propertyName"] = self.key.property_name
        if self.key.object_type_id:
            body["objectTypeId"] = self.key.object_type_id
        return body


def create_request(key: SubscriptionKey) -> dict[str, Any]:
    """The spec's ``SubscriptionCreateRequest`` for ``key``, active (HubSpot would otherwise start it paused)."""
    body: dict[str, Any] = {"eventType": key.event_type, "active": True}
    if key.property_name:
        body["propertyName"] = key.property_name
    if key.object_type_id:
        body["objectTypeId"] = key.object_type_id
    return body


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The app's target URL and throttling (``SettingsChangeRequest``)."""

    target_url: str
    max_concurrent_requests: int

    @classmethod
    def for_public_url(cls, public_url: str, max_concurrent_requests: int) -> WebhookSettings:
        """The settings HubLink wants: HUBLINK_PUBLIC_URL + ``/webhooks/hubspot``.

        Raises ValueError for a URL that is not http(s) or a limit below HubSpot's floor.
        """
        if not public_url.startswith(("http://", "https://")):
            raise ValueError(f"HUBLINK_PUBLIC_URL: expected an http(s) URL, got {public_url!r}")
        if max_concurrent_requests < MIN_CONCURRENT_REQUESTS:
            raise ValueError(
                f"HUBLINK_WEBHOOK_MAX_CONCURRENCY: expected at least {MIN_CONCURRENT_REQUESTS}, "
                f"got {max_concurrent_requests}"
            )
        return cls(public_url.rstrip("/") + WEBHOOK_PATH, max_concurrent_requests)

    @classmethod
    def parse(cls, raw: Any) -> WebhookSettings:
        """Read a ``SettingsResponse`` as it is: HubSpot's values are shown, not judged.

        Raises ValueError naming the field that is missing or of the wrong type.
        """
        url = raw.get("targetUrl") if isinstance(raw, Mapping) else None
        throttling = raw.get("throttling") if isinstance(raw, Mapping) else None
        limit = throttling.get("maxConcurrentRequests") if isinstance(throttling, Mapping) else None
        if not isinstance(url, str):
            raise ValueError(f"settings targetUrl: expected a string, got {url!r}")
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise ValueError(f"settings throttling.maxConcurrentRequests: expected an integer, got {limit!r}")
        return cls(url, limit)

    def to_wire(self) -> dict[str, Any]:
        """The spec's ``SettingsChangeRequest``."""
        return {"targetUrl": self.target_url, "throttling": {"maxConcurrentRequests": self.max_concurrent_requests}}


@dataclass(frozen=True, slots=True)
class Skipped:
    """A rule (or one of its subscription types) that cannot become a subscription, and why."""

    rule: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class Needs:
    """The subscriptions the rules need, each with the rules that need it, and what could not be mapped."""

    wanted: Mapping[SubscriptionKey, tuple[str, ...]]
    skipped: tuple[Skipped, ...]


def needed_subscriptions(rules: Iterable[Rule]) -> Needs:
    """Map every ``source: hubspot`` rule to the subscriptions it needs (see the module docstring)."""
    wanted: dict[SubscriptionKey, list[str]] = {}
    skipped: list[Skipped] = []
    for rule in rules:
        if rule.source != "hubspot":
            continue
        conditions = dict(rule.equals)
        types = conditions.get("subscriptionType")
        if not types:
            skipped.append(Skipped(rule.name, rule.line, "no when.subscriptionType: cannot tell which events it needs"))
            continue
        for event_type in types:
            keys, reason = _keys_for(event_type, conditions)
            if reason:
                skipped.append(Skipped(rule.name, rule.line, reason))
            for key in keys:
                names = wanted.setdefault(key, [])
                if rule.name not in names:
                    names.append(rule.name)
    return Needs({k: tuple(wanted[k]) for k in sorted(wanted, key=lambda k: k.sort_key)}, tuple(skipped))


def _keys_for(
    event_type: object, conditions: Mapping[str, Sequence[object]]
) -> tuple[list[SubscriptionKey], str | None]:
    """The subscriptions one ``subscriptionType`` value needs, or why it has none."""
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        return [], f"subscriptionType {event_type!r} is not an event type HubSpot's 2026-03 API subscribes to"
    properties: Sequence[str | None] = [None]
    objects: Sequence[str | None] = [None]
    if event_type.endswith(".propertyChange"):
        properties = [v for v in conditions.get("propertyName", ()) if isinstance(v, str) and v]
        if not properties:
            return [], f"{event_type} needs when.propertyName: HubSpot subscribes to one property at a time"
    if event_type.startswith("object."):
        objects = [v for v in conditions.get("objectTypeId", ()) if isinstance(v, str) and v]
        if not objects:
            return [], f'{event_type} needs when.objectTypeId (e.g. "0-3"): HubSpot subscribes per object type'
    return [SubscriptionKey(event_type, p, o) for p in properties for o in objects], None


@dataclass(frozen=True, slots=True)
class SettingsStep:
    """What to do with the app's settings."""

    action: SettingsAction
    current: WebhookSettings | None
    wanted: WebhookSettings


@dataclass(frozen=True, slots=True)
class SubscriptionStep:
    """What to do with one subscription; ``id`` is HubSpot's when it exists, ``rules`` those that need it."""

    action: SubscriptionAction
    key: SubscriptionKey
    id: str | None = None
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything ``subscriptions apply`` would do, in the order it does it."""

    settings: SettingsStep
    subscriptions: tuple[SubscriptionStep, ...]
    skipped: tuple[Skipped, ...] = ()

    @property
    def changes(self) -> int:
        """How many calls applying it makes (0: nothing to do)."""
        return int(self.settings.action != "keep") + sum(
            1 for s in self.subscriptions if s.action in ("create", "activate")
        )


def plan(
    current_settings: WebhookSettings | None,
    current: Sequence[Subscription],
    wanted_settings: WebhookSettings,
    needs: Needs,
) -> Plan:
    """Compare what HubSpot holds with what the rules need.

    A wanted subscription HubSpot holds active is kept; held only paused, it is activated; not held, created.
    Subscriptions no rule needs are reported as extra and left alone. When HubSpot holds the same key twice,
    an active one is the match and the other is extra.
    """
    if current_settings is None:
        settings = SettingsStep("create", None, wanted_settings)
    elif current_settings == wanted_settings:
        settings = SettingsStep("keep", current_settings, wanted_settings)
    else:
        settings = SettingsStep("change", current_settings, wanted_settings)
    by_key: dict[SubscriptionKey, Subscription] = {}
    for sub in current:  # the first active one of a key wins; else the first
        held = by_key.get(sub.key)
        if held is None or (sub.active and not held.active):
            by_key[sub.key] = sub
    steps: list[SubscriptionStep] = []
    for key, rules in needs.wanted.items():
        found = by_key.get(key)
        if found is None:
            steps.append(SubscriptionStep("create", key, None, rules))
        else:
            steps.append(SubscriptionStep("keep" if found.active else "activate", key, found.id, rules))
    matched = {by_key[k].id for k in needs.wanted if k in by_key}
    steps += [SubscriptionStep("extra", s.key, s.id) for s in current if s.id not in matched]
    return Plan(settings, tuple(steps), needs.skipped)
