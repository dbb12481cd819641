"""The control API under ``/_sim/``: what tests and benchmarks use to inspect and steer the simulator.

No authentication (the simulator binds to loopback by default) and no rate limit; control requests are
not counted in ``/_sim/requests``. Bad input answers 400 with a HubSpot-style body naming the bad field,
and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hubspot_sim import errors
from hubspot_sim.association_types import is_custom
from hubspot_sim.messages import Answer, Request
from hubspot_sim.oauth import App
from hubspot_sim.object_types import canonical_type, is_object_id
from hubspot_sim.records import parse_seed
from hubspot_sim.state import SimState
from hubspot_sim.webhook_sender import DeliveryRequest

Handler = Callable[[Request], Any]
JOURNAL_FILES = "/_sim/journal/files/"  # + offset: a journal entry's events, where its fetch URL points
OK = {"ok": True}


class ControlApi:
    """Routes ``/_sim/*`` requests to ``SimState``."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._routes: dict[str, dict[str, Handler]] = {
            "/_sim/health": {"GET": lambda _: OK},
            "/_sim/associations": {"GET": self._associations},
            "/_sim/requests": {"GET": lambda _: state.requests_json()},
            "/_sim/reset": {"POST": self._reset},
            "/_sim/faults": {
                "GET": lambda _: state.faults_json(),
                "POST": lambda r: state.set_faults(r.json() or {}),
                "DELETE": self._clear_faults,
            },
            "/_sim/config": {
                "GET": lambda _: state.config_json(),
                "PUT": lambda r: state.configure(r.json() or {}),
            },
            "/_sim/records": {"GET": lambda _: state.records_json(), "POST": self._seed},
            "/_sim/records/delete": {"POST": self._delete_records},
            "/_sim/merge": {"POST": self._merge},
            "/_sim/lifecycle": {"GET": lambda _: state.lifecycle_json()},
            "/_sim/apps": {"GET": lambda _: state.apps_json(), "POST": self._register_app},
            "/_sim/uninstall": {"POST": lambda r: state.uninstall(_portal_of(r.json(), required=True) or 0)},
            "/_sim/install": {"POST": lambda r: state.install(_portal_of(r.json(), required=True) or 0)},
            "/_sim/invalid-ids": {
                "GET": lambda _: state.invalid_json(),
                "POST": self._mark_invalid,
                "DELETE": self._clear_invalid,
            },
            "/_sim/oauth-apps": {"POST": self._register_oauth_app},
            "/_sim/object-types": {"GET": lambda _: state.object_types_json(), "POST": self._declare_types},
            "/_sim/labels": {"POST": self._create_label},
            "/_sim/webhooks/deliver": {"POST": self._deliver},
            "/_sim/webhooks/deliveries": {"GET": lambda _: state.webhooks.deliveries_json()},
            "/_sim/journal": {"GET": lambda _: state.journal.entries_json()},
            "/_sim/journal/events": {"POST": self._journal_events},
        }

    def handle(self, request: Request) -> Answer:
        """The answer to one control request: 200 with JSON, 400 naming bad input, 404, or 405."""
        methods = self._routes.get(request.path.rstrip("/"))
        if request.path.startswith(JOURNAL_FILES) and request.method == "GET":
            return self._journal_file(request.path.removeprefix(JOURNAL_FILES))
        if methods is None:
            message = f"No control route {request.path}; see hubspot_sim/README.md"
            return Answer(404, errors.error_body(404, message=message))
        handler = methods.get(request.method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            return Answer(405, errors.error_body(405, message=f"Use {allowed}"), {"Allow": allowed})
        try:
            result = handler(request)
        except ValueError as exc:
            return Answer(400, errors.error_body(400, message=str(exc)))
        return result if isinstance(result, Answer) else Answer(200, result)

    def _associations(self, request: Request) -> Any:
        since = request.query_values("since") or ["0"]
        if not since[0].isdigit():
            raise ValueError(f"since: expected a count of associations to skip, got {since[0]!r}")
        return self.state.associations_json(int(since[0]))

    def _reset(self, request: Request) -> Any:
        self.state.reset()
        return OK

    def _clear_faults(self, request: Request) -> Any:
        self.state.clear_faults()
        return OK

    def _seed(self, request: Request) -> Any:
        body = request.json()
        records = parse_seed(body, canonical_type, is_object_id)
        return {"seeded": self.state.seed_records(records, _portal_of(body))}

    def _merge(self, request: Request) -> Any:
        body = request.json()
        if not isinstance(body, dict):
            raise ValueError('expected {"objectType", "primaryObjectId", "mergedObjectIds": [...]}')
        object_type = _object_type(body)
        primary = body.get("primaryObjectId")
        if not _is_id(primary):
            raise ValueError(f"primaryObjectId: expected a record id, got {primary!r}")
        merged = body.get("mergedObjectIds")
        if not isinstance(merged, list) or not merged or not all(_is_id(i) for i in merged):
            raise ValueError(f"mergedObjectIds: expected a non-empty list of record ids, got {merged!r}")
        new_id = self.state.merge(object_type, str(primary), [str(i) for i in merged], _portal_of(body))
        return {"newObjectId": new_id}

    def _delete_records(self, request: Request) -> Any:
        body = request.json()
        if not isinstance(body, dict):
            raise ValueError('expected {"objectType", "ids": [...], "privacy": false}')
        object_type = _object_type(body)
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids or not all(_is_id(i) for i in ids):
            raise ValueError(f"ids: expected a non-empty list of record ids, got {ids!r}")
        privacy = body.get("privacy", False)
        if not isinstance(privacy, bool):
            raise ValueError(f"privacy: expected true or false, got {privacy!r}")
        deleted = self.state.delete(object_type, [str(i) for i in ids], privacy=privacy, portal_id=_portal_of(body))
        return {"deleted": deleted}

    def _register_app(self, request: Request) -> Any:
        body = request.json()
        if not isinstance(body, dict):
            raise ValueError('expected {"appId", "clientId", "clientSecret"}')
        if not _is_id(body.get("appId")):
            raise ValueError(f"appId: expected a HubSpot app id (digits), got {body.get('appId')!r}")
        for key in ("clientId", "clientSecret"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise ValueError(f"{key}: expected a non-empty string")
        self.state.register_app(App(str(body["appId"]), body["clientId"], body["clientSecret"]))
        return OK

    def _mark_invalid(self, request: Request) -> Any:
        body = request.json()
        if not isinstance(body, dict):
            raise ValueError('expected {"ids": ["123"], "status": 400, "ttl_requests": N, "until": epoch}')
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids or not all(_is_id(i) for i in ids):
            raise ValueError(f"ids: expected a non-empty list of record ids, got {ids!r}")
        status = body.get("status", 400)
        if status not in (400, 404):
            raise ValueError(f"status: expected 400 (invalid) or 404 (not found), got {status!r}")
        ttl = body.get("ttl_requests")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1):
            raise ValueError(f"ttl_requests: expected null or an integer of at least 1, got {ttl!r}")
        until = body.get("until")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int | float)):
            raise ValueError(f"until: expected null or epoch seconds, got {until!r}")
        until_s = None if until is None else float(until)
        self.state.mark_invalid([str(i) for i in ids], status, ttl_requests=ttl, until=until_s)
        return OK

    def _clear_invalid(self, request: Request) -> Any:
        self.state.clear_invalid()
        return OK

    def _register_oauth_app(self, request: Request) -> Any:
        body = request.json()
        if not isinstance(body, dict):
            raise ValueError('expected {"client_id", "client_secret", "refresh_token", "portal_id"}')
        for key in ("client_id", "client_secret", "refresh_token"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise ValueError(f"{key}: expected a non-empty string, got {body.get(key)!r}")
        portal = body.get("portal_id")
        if not _is_id(portal):
            raise ValueError(f"portal_id: expected a HubSpot account id (digits), got {portal!r}")
        credentials = (body["client_secret"], body["refresh_token"])
        self.state.register_oauth_app(body["client_id"], *credentials, int(str(portal)))
        return OK

    def _declare_types(self, request: Request) -> Any:
        body = request.json()
        types = body.get("objectTypes") if isinstance(body, dict) else None
        if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
            raise ValueError('expected {"objectTypes": ["2-123", ...]}')
        for i, raw in enumerate(types):
            if not is_custom(raw) or canonical_type(raw) != raw:
                raise ValueError(f"objectTypes[{i}]: expected a custom object type id such as 2-123, got {raw!r}")
        self.state.declare_object_types(types)
        return self.state.object_types_json()

    def _create_label(self, request: Request) -> Any:
        body = request.json()
        if not isinstance(body, dict):
            raise ValueError('expected {"fromObjectType", "toObjectType", "label", "inverseLabel"?}')
        types = []
        for key in ("fromObjectType", "toObjectType"):
            canonical = canonical_type(str(body.get(key, "")))
            if canonical is None:
                raise ValueError(f"{key}: expected a HubSpot object type, got {body.get(key)!r}")
            types.append(canonical)
        name, inverse = body.get("label"), body.get("inverseLabel")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"label: expected a non-empty string, got {name!r}")
        if inverse is not None and (not isinstance(inverse, str) or not inverse.strip()):
            raise ValueError(f"inverseLabel: expected null or a non-empty string, got {inverse!r}")
        self.state.declare_object_types(t for t in types if is_custom(t))
        return {"results": self.state.create_label(types[0], types[1], name, inverse)}

    def _journal_events(self, request: Request) -> Any:
        body = request.json()
        if isinstance(body, dict) and "raw" in body:
            raw = body["raw"]
            if not isinstance(raw, str):
                raise ValueError(f"raw: expected the entry file's text, got {raw!r}")
            entry = self.state.journal.write_raw(_portal_of(body, required=True) or 0, raw.encode())
            return {"entries": [{"offset": entry.offset, "portalId": entry.portal_id}]}
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list) or not events or not all(isinstance(e, dict) for e in events):
            raise ValueError('events: expected {"events": [{...}, ...]}, a non-empty list of objects')
        written = self.state.journal.write(events)
        return {"entries": [{"offset": e.offset, "portalId": e.portal_id} for e in written]}

    def _journal_file(self, offset: str) -> Answer:
        entry = self.state.journal.find(offset)
        if entry is None:
            return Answer(404, errors.error_body(404, message=f"No journal entry {offset} (unknown or expired)"))
        return Answer(200, raw=entry.file_body(self.state.config.journal_format))

    def _deliver(self, request: Request) -> Any:
        delivery_id = self.state.webhooks.deliver(DeliveryRequest.parse(request.json()))
        return Answer(202, {"id": delivery_id, "state": "pending"})


def _object_type(body: dict[str, Any]) -> str:
    found = canonical_type(str(body.get("objectType", "")))
    if found is None:
        raise ValueError(f"objectType: expected a HubSpot object type, got {body.get('objectType')!r}")
    return found


def _portal_of(body: Any, *, required: bool = False) -> int | None:
    """The ``portalId`` of a control body (digits), or None when absent and not ``required``."""
    portal = body.get("portalId") if isinstance(body, dict) else None
    if portal is None and not required:
        return None
    if not _is_id(portal):
        raise ValueError(f"portalId: expected a HubSpot account id (digits), got {portal!r}")
    return int(str(portal))


def _is_id(value: Any) -> bool:
    """A record or portal id given as digits, in a string or a JSON number."""
    return isinstance(value, str | int) and not isinstance(value, bool) and is_object_id(str(value))
