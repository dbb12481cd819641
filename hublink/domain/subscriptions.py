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

HubLink itself needs more than the rules name: the deletions and merges of every object type a rule's
associations name (``deal.deletion``, ``deal.merge``, ``object.deletion`` per custom type;
``contact.privacyDeletion`` when contacts are named), so that work naming a deleted or merged record ends
or moves (``hublink.intake.record_fates``). :func:`needed_subscriptions` adds them, needed by those rules.
For journal portals the journal also needs the app-lifecycle events (install, uninstall; app-wide, not per
portal): an uninstall marks the portal ``uninstalled`` (``hublink.delivery.installs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hublink.domain.rules import Rule

#: The path HubLink receives HubSpot's app webhooks on (web/webhooks/hubspot.py), appended to HUBLINK_PUBLIC_URL.
WEBHOOK_PATH = "/webhooks/hubspot"
#: HubSpot's floor for ``throttling.maxConcurrentRequests``: its v3 docs ask for more than 5
#: (docs/reference/hubspot.md §4.3).
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
#: extra: there, and no rule needs it (left as it is: HubLink does not delete what it did not ask for);
#: change: a journal subscription that lacks actions the rules need (upserted with them added).
SubscriptionAction = Literal["create", "activate", "change", "keep", "extra"]


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


#: HubSpot's event-type prefix of each standard object type HubSpot sends lifecycle events for (the others,
#: custom types included, are ``object.*`` with their type id).
EVENT_PREFIXES: Mapping[str, str] = {
    "contacts": "contact",
    "companies": "company",
    "deals": "deal",
    "tickets": "ticket",
    "line_items": "line_item",
    "products": "product",
}
#: The record lifecycle events HubLink acts on for every object type its rules' associations name.
LIFECYCLE_EVENTS = ("deletion", "merge")


def lifecycle_keys(object_type: str) -> list[SubscriptionKey]:
    """The deletion and merge subscriptions (and contacts' privacy deletion) for records of ``object_type``."""
    prefix = EVENT_PREFIXES.get(object_type)
    if prefix is None:
        if not object_type.startswith("2-"):
            return []  # engagements and the like: HubSpot's webhooks send no lifecycle events for them
        return [SubscriptionKey(f"object.{event}", None, object_type) for event in LIFECYCLE_EVENTS]
    keys = [SubscriptionKey(f"{prefix}.{event}") for event in LIFECYCLE_EVENTS]
    return keys + ([SubscriptionKey("contact.privacyDeletion")] if prefix == "contact" else [])


def with_lifecycle(needs: Needs, rules: Iterable[Rule]) -> Needs:
    """``needs`` and the deletions and merges of every object type the rules' associations name, each needed by
    the rules naming it (see the module docstring)."""
    wanted = {key: list(names) for key, names in needs.wanted.items()}
    for rule in rules:
        for pair in rule.associations:
            for side in pair:
                for key in lifecycle_keys(side.object_type):
                    names = wanted.setdefault(key, [])
                    if rule.name not in names:
                        names.append(rule.name)
    return Needs({k: tuple(wanted[k]) for k in sorted(wanted, key=lambda k: k.sort_key)}, needs.skipped)


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
class JournalKey:
    """One journal subscription (docs/reference/hubspot.md §9.1): a portal's kind of events of one object type.

    HubSpot upserts journal subscriptions by app, portal, kind and object type, so this is what makes two the
    same; ``actions`` are what it holds (CREATE, DELETE, ASSOCIATION_ADDED...).
    """

    portal_id: str
    kind: JournalKind
    object_type_id: str
    actions: frozenset[str] = frozenset()

    def __str__(self) -> str:
        held = "app-wide" if self.portal_id == APP_WIDE else f"portal {self.portal_id}"
        return f"journal {self.kind} {self.object_type_id} {'+'.join(sorted(self.actions))} ({held})"

    @property
    def same(self) -> tuple[str, str, str]:
        """What HubSpot upserts by (besides the app)."""
        return self.portal_id, self.kind, self.object_type_id

    def upsert_request(self) -> dict[str, Any]:
        """The spec's ``SubscriptionUpsertRequest`` for this key: every object, every property."""
        if self.kind == "APP_LIFECYCLE_EVENT":
            return {"subscriptionType": self.kind, "eventTypeId": self.object_type_id}
        body: dict[str, Any] = {
            "subscriptionType": self.kind,
            "portalId": int(self.portal_id),
            "objectTypeId": self.object_type_id,
            "actions": sorted(self.actions),
        }
        if self.kind == "OBJECT":
            body |= {"objectIds": [], "properties": []}
        elif self.kind == "ASSOCIATION":
            body |= {"objectIds": [], "associatedObjectTypeIds": []}
        return body

    @classmethod
    def parse(cls, raw: Any) -> JournalKey | None:
        """Read a ``SubscriptionResponse_1``; None for kinds HubLink does not ask for (app lifecycle, lists).

        Raises ValueError naming the field that is missing or wrong.
        """
        if not isinstance(raw, Mapping):
            raise ValueError(f"journal subscription: expected an object, got {type(raw).__name__}")
        kind = raw.get("subscriptionType")
        if kind not in JOURNAL_KINDS:
            return None
        portal, type_id, actions = raw.get("portalId"), raw.get("objectTypeId"), raw.get("actions")
        if kind == "APP_LIFECYCLE_EVENT":
            type_id = raw.get("eventTypeId") or type_id
            if type_id not in APP_LIFECYCLE_EVENTS:
                return None  # an app-lifecycle event HubLink does not ask for
            return cls(APP_WIDE, kind, str(type_id), frozenset([APP_LIFECYCLE_EVENTS[str(type_id)]]))
        if isinstance(portal, bool) or not isinstance(portal, int | str) or not str(portal).isdigit():
            raise ValueError(f"journal subscription portalId: expected an integer, got {portal!r}")
        if not isinstance(type_id, str) or not type_id:
            raise ValueError(f"journal subscription objectTypeId: expected a string, got {type_id!r}")
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise ValueError(f"journal subscription actions: expected a list of strings, got {actions!r}")
        return cls(str(portal), kind, type_id, frozenset(actions))


JournalKind = Literal["OBJECT", "ASSOCIATION", "GDPR_PRIVACY_DELETION", "APP_LIFECYCLE_EVENT"]
JOURNAL_KINDS: tuple[JournalKind, ...] = ("OBJECT", "ASSOCIATION", "GDPR_PRIVACY_DELETION", "APP_LIFECYCLE_EVENT")
#: App-lifecycle journal subscriptions are the app's, not a portal's: their key's portal is this.
APP_WIDE = ""
#: The app-lifecycle event types (install, uninstall) and their action (webhooks-2026-03.json).
APP_LIFECYCLE_EVENTS: Mapping[str, str] = {"4-1909196": "APP_INSTALL", "4-1916193": "APP_UNINSTALL"}
#: What the lifecycle journal subscriptions are needed by (no rule: HubLink's uninstall detection).
LIFECYCLE_NEEDED_BY = "HubLink (app installs and uninstalls)"
#: The journal's kind and action for each push event kind (webhooks-2026-03.json; docs/reference/hubspot.md §9.1).
JOURNAL_ACTIONS: Mapping[str, tuple[JournalKind, tuple[str, ...]]] = {
    "creation": ("OBJECT", ("CREATE",)),
    "deletion": ("OBJECT", ("DELETE",)),
    "merge": ("OBJECT", ("MERGE",)),
    "restore": ("OBJECT", ("RESTORE",)),
    "propertyChange": ("OBJECT", ("UPDATE",)),
    "associationChange": ("ASSOCIATION", ("ASSOCIATION_ADDED", "ASSOCIATION_REMOVED")),
    "privacyDeletion": ("GDPR_PRIVACY_DELETION", ("GDPR_DELETE",)),
}
#: Object type ids of the legacy event prefixes (``deal.creation``: ``0-3``).
PREFIX_TYPE_IDS: Mapping[str, str] = {
    "contact": "0-1",
    "company": "0-2",
    "deal": "0-3",
    "ticket": "0-5",
    "product": "0-7",
    "line_item": "0-8",
}


def journal_keys(
    wanted: Mapping[SubscriptionKey, tuple[str, ...]], portal_ids: Sequence[str]
) -> dict[JournalKey, tuple[str, ...]]:
    """The journal subscriptions the push subscriptions ``wanted`` stand for, in each journal portal.

    One per portal, kind and object type, with every action the rules need; each with the rules needing it.
    Event types the journal does not carry (``conversation.*``, ``event.completed``) have none.
    """
    merged: dict[tuple[str, JournalKind, str], tuple[set[str], list[str]]] = {}
    for key, rules in wanted.items():
        prefix, _, kind = key.event_type.partition(".")
        found = JOURNAL_ACTIONS.get(kind)
        type_id = key.object_type_id if prefix == "object" else PREFIX_TYPE_IDS.get(prefix)
        if found is None or type_id is None:
            continue
        journal_kind, actions = found
        for portal in portal_ids:
            held_actions, names = merged.setdefault((portal, journal_kind, type_id), (set(), []))
            held_actions.update(actions)
            names.extend(r for r in rules if r not in names)
    return {
        JournalKey(portal, kind, type_id, frozenset(actions)): tuple(names)
        for (portal, kind, type_id), (actions, names) in sorted(merged.items())
    }


def lifecycle_journal_keys(portal_ids: Sequence[str]) -> dict[JournalKey, tuple[str, ...]]:
    """The app-wide app-lifecycle journal subscriptions (install, uninstall) when any portal is read by the journal:
    HubLink marks a portal uninstalled, and resumes it, from them (``hublink.delivery.installs``)."""
    if not portal_ids:
        return {}
    return {
        JournalKey(APP_WIDE, "APP_LIFECYCLE_EVENT", type_id, frozenset([action])): (LIFECYCLE_NEEDED_BY,)
        for type_id, action in sorted(APP_LIFECYCLE_EVENTS.items())
    }


def journal_plan(
    current: Sequence[tuple[str, JournalKey]], wanted: Mapping[JournalKey, tuple[str, ...]]
) -> list[SubscriptionStep]:
    """Compare the app's journal subscriptions (HubSpot's id, key) with those the rules need.

    A wanted one HubSpot holds with every action is kept; held without some, changed (upserted with the held
    actions and the missing ones: never fewer); not held, created. Those no rule needs are not listed: the
    push subscriptions' extras already say what HubLink leaves alone.
    """
    held = {key.same: (sub_id, key) for sub_id, key in current}
    steps: list[SubscriptionStep] = []
    for key, rules in wanted.items():
        found = held.get(key.same)
        if found is None:
            steps.append(SubscriptionStep("create", key, None, rules))
        elif key.actions <= found[1].actions:
            steps.append(SubscriptionStep("keep", found[1], found[0], rules))
        else:
            widened = JournalKey(key.portal_id, key.kind, key.object_type_id, key.actions | found[1].actions)
            steps.append(SubscriptionStep("change", widened, found[0], rules))
    return steps


@dataclass(frozen=True, slots=True)
class SubscriptionStep:
    """What to do with one subscription; ``id`` is HubSpot's when it exists, ``rules`` those that need it.

    ``key`` is a push subscription's, or a journal subscription's for portals read by the journal.
    """

    action: SubscriptionAction
    key: SubscriptionKey | JournalKey
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
            1 for s in self.subscriptions if s.action in ("create", "activate", "change")
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


def with_journal(todo: Plan, steps: Sequence[SubscriptionStep]) -> Plan:
    """``todo`` with the journal subscriptions' steps after the push subscriptions'."""
    return Plan(todo.settings, (*todo.subscriptions, *steps), todo.skipped)
