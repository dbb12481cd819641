"""HubSpot's API as the simulator answers it: routes, then auth, faults, rate limit, and the five endpoints.

The order of checks for one request, and why:
1. route (unknown path 404, wrong method 405);
2. bearer token (401), so that scripted faults are never spent on unauthenticated calls, and its kind
   (403 for an app token on an account's API, or for an account's token on the journal under
   ``journal_auth: app``); the token endpoint instead answers 429 while ``token_429_s`` lasts;
3. the fault layer: added latency, then a hang (answers 504 and closes, recording nothing) or a scripted
   or random error answer, which pre-empts everything after it and is not counted in the rate window;
4. the rolling rate limit (429), which counts only the requests it accepts;
5. the endpoint itself.
Every request that gets past routing is counted in ``/_sim/requests``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, unquote

from hubspot_sim import errors
from hubspot_sim.accounts import AuthOutcome, Caller
from hubspot_sim.faults import ScriptedAnswer
from hubspot_sim.inputs import batch_pairs, invalid_answer, object_type_of, pair_types
from hubspot_sim.labelled_associations import LabelledAssociations
from hubspot_sim.messages import Answer, Request, iso_utc
from hubspot_sim.oauth import RefreshRefusedError
from hubspot_sim.object_types import is_object_id, label
from hubspot_sim.records import SearchQuery
from hubspot_sim.state import SimState
from hubspot_sim.webhook_endpoints import APP_ENDPOINTS, JOURNAL_ENDPOINTS, WebhookEndpoints

JsonObject = dict[str, Any]
# The start of one PublicDefaultAssociation as JSON text. Association answers are written from it rather
# than with json.dumps: at 100 inputs a request, encoding was a third of the simulator's time. The ids are
# validated digit strings and the type id an int, so nothing needs escaping.
_SPEC_JSON = '{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":%d}'
_RESULT_HEAD = '{"associationSpec":' + _SPEC_JSON + ',"from":{"id":"'

MIGRATION_RETRY_AFTER_S = "1"  # HubSpot documents Retry-After on 477; scripted 477s get one unless given


@dataclass(frozen=True, slots=True)
class Route:
    """One API path pattern (2026-03 and legacy twins) and the endpoint name of each method it takes."""

    methods: Mapping[str, str]
    pattern: re.Pattern[str]


_OBJECTS = r"/crm/(?:objects/2026-03|v4/objects)"
_PAIRS = r"/crm/(?:associations/2026-03|v4/associations)/([^/]+)/([^/]+)"
_JOURNAL = r"/webhooks-journal/journal(?:-local)?/2026-03"
# The first pattern a path fits decides its route. Search comes before the record read:
# ``/crm/objects/2026-03/contacts/search`` also fits the read pattern.
ROUTES = (
    Route(
        {"PUT": "associate_default"},
        re.compile(_OBJECTS + r"/([^/]+)/([^/]+)/associations/default/([^/]+)/([^/]+)"),
    ),
    Route({"POST": "batch_associate_default"}, re.compile(_PAIRS + "/batch/associate/default")),
    Route({"POST": "batch_create"}, re.compile(_PAIRS + "/batch/create")),
    Route({"POST": "batch_archive"}, re.compile(_PAIRS + "/batch/archive")),
    Route({"POST": "batch_labels_archive"}, re.compile(_PAIRS + "/batch/labels/archive")),
    Route({"POST": "batch_read"}, re.compile(_PAIRS + "/batch/read")),
    Route({"GET": "association_labels"}, re.compile(r"/crm/v4/associations/([^/]+)/([^/]+)/labels")),
    Route({"GET": "association_labels_paged"}, re.compile(r"/crm/associations/2026-03/([^/]+)/([^/]+)/labels")),
    Route(
        {"PUT": "associate_labels", "DELETE": "delete_association"},
        re.compile(_OBJECTS + r"/([^/]+)/([^/]+)/associations/([^/]+)/([^/]+)"),
    ),
    Route({"GET": "read_associations"}, re.compile(_OBJECTS + r"/([^/]+)/([^/]+)/associations/([^/]+)")),
    Route({"POST": "search"}, re.compile(r"/crm/(?:objects/2026-03|v3/objects)/([^/]+)/search")),
    Route({"GET": "read_object"}, re.compile(r"/crm/(?:objects/2026-03|v3/objects)/([^/]+)/([^/]+)")),
    Route({"POST": "oauth_token"}, re.compile(r"/oauth/(v1|2026-03)/token")),
    Route({"GET": "journal_earliest"}, re.compile(_JOURNAL + "/earliest")),
    Route({"GET": "journal_latest"}, re.compile(_JOURNAL + "/latest")),
    Route({"GET": "journal_next"}, re.compile(_JOURNAL + "/offset/([^/]+)/next")),
    Route({"GET": "journal_batch_earliest"}, re.compile(_JOURNAL + "/batch/earliest/([^/]+)")),
    Route({"GET": "journal_batch_latest"}, re.compile(_JOURNAL + "/batch/latest/([^/]+)")),
    Route({"POST": "journal_batch_read"}, re.compile(_JOURNAL + "/batch/read")),
    Route({"GET": "journal_batch_next"}, re.compile(_JOURNAL + "/batch/([^/]+)/next/([^/]+)")),
    Route(
        {"GET": "list_journal_subscriptions", "POST": "upsert_journal_subscription"},
        re.compile(r"/webhooks-journal/subscriptions/2026-03"),
    ),
    Route(
        {"DELETE": "delete_portal_journal_subscriptions"},
        re.compile(r"/webhooks-journal/subscriptions/2026-03/portals/([^/]+)"),
    ),
    Route(
        {"GET": "read_journal_subscription", "DELETE": "delete_journal_subscription"},
        re.compile(r"/webhooks-journal/subscriptions/2026-03/([^/]+)"),
    ),
    Route(
        {"GET": "read_webhook_settings", "PUT": "put_webhook_settings", "DELETE": "delete_webhook_settings"},
        re.compile(r"/webhooks/2026-03/([^/]+)/settings"),
    ),
    Route(
        {"GET": "list_subscriptions", "POST": "create_subscription"},
        re.compile(r"/webhooks/2026-03/([^/]+)/subscriptions"),
    ),
    Route(
        {"GET": "read_subscription", "PATCH": "patch_subscription", "DELETE": "delete_subscription"},
        re.compile(r"/webhooks/2026-03/([^/]+)/subscriptions/([^/]+)"),
    ),
)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class HubSpotApi:
    """Answers HubSpot API requests from a ``SimState``; ``pause`` waits out latency and hangs."""

    def __init__(self, state: SimState, pause: Callable[[float], object] = time.sleep) -> None:
        self.state = state
        self._pause = pause
        self._endpoints: dict[str, Callable[[Request, tuple[str, ...]], tuple[Answer, int]]] = {
            "associate_default": self._associate_default,
            "batch_associate_default": self._batch_associate_default,
            "read_object": self._read_object,
            "search": self._search,
            "oauth_token": self._oauth_token,
            **LabelledAssociations(state).endpoints(),
            **WebhookEndpoints(state).endpoints(),
        }

    def handle(self, request: Request) -> Answer:
        """The answer to one API request (see the module docstring for the order of checks)."""
        route, groups = _match(request.path)
        if route is None:
            return self._logged(request, "unknown", None, Answer(404, _no_route(request)))
        endpoint = route.methods.get(request.method, "")
        if not endpoint:
            allowed = ", ".join(sorted(route.methods))
            answer = Answer(405, errors.error_body(405), {"Allow": allowed})
            return self._logged(request, next(iter(route.methods.values())), None, answer)
        token = None
        caller = Caller(AuthOutcome.OK)
        if endpoint != "oauth_token":
            token = bearer_token(request.authorization)
            caller = self.state.authenticate(token)
            if caller.outcome is AuthOutcome.EXPIRED:
                return self._logged(request, endpoint, token, Answer(401, errors.expired_token_body()))
            if caller.outcome is not AuthOutcome.OK:
                return self._logged(request, endpoint, token, Answer(401, errors.error_body(401)))
            refused = self._wrong_kind(endpoint, caller)
            if refused is not None:
                return self._logged(request, endpoint, token, refused)
        elif self.state.token_retry_after():
            # The token endpoint's own limit (docs/reference/hubspot.md §9.6), ahead of faults and grants.
            headers = {"Retry-After": str(self.state.token_retry_after())}
            return self._logged(request, endpoint, token, Answer(429, errors.token_rate_limit_body(), headers))
        decision = self.state.decide(endpoint)
        if decision.latency_ms:
            self._pause(decision.latency_ms / 1000)
        if decision.hang_ms:
            # Past the client's timeout nobody reads the answer; what matters is that nothing is recorded.
            self._pause(decision.hang_ms / 1000)
            hung = errors.error_body(504, message=f"Simulated hang of {decision.hang_ms} ms")
            return self._logged(request, endpoint, token, Answer(504, hung, close=True))
        if decision.answer is not None and not decision.answer.passes:
            return self._logged(request, endpoint, token, self._scripted(endpoint, decision.answer, caller))
        rate_headers: dict[str, str] = {}
        # The token endpoint and the journal (exempt from the daily and ten-secondly limits in the spec)
        # count against no limit.
        if endpoint != "oauth_token" and endpoint not in JOURNAL_ENDPOINTS and endpoint not in APP_ENDPOINTS:
            admission = self.state.admit(caller.window_key, search=endpoint == "search")
            rate_headers = admission.headers
            if not admission.accepted:
                body = errors.rate_limit_body(admission.policy or "TEN_SECONDLY_ROLLING")
                return self._logged(request, endpoint, token, Answer(429, body, rate_headers))
        try:
            answer, inputs = self._endpoints[endpoint](replace(request, caller=caller), groups)
        except ValueError as exc:
            answer, inputs = Answer(400, errors.error_body(400, message=str(exc))), 0
        if rate_headers:
            answer = replace(answer, headers={**rate_headers, **answer.headers})
        return self._logged(request, endpoint, token, answer, inputs)

    # --- plumbing ---

    def _wrong_kind(self, endpoint: str, caller: Caller) -> Answer | None:
        """403 for an app token on a portal's API, or (``journal_auth: app``) a portal token on the journal."""
        journal = endpoint in JOURNAL_ENDPOINTS or endpoint in APP_ENDPOINTS
        if (
            caller.is_app
            and not journal
            and not endpoint.endswith(("webhook_settings", "subscriptions", "subscription"))
        ):
            return Answer(403, errors.app_token_body("An app token (client_credentials) cannot act for an account"))
        if journal and not caller.is_app and self.state.config.journal_auth == "app":
            message = "The webhooks journal takes an app token from the client_credentials grant, not an account's"
            return Answer(403, errors.app_token_body(message))
        return None

    def _logged(
        self,
        request: Request,
        endpoint: str,
        token: str | None,
        answer: Answer,
        inputs: int = 0,
    ) -> Answer:
        self.state.log(
            method=request.method,
            path=request.path,
            status=0 if answer.drop else answer.status,
            endpoint=endpoint,
            token=token,
            inputs=inputs,
            correlation_id=answer.correlation_id(),
        )
        return answer

    def _scripted(self, endpoint: str, entry: ScriptedAnswer, caller: Caller) -> Answer:
        if entry.drops:
            return Answer(0, drop=True)
        is_search = endpoint == "search"
        body = entry.body
        if body is None:
            policy = entry.policy or ("SECONDLY" if is_search else None)
            scopes, message = entry.missing_scopes, entry.message
            body = errors.body_for_status(entry.status, policy=policy, missing_scopes=scopes, message=message)
        headers = self.state.rate_headers(caller.window_key)
        if is_search:  # search answers carry the daily headers only
            headers = {k: v for k, v in headers.items() if "Daily" in k}
        if entry.status == 477:
            headers["Retry-After"] = MIGRATION_RETRY_AFTER_S
        return Answer(entry.status, body, {**headers, **entry.headers})

    def _completed(self, started: float, linked: list[tuple[int, str, str]], problems: list[JsonObject]) -> bytes:
        """The BatchResponsePublicDefaultAssociation of an association call, encoded.

        ``linked`` holds (associationTypeId, fromId, toId) results, in order.
        """
        results = ",".join(
            [f'{_RESULT_HEAD % type_id}{from_id}"}},"to":{{"id":"{to_id}"}}}}' for type_id, from_id, to_id in linked]
        )
        times = f'"startedAt":"{iso_utc(started)}","completedAt":"{iso_utc(self.state.now())}"'
        text = f'{{"status":"COMPLETE","results":[{results}],{times}'
        if problems:
            text += f',"errors":{json.dumps(problems)},"numErrors":{len(problems)}'
        return (text + "}").encode()

    def _default_type_ids(self, from_type: str, to_type: str) -> tuple[int, int]:
        """The default type ids of a pair, both directions. Raises ValueError where HubSpot has no default."""
        forward = self.state.default_type_id(from_type, to_type)
        backward = self.state.default_type_id(to_type, from_type)
        if forward is None or backward is None:
            raise ValueError(
                f"No default association is defined between {label(from_type)} and {label(to_type)}; "
                "use a labelled association type (custom object types must be declared through the control API)"
            )
        return forward, backward

    # --- the endpoints: each returns (answer, association inputs received) ---

    def _associate_default(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        from_raw, from_id, to_raw, to_id = (unquote(g) for g in groups)
        from_type, to_type = pair_types(from_raw, to_raw)
        for name, value in (("fromObjectId", from_id), ("toObjectId", to_id)):
            if not is_object_id(value):
                raise ValueError(f"{name}: expected 1-20 decimal digits, got {value!r}")
        self._default_type_ids(from_type, to_type)
        started = self.state.now()
        (from_id,), (to_id,) = self.state.resolve_ids(from_type, [from_id]), self.state.resolve_ids(to_type, [to_id])
        sides = ((from_type, from_id), (to_type, to_id))
        bad = self.state.check_sides(sides)
        if bad:
            status, body = invalid_answer(bad, sides)
            return Answer(status, body), 1
        forward, backward = self._default_type_ids(from_type, to_type)
        specs = [(("HUBSPOT_DEFINED", forward), ("HUBSPOT_DEFINED", backward))]
        inputs = [(from_id, to_id, specs)]
        (refusal,) = self.state.write((from_raw, to_raw), (from_type, to_type), inputs, request.caller)
        if refusal is not None:
            return Answer(400, refusal), 1
        return Answer(200, raw=self._completed(started, [(forward, from_id, to_id)], [])), 1

    def _batch_associate_default(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        from_raw, to_raw = (unquote(g) for g in groups)
        from_type, to_type = pair_types(from_raw, to_raw)
        forward, backward = self._default_type_ids(from_type, to_type)
        pairs = batch_pairs(request.json())
        duplicate = _duplicate(pairs, from_type, to_type)
        if duplicate is not None:
            return Answer(400, duplicate), len(pairs)
        started = self.state.now()
        pairs = list(
            zip(
                self.state.resolve_ids(from_type, [f for f, _ in pairs]),
                self.state.resolve_ids(to_type, [t for _, t in pairs]),
                strict=True,
            )
        )
        bad = self.state.check_sides(side for f, t in pairs for side in ((from_type, f), (to_type, t)))
        problems: list[JsonObject] = []
        linked = pairs
        if bad and self.state.config.batch_errors == "whole":
            # HubSpot refuses the whole batch, naming every invalid id (docs/reference/hubspot.md §8).
            named = [(label(side[0]), side[1]) for side in bad]
            return Answer(400, errors.invalid_batch_body(named)), len(pairs)
        if bad:
            linked = []
            for from_id, to_id in pairs:
                sides = ((from_type, from_id), (to_type, to_id))
                if any(side in bad for side in sides):
                    status, body = invalid_answer(bad, sides)
                    problems.append(errors.batch_error(status, body))
                else:
                    linked.append((from_id, to_id))
        specs = [(("HUBSPOT_DEFINED", forward), ("HUBSPOT_DEFINED", backward))]
        refusals = self.state.write(
            (from_raw, to_raw), (from_type, to_type), [(f, t, specs) for f, t in linked], request.caller
        )
        if any(refusals):
            # A limit refuses its inputs one by one, whatever batch_errors says (docs/reference/hubspot.md §9.4).
            problems.extend(errors.batch_error(400, r) for r in refusals if r is not None)
            linked = [pair for pair, refusal in zip(linked, refusals, strict=True) if refusal is None]
        # HubSpot's batch answers list both directions of each pair (docs/reference/hubspot.md §8).
        results = [r for f, t in linked for r in ((forward, f, t), (backward, t, f))]
        return Answer(200, raw=self._completed(started, results, problems)), len(pairs)

    def _read_object(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        raw_type, object_id = (unquote(g) for g in groups)
        object_type = object_type_of(raw_type, "objectType")
        if request.query_values("idProperty"):
            raise ValueError("idProperty: the simulator reads records by id only")
        if not is_object_id(object_id):
            raise ValueError(f"objectId: expected 1-20 decimal digits, got {object_id!r}")
        found = None
        # An id marked invalid is "not visible yet": reading it answers 404, whatever status it was given.
        if request.query_values("archived") == ["true"]:
            # Only archived (deleted) records, as HubSpot's ``archived=true`` (docs/reference/hubspot.md §9.3).
            found = self.state.read_archived(object_type, object_id)
        elif not self.state.screen((object_id,)):
            found = self.state.read_record(object_type, object_id, request.query_values("properties"))
        if found is None:
            return Answer(404, errors.not_found_body([(label(object_type), object_id)])), 0
        return Answer(200, found), 0

    def _search(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        object_type = object_type_of(unquote(groups[0]), "objectType")
        return Answer(200, self.state.search(object_type, SearchQuery.parse(request.json()))), 0

    def _oauth_token(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type", "")
        if grant == "client_credentials" and groups[0] == "2026-03":
            # An app token for the journal: the 2026-03 endpoint's grant (docs/reference/hubspot.md §9.1).
            try:
                issued = self.state.grant_app_token(form.get("client_id", ""), form.get("client_secret", ""))
            except RefreshRefusedError as exc:
                return Answer(400, errors.oauth_error_body(exc.status_name, exc.message)), 0
            return Answer(200, issued), 0
        if grant != "refresh_token":
            body = errors.oauth_error_body("BAD_GRANT_TYPE", f"unsupported grant_type {grant!r}")
            return Answer(400, body), 0
        credentials = [form.get(key, "") for key in ("client_id", "client_secret", "refresh_token")]
        try:
            issued = self.state.refresh(*credentials)
        except RefreshRefusedError as exc:
            return Answer(400, errors.oauth_error_body(exc.status_name, exc.message)), 0
        return Answer(200, issued), 0


def _match(path: str) -> tuple[Route | None, tuple[str, ...]]:
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match:
            return route, match.groups()
    return None, ()


def _no_route(request: Request) -> JsonObject:
    return errors.error_body(404, message=f"No API route for {request.method} {request.path}")


def _duplicate(pairs: list[tuple[str, str]], from_type: str, to_type: str) -> JsonObject | None:
    """HubSpot's 400 for a batch naming the same pair more than once (docs/reference/hubspot.md §8), or None."""
    seen: dict[tuple[str, str], int] = {}
    for i, pair in enumerate(pairs):
        first = seen.setdefault(pair, i)
        if first != i:
            named = f"{label(from_type)}={pair[0]} -> {label(to_type)}={pair[1]}"
            return errors.duplicate_inputs_body(named, first, i)
    return None
