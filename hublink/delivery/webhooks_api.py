"""The app's webhook configuration at HubSpot: the 2026-03 settings and subscriptions endpoints, and applying a plan.

:class:`WebhooksClient` is :class:`~hublink.delivery.hubspot.HubSpotClient` with the calls of
``/webhooks/2026-03/{appId}/...`` added: the same session, timeouts, User-Agent and error mapping (each
call makes one attempt and returns or raises a DeliveryError). These calls are authorised by a developer
token (OAuth scopes ``developers-read`` / ``developers-write``, the spec's security for these paths), not
a portal's token, and only the ``hubspot subscriptions`` commands make them. :class:`WebhookApp` reads
what HubSpot holds and applies a :class:`~hublink.domain.subscriptions.Plan`.

Portals read by the Webhooks Journal (``journal: true``) get nothing from push subscriptions: the journal
holds only the events of *journal* subscriptions, made per portal through
``/webhooks-journal/subscriptions/2026-03`` with the app's own ``client_credentials`` token
(docs/reference/hubspot.md §9.1). With :class:`JournalAccess`, the plan adds them for every journal portal,
with the actions the rules' event types need, and applying it upserts them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hublink.config.portals import load_portals
from hublink.config.settings import Settings
from hublink.delivery.credentials import JOURNAL_SUBSCRIPTION_SCOPES
from hublink.delivery.hubspot import API_VERSION, HubSpotClient, _seg
from hublink.domain.errors import ConfigError, HubSpotErrorDetail, NotFoundError, ServerError, TokenRefreshError
from hublink.domain.subscriptions import (
    JournalKey,
    Needs,
    Plan,
    Subscription,
    SubscriptionKey,
    WebhookSettings,
    create_request,
    journal_keys,
    journal_plan,
    lifecycle_journal_keys,
    plan,
    with_journal,
)

#: The journal subscriptions API (webhooks-2026-03.json).
JOURNAL_SUBSCRIPTIONS_PATH = f"/webhooks-journal/subscriptions/{API_VERSION}"


def _parsed(parse: Callable[[Any], Any], body: Any, what: str) -> Any:
    """``parse(body)``, or a ServerError when HubSpot's answer is not the shape the spec promises."""
    try:
        return parse(body)
    except ValueError as exc:
        raise ServerError(HubSpotErrorDetail(message=f"{what}: unexpected answer: {exc}")) from None


class WebhooksClient(HubSpotClient):
    """HubSpot's client with the webhooks settings and subscriptions calls (one attempt each)."""

    @staticmethod
    def _path(app_id: str, *rest: str) -> str:
        return "/".join([f"/webhooks/{API_VERSION}/{_seg(app_id)}", *(_seg(r) for r in rest)])

    def webhook_settings(self, token: str, app_id: str) -> WebhookSettings | None:
        """``GET /webhooks/2026-03/{appId}/settings``: the app's settings, or None when none are set (404)."""
        try:
            body, _, _ = self._send("GET", self._path(app_id, "settings"), token, None)
        except NotFoundError:
            return None
        found: WebhookSettings = _parsed(WebhookSettings.parse, body, "GET settings")
        return found

    def put_webhook_settings(self, token: str, app_id: str, settings: WebhookSettings) -> WebhookSettings:
        """``PUT /webhooks/2026-03/{appId}/settings`` (``SettingsChangeRequest``): the settings HubSpot now holds."""
        body, _, _ = self._send("PUT", self._path(app_id, "settings"), token, settings.to_wire())
        found: WebhookSettings = _parsed(WebhookSettings.parse, body, "PUT settings")
        return found

    def webhook_subscriptions(self, token: str, app_id: str) -> list[Subscription]:
        """``GET /webhooks/2026-03/{appId}/subscriptions``: every subscription of the app."""
        body, _, _ = self._send("GET", self._path(app_id, "subscriptions"), token, None)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise ServerError(HubSpotErrorDetail(message="GET subscriptions: unexpected answer: no results list"))
        return [_parsed(Subscription.parse, r, "GET subscriptions") for r in results]

    def create_webhook_subscription(self, token: str, app_id: str, key: SubscriptionKey) -> Subscription:
        """``POST /webhooks/2026-03/{appId}/subscriptions``, active: the subscription HubSpot created (201)."""
        body, _, _ = self._send("POST", self._path(app_id, "subscriptions"), token, create_request(key))
        found: Subscription = _parsed(Subscription.parse, body, "POST subscriptions")
        return found

    def set_webhook_subscription_active(
        self, token: str, app_id: str, subscription_id: str, *, active: bool
    ) -> Subscription:
        """``PATCH /webhooks/2026-03/{appId}/subscriptions/{id}`` with ``{"active": ...}``: the subscription now."""
        path = self._path(app_id, "subscriptions", subscription_id)
        body, _, _ = self._send("PATCH", path, token, {"active": active})
        found: Subscription = _parsed(Subscription.parse, body, "PATCH subscription")
        return found

    def journal_subscriptions(self, app_token: str) -> list[tuple[str, JournalKey]]:
        """``GET /webhooks-journal/subscriptions/2026-03``: the app's journal subscriptions (id, key).

        Kinds HubLink does not ask for (app lifecycle, list membership) are left out.
        """
        body, _, _ = self._send("GET", JOURNAL_SUBSCRIPTIONS_PATH, app_token, None)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise ServerError(HubSpotErrorDetail(message="GET journal subscriptions: unexpected answer: no results"))
        found: list[tuple[str, JournalKey]] = []
        for raw in results:
            key = _parsed(JournalKey.parse, raw, "GET journal subscriptions")
            if key is not None:
                found.append((str(raw.get("id")), key))
        return found

    def upsert_journal_subscription(self, app_token: str, key: JournalKey) -> str:
        """``POST /webhooks-journal/subscriptions/2026-03`` (an upsert by portal, kind and type): its id."""
        body, _, _ = self._send("POST", JOURNAL_SUBSCRIPTIONS_PATH, app_token, key.upsert_request())
        sub_id = body.get("id") if isinstance(body, dict) else None
        if isinstance(sub_id, bool) or not isinstance(sub_id, int | str):
            raise ServerError(HubSpotErrorDetail(message="POST journal subscription: unexpected answer: no id"))
        return str(sub_id)

    def app_token_for(self, client_id: str, client_secret: str) -> str:
        """A fresh ``client_credentials`` token with the journal subscriptions' scopes; raises DeliveryError."""
        answer = self.app_token(client_id, client_secret, JOURNAL_SUBSCRIPTION_SCOPES)
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise TokenRefreshError(HubSpotErrorDetail(message="app token: no access_token in answer"))
        return token


