"""The webhooks-2026-03 endpoints: the Webhooks Journal and an app's webhook settings and subscriptions.

Journal (``/webhooks-journal/journal/2026-03/...``, and the same under ``journal-local``), optionally
filtered by ``?installPortalId=``:
- ``earliest``, ``latest``, ``offset/{offset}/next``: one ``JournalFetchResponse``, or 204 without a body
  when there is no such entry yet (the spec declares no success answer for these; the shape is the batch
  variants' entry);
- ``batch/earliest/{count}``, ``batch/latest/{count}``, ``batch/{offset}/next/{count}``: a
  ``BatchResponseJournalFetchResponse``; ``batch/read`` (``{"inputs": [offset, ...]}``): the same, or 207
  with an ``errors[]`` entry per unknown offset. An unknown (or expired) offset to read on from is a 404.
The journal endpoints carry ``x-hubspot-rate-limit-exemptions: ["daily", "ten-secondly"]`` in the spec, so
``HubSpotApi`` counts them against no limit.

Journal subscriptions (``/webhooks-journal/subscriptions/2026-03``: list, upsert, read, delete, delete a
portal's): see ``journal_subscriptions.py``; they act for the app of the calling app token.

Settings and subscriptions (``/webhooks/2026-03/{appId}/...``): see ``webhook_settings.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from hubspot_sim import errors
from hubspot_sim.journal import URL_LIFETIME_S, JournalEntry
from hubspot_sim.messages import Answer, Request, iso_utc
from hubspot_sim.state import SimState

Endpoint = Callable[[Request, tuple[str, ...]], tuple[Answer, int]]
MAX_JOURNAL_BATCH = 1000  # [I]: the spec states only a minimum of 1
#: The journal-subscription endpoints: called with an app token, exempt from the limits as the journal is.
APP_ENDPOINTS = (
    "list_journal_subscriptions",
    "upsert_journal_subscription",
    "read_journal_subscription",
    "delete_journal_subscription",
    "delete_portal_journal_subscriptions",
)
JOURNAL_ENDPOINTS = (
    "journal_earliest",
    "journal_latest",
    "journal_next",
    "journal_batch_earliest",
    "journal_batch_latest",
    "journal_batch_next",
    "journal_batch_read",
)


class WebhookEndpoints:
    """The journal, settings and subscription endpoints over a ``SimState``."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def endpoints(self) -> dict[str, Endpoint]:
        """The endpoints by name, for ``HubSpotApi``'s routes."""
        return {
            "journal_earliest": self._earliest,
            "journal_latest": self._latest,
            "journal_next": self._next,
            "journal_batch_earliest": self._batch_earliest,
            "journal_batch_latest": self._batch_latest,
            "journal_batch_next": self._batch_next,
            "journal_batch_read": self._batch_read,
            "read_webhook_settings": _found(lambda r, g: Answer(200, self.state.apps.settings(_app(g)))),
            "put_webhook_settings": lambda r, g: (Answer(200, self.state.apps.put_settings(_app(g), r.json())), 0),
            "delete_webhook_settings": self._delete_settings,
            "list_subscriptions": lambda r, g: (Answer(200, self.state.apps.subscriptions(_app(g))), 0),
            "create_subscription": lambda r, g: (Answer(201, self.state.apps.create(_app(g), r.json())), 0),
            "read_subscription": _found(lambda r, g: Answer(200, self.state.apps.subscription(_app(g), g[1]))),
            "patch_subscription": _found(lambda r, g: Answer(200, self.state.apps.patch(_app(g), g[1], r.json()))),
            "delete_subscription": _found(self._delete_subscription),
            "list_journal_subscriptions": lambda r, g: (
                Answer(200, self.state.journal_subscriptions.listing(_app_of(r))),
                0,
            ),
            "upsert_journal_subscription": lambda r, g: (
                Answer(200, self.state.journal_subscriptions.upsert(_app_of(r), r.json())),
                0,
            ),
            "read_journal_subscription": _found(
                lambda r, g: Answer(
                    200, self.state.journal_subscriptions.one(_app_of(r), _number(g[0], "subscriptionId"))
                )
            ),
            "delete_journal_subscription": _found(self._delete_journal_subscription),
            "delete_portal_journal_subscriptions": self._delete_portal_subscriptions,
        }

    # --- journal ---

    def _fetched(self, request: Request, entry: JournalEntry) -> dict[str, Any]:
        """A ``JournalFetchResponse``: the entry's offset and a loopback URL serving its events."""
        host = request.host or "127.0.0.1"
        return {
            "currentOffset": entry.offset,
            "expiresAt": iso_utc(self.state.now() + URL_LIFETIME_S),
            "url": f"http://{host}/_sim/journal/files/{entry.offset}",
        }

    def _one(self, request: Request, found: list[JournalEntry] | None) -> tuple[Answer, int]:
        if found is None:
            return Answer(404, errors.error_body(404, message="Unknown or expired journal offset")), 0
        if not found:
            return Answer(204, raw=b""), 0
        return Answer(200, self._fetched(request, found[0])), 0

    def _batch(self, request: Request, found: list[JournalEntry] | None) -> tuple[Answer, int]:
        if found is None:
            return Answer(404, errors.error_body(404, message="Unknown or expired journal offset")), 0
        now = iso_utc(self.state.now())
        results = [self._fetched(request, entry) for entry in found]
        return Answer(200, {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}), 0

    def _earliest(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        return self._one(request, self.state.journal.earliest(1, _portal(request)))

    def _latest(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        return self._one(request, self.state.journal.latest(1, _portal(request)))

    def _next(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        return self._one(request, self.state.journal.after(unquote(groups[0]), 1, _portal(request)))

    def _batch_earliest(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        return self._batch(request, self.state.journal.earliest(_count(groups[0]), _portal(request)))

    def _batch_latest(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        return self._batch(request, self.state.journal.latest(_count(groups[0]), _portal(request)))

    def _batch_next(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        offset, count = unquote(groups[0]), _count(groups[1])
        return self._batch(request, self.state.journal.after(offset, count, _portal(request)))

    def _batch_read(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        body = request.json()
        offsets = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(offsets, list) or not offsets or not all(isinstance(o, str) for o in offsets):
            raise ValueError('inputs: expected {"inputs": ["<offset>", ...]}')
        if len(offsets) > MAX_JOURNAL_BATCH:
            raise ValueError(f"inputs: expected at most {MAX_JOURNAL_BATCH} offsets, got {len(offsets)}")
        now = iso_utc(self.state.now())
        results, problems = [], []
        for offset in offsets:
            entry = self.state.journal.find(offset)
            if entry is None:
                missing = errors.error_body(404, message=f"Unknown or expired journal offset {offset}")
                problems.append(errors.batch_error(404, {**missing, "context": {"offset": [offset]}}))
            else:
                results.append(self._fetched(request, entry))
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if problems:
            return Answer(207, {**answer, "errors": problems, "numErrors": len(problems)}), 0
        return Answer(200, answer), 0

    # --- settings and subscriptions ---

    def _delete_settings(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        self.state.apps.delete_settings(_app(groups))
        return Answer(204, raw=b""), 0

    def _delete_journal_subscription(self, request: Request, groups: tuple[str, ...]) -> Answer:
        self.state.journal_subscriptions.delete(_app_of(request), _number(groups[0], "subscriptionId"))
        return Answer(204, raw=b"")

    def _delete_portal_subscriptions(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        self.state.journal_subscriptions.delete_portal(_number(groups[0], "portalId"), _app_of(request))
        return Answer(204, raw=b""), 0

    def _delete_subscription(self, request: Request, groups: tuple[str, ...]) -> Answer:
        self.state.apps.delete(_app(groups), groups[1])
        return Answer(204, raw=b"")


def _app_of(request: Request) -> int:
    """The app a journal-subscription call acts for: its app token's app (0 for an app not registered)."""
    app_id = getattr(request.caller, "app_id", None)
    return int(app_id) if isinstance(app_id, str) and app_id.isdigit() else 0


def _number(text: str, name: str) -> int:
    value = unquote(text)
    if not value.isdigit():
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    return int(value)


def _found(handler: Callable[[Request, tuple[str, ...]], Answer]) -> Endpoint:
    """An endpoint answering 404 where ``handler`` raises KeyError."""

    def endpoint(request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        try:
            return handler(request, groups), 0
        except KeyError as exc:
            return Answer(404, errors.error_body(404, message=str(exc.args[0]))), 0

    return endpoint


def _app(groups: tuple[str, ...]) -> str:
    app_id = unquote(groups[0])
    if not app_id.isdigit():
        raise ValueError(f"appId: expected a HubSpot app id (digits), got {app_id!r}")
    return app_id


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_JOURNAL_BATCH:
        raise ValueError(f"count: expected an integer from 1 to {MAX_JOURNAL_BATCH}, got {text!r}")
    return int(text)


def _portal(request: Request) -> int | None:
    values = request.query_values("installPortalId")
    if not values:
        return None
    if not values[0].isdigit():
        raise ValueError(f"installPortalId: expected a HubSpot account id, got {values[0]!r}")
    return int(values[0])
