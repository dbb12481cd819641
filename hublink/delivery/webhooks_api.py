"""The app's webhook configuration at HubSpot: the 2026-03 settings and subscriptions endpoints, and applying a plan.

:class:`WebhooksClient` is :class:`~hublink.delivery.hubspot.HubSpotClient` with the calls of
``/webhooks/2026-03/{appId}/...`` added: the same session, timeouts, User-Agent and error mapping (each
call makes one attempt and returns or raises a DeliveryError). These calls are authorised by a developer
token (OAuth scopes ``developers-read`` / ``developers-write``, the spec's security for these paths), not
a portal's token, and only the ``hubspot subscriptions`` commands make them. :class:`WebhookApp` reads
what HubSpot holds and applies a :class:`~hublink.domain.subscriptions.Plan`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hublink.delivery.hubspot import API_VERSION, HubSpotClient, _seg
from hublink.domain.errors import HubSpotErrorDetail, NotFoundError, ServerError
from hublink.domain.subscriptions import (
    Needs,
    Plan,
    Subscription,
    SubscriptionKey,
    WebhookSettings,
    create_request,
    plan,
)


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


@dataclass(frozen=True, slots=True)
class Current:
    """What HubSpot holds for the app now."""

    settings: WebhookSettings | None
    subscriptions: tuple[Subscription, ...]


class WebhookApp:
    """One app's webhooks at HubSpot: read them, plan against the rules' needs, apply the plan."""

    def __init__(self, client: WebhooksClient, token: str, app_id: str) -> None:
        self._client = client
        self._token = token
        self._app_id = app_id

    def current(self) -> Current:
        """The app's settings (None when unset) and subscriptions. Raises DeliveryError."""
        settings = self._client.webhook_settings(self._token, self._app_id)
        return Current(settings, tuple(self._client.webhook_subscriptions(self._token, self._app_id)))

    def plan(self, wanted: WebhookSettings, needs: Needs) -> Plan:
        """What applying would do, from what HubSpot holds now. Raises DeliveryError; changes nothing."""
        now = self.current()
        return plan(now.settings, now.subscriptions, wanted, needs)

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
            if step.action == "create":
                created = self._client.create_webhook_subscription(self._token, self._app_id, step.key)
                made += 1
                on_step(f"created {step.key} (id {created.id})")
            elif step.action == "activate" and step.id is not None:  # plan() gives activate steps HubSpot's id
                self._client.set_webhook_subscription_active(self._token, self._app_id, step.id, active=True)
                made += 1
                on_step(f"activated {step.key} (id {step.id})")
        return made