@dataclass(frozen=True, slots=True)
class JournalAccess:
    """The portals read by the journal and how to get the app token their journal subscriptions take."""

    portal_ids: tuple[str, ...]
    #: Returns the app's token (called once, when the plan is made); raises DeliveryError.
    token: Callable[[], str]


def journal_access(settings: Settings, environ: Mapping[str, str], client: WebhooksClient) -> JournalAccess | None:
    """The portals file's journal portals and the app's credentials, or None when no portal has ``journal: true``.

    Raises ConfigError when the portals file cannot be read, or when HUBSPOT_CLIENT_ID or HUBSPOT_CLIENT_SECRET
    is missing while a portal needs them.
    """
    if not settings.portals_file:
        return None
    try:
        with open(settings.portals_file, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"HUBLINK_PORTALS_FILE: cannot read {settings.portals_file}: {exc.strerror}") from None
    portals = tuple(p for p, entry in load_portals(text, environ, settings.portals_file).items() if entry.journal)
    if not portals:
        return None
    client_id, secret = settings.hubspot_client_id, settings.hubspot_client_secret
    for name, value in (("HUBSPOT_CLIENT_ID", client_id), ("HUBSPOT_CLIENT_SECRET", secret)):
        if not value:
            raise ConfigError(f"{name} is required: journal portals' subscriptions are made with the app's token")
    return JournalAccess(portals, lambda: client.app_token_for(client_id or "", secret or ""))


@dataclass(frozen=True, slots=True)
class Current:
    """What HubSpot holds for the app now."""

    settings: WebhookSettings | None
    subscriptions: tuple[Subscription, ...]


class WebhookApp:
    """One app's webhooks at HubSpot: read them, plan against the rules' needs, apply the plan."""

    def __init__(self, client: WebhooksClient, token: str, app_id: str, journal: JournalAccess | None = None) -> None:
        self._client = client
        self._token = token
        self._app_id = app_id
        self._journal = journal
        self._app_token: str | None = None

    def current(self) -> Current:
        """The app's settings (None when unset) and subscriptions. Raises DeliveryError."""
        settings = self._client.webhook_settings(self._token, self._app_id)
        return Current(settings, tuple(self._client.webhook_subscriptions(self._token, self._app_id)))

    def plan(self, wanted: WebhookSettings, needs: Needs) -> Plan:
        """What applying would do, from what HubSpot holds now. Raises DeliveryError; changes nothing.

        With journal portals, their journal subscriptions follow the push subscriptions' steps, the app-wide
        app-lifecycle ones (install, uninstall) first.
        """
        now = self.current()
        todo = plan(now.settings, now.subscriptions, wanted, needs)
        if self._journal is None:
            return todo
        held = self._client.journal_subscriptions(self._journal_token())
        portals = self._journal.portal_ids
        wanted_journal = lifecycle_journal_keys(portals) | journal_keys(needs.wanted, portals)
        return with_journal(todo, journal_plan(held, wanted_journal))

    def _journal_token(self) -> str:
        """The app token, fetched once per command."""
        if self._app_token is None:
            assert self._journal is not None
            self._app_token = self._journal.token()
        return self._app_token

    def apply(self, todo: Plan, on_step: Callable[[str], None] = lambda _: None) -> int:
        """Make the calls ``todo`` lists (settings first), telling ``on_step`` of each; returns how many were made.

        Stops at the first DeliveryError (raised): what was done is done, and running again finishes the rest,
        since a new plan is made from what HubSpot holds then.
        """
        made = 0
        if todo.settings.action != "keep":
            self._client.put_webhook_settings(self._token, self._app_id, todo.settings.wanted)
            made += 1
            on_step(f"settings {'created' if todo.settings.action == 'create' else 'changed'}")
        for step in todo.subscriptions:
            if isinstance(step.key, JournalKey):
                if step.action in ("create", "change"):
                    sub_id = self._client.upsert_journal_subscription(self._journal_token(), step.key)
                    made += 1
                    on_step(f"{'created' if step.action == 'create' else 'changed'} {step.key} (id {sub_id})")
                continue
            if step.action == "create":
                created = self._client.create_webhook_subscription(self._token, self._app_id, step.key)
                made += 1
                on_step(f"created {step.key} (id {created.id})")
            elif step.action == "activate" and step.id is not None:  # plan() gives activate steps HubSpot's id
                self._client.set_webhook_subscription_active(self._token, self._app_id, step.id, active=True)
                made += 1
                on_step(f"activated {step.key} (id {step.id})")
        return made
