"""The simulator's HTTP side: a threaded HTTP/1.1 server routing HubSpot's paths and the control API.

Answers are shaped like HubSpot's (BatchResponsePublicDefaultAssociation, Error, the 429 body, rate-limit
headers, correlation ids); tests validate them against HubSpot's official OpenAPI specs.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hubspot_sim import errors
from hubspot_sim.object_types import OBJECT_ID, association_type_id, normalise
from hubspot_sim.state import SimState

MAX_BATCH_INPUTS = 2000
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (
        "PUT",
        re.compile(r"^/crm/(?:objects/2026-03|v4/objects)/([^/]+)/([^/]+)/associations/default/([^/]+)/([^/]+)$"),
        "associate_default",
    ),
    (
        "POST",
        re.compile(r"^/crm/(?:associations/2026-03|v4/associations)/([^/]+)/([^/]+)/batch/associate/default$"),
        "batch_associate_default",
    ),
    ("POST", re.compile(r"^/crm/(?:objects/2026-03|v3/objects)/([^/]+)/search$"), "search"),
    ("GET", re.compile(r"^/crm/(?:objects/2026-03|v3/objects)/([^/]+)/([^/]+)$"), "read_object"),
    ("POST", re.compile(r"^/oauth/(?:v1|2026-03)/token$"), "oauth_token"),
]


def now_iso() -> str:
    """ISO-8601 UTC with milliseconds, as HubSpot writes timestamps."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Handler(BaseHTTPRequestHandler):
    """One request; the state lives on the server."""

    protocol_version = "HTTP/1.1"
    server: SimHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Per-request logging would dominate the benchmarks; errors are still printed by the stdlib."""

    # --- plumbing ---

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        correlation = body.get("correlationId") if isinstance(body, dict) else None
        self.send_header("X-HubSpot-Correlation-Id", str(correlation or errors.correlation_id()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._body()
        try:
            if url.path.startswith("/_sim/"):
                self._control(method, url.path, url.query, body)
                return
            for route_method, pattern, endpoint in ROUTES:
                match = pattern.match(url.path)
                if match:
                    if route_method != method:
                        self._send(405, errors.error_body(405))
                        return
                    self._api(endpoint, match.groups(), url.query, body)
                    return
            self._send(404, errors.error_body(404, message=f"No route for {method} {url.path}"))
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, errors.error_body(400, message=f"bad request: {exc}"))

    def do_GET(self) -> None:
        """GET."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """POST."""
        self._dispatch("POST")

    def do_PUT(self) -> None:
        """PUT."""
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        """DELETE."""
        self._dispatch("DELETE")

    # --- HubSpot's API ---

    def _api(self, endpoint: str, groups: tuple[str, ...], query: str, body: bytes) -> None:
        state = self.server.state
        token = None
        if endpoint != "oauth_token":
            auth = self.headers.get("Authorization", "")
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            if not state.authorised(token):
                self._answer(endpoint, 401, errors.error_body(401), token)
                return
        decision = state.decide(endpoint)
        if decision.latency_ms:
            time.sleep(decision.latency_ms / 1000)
        if decision.hang_ms:
            # Hang past the client's timeout; nothing is recorded for a request that never really answered.
            time.sleep(decision.hang_ms / 1000)
            self._answer(endpoint, 504, errors.error_body(504), token)
            return
        rate_headers: dict[str, str] = {}
        if token is not None and endpoint != "oauth_token":
            allowed, rate_headers = state.take(token, search=endpoint == "search")
            if not allowed:
                policy = "SECONDLY" if endpoint == "search" else "TEN_SECONDLY_ROLLING"
                self._answer(endpoint, 429, errors.rate_limit_body(policy), token, rate_headers)
                return
        if decision.answer is not None:
            self._scripted(endpoint, decision.answer, token, rate_headers)
            return
        handlers = {
            "associate_default": self._associate_default,
            "read_object": self._read_object,
            "batch_associate_default": self._batch_associate_default,
            "search": self._search,
            "oauth_token": self._oauth_token,
        }
        handlers[endpoint](groups, query, body, token, rate_headers)

    def _answer(
        self,
        endpoint: str,
        status: int,
        body: Any,
        token: str | None,
        headers: dict[str, str] | None = None,
        inputs: int = 0,
    ) -> None:
        self.server.state.log(
            method=self.command,
            path=urlsplit(self.path).path,
            status=status,
            endpoint=endpoint,
            token=token,
            inputs=inputs,
        )
        self._send(status, body, headers)

    def _scripted(self, endpoint: str, entry: dict[str, Any], token: str | None, headers: dict[str, str]) -> None:
        status = int(entry.get("status", 500))
        body = entry.get("body") or errors.body_for_status(status, entry.get("policy"), entry.get("missing_scopes"))
        self._answer(endpoint, status, body, token, {**headers, **(entry.get("headers") or {})})

    def _associate_default(
        self, groups: tuple[str, ...], query: str, body: bytes, token: str | None, headers: dict[str, str]
    ) -> None:
        from_raw, from_id, to_raw, to_id = groups
        from_type, to_type = normalise(from_raw), normalise(to_raw)
        if from_type is None or to_type is None or not OBJECT_ID.match(from_id) or not OBJECT_ID.match(to_id):
            self._answer(
                "associate_default",
                400,
                errors.error_body(400, message=f"Invalid object type or id: {from_raw}/{from_id} -> {to_raw}/{to_id}"),
                token,
                headers,
            )
            return
        invalid = self.server.state.invalid_status((from_id, to_id))
        if invalid is not None:
            status, bad = invalid
            body_out = (
                errors.invalid_ids_body(to_type if to_id in bad else from_type, bad)
                if status == 400
                else (errors.error_body(404, message=f"Object {bad[0]} not found"))
            )
            self._answer("associate_default", status, body_out, token, headers)
            return
        started = now_iso()
        self.server.state.associate([(from_raw, from_id, to_raw, to_id)])
        result = {
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": association_type_id(from_type, to_type),
            },
            "from": {"id": from_id},
            "to": {"id": to_id},
        }
        self._answer(
            "associate_default",
            200,
            {"status": "COMPLETE", "results": [result], "startedAt": started, "completedAt": now_iso()},
            token,
            headers,
            inputs=1,
        )

    def _batch_associate_default(
        self, groups: tuple[str, ...], query: str, body: bytes, token: str | None, headers: dict[str, str]
    ) -> None:
        from_raw, to_raw = groups
        from_type, to_type = normalise(from_raw), normalise(to_raw)
        endpoint = "batch_associate_default"
        try:
            inputs = json.loads(body or b"null")["inputs"]
            pairs = [(str(i["from"]["id"]), str(i["to"]["id"])) for i in inputs]
        except (ValueError, KeyError, TypeError):
            self._answer(
                endpoint,
                400,
                errors.error_body(400, message='Body must be {"inputs": [{"from": {"id"}, "to": {"id"}}]}'),
                token,
                headers,
            )
            return
        if (
            from_type is None
            or to_type is None
            or not 1 <= len(pairs) <= MAX_BATCH_INPUTS
            or not all(OBJECT_ID.match(f) and OBJECT_ID.match(t) for f, t in pairs)
        ):
            self._answer(
                endpoint,
                400,
                errors.error_body(
                    400, message=f"Invalid batch: types {from_raw}/{to_raw}, 1 to {MAX_BATCH_INPUTS} valid inputs"
                ),
                token,
                headers,
            )
            return
        started = now_iso()
        results, problems, linked = [], [], []
        type_id = association_type_id(from_type, to_type)
        for from_id, to_id in pairs:
            invalid = self.server.state.invalid_status((from_id, to_id))
            if invalid is not None:
                status, bad = invalid
                entry = (
                    errors.invalid_ids_body(to_type if to_id in bad else from_type, bad)
                    if status == 400
                    else (errors.error_body(404, message=f"Object {bad[0]} not found", context={"objectId": bad}))
                )
                problems.append(errors.standard_error(entry))
                continue
            linked.append((from_raw, from_id, to_raw, to_id))
            results.append(
                {
                    "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id},
                    "from": {"id": from_id},
                    "to": {"id": to_id},
                }
            )
        self.server.state.associate(linked)
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": now_iso(),
        }
        if problems:
            answer["errors"] = problems
            answer["numErrors"] = len(problems)
        self._answer(endpoint, 200, answer, token, headers, inputs=len(pairs))

    def _read_object(
        self, groups: tuple[str, ...], query: str, body: bytes, token: str | None, headers: dict[str, str]
    ) -> None:
        raw_type, object_id = groups
        object_type = normalise(raw_type)
        props = self.server.state.record(object_type or raw_type, object_id)
        if props is None:
            self._answer(
                "read_object", 404, errors.error_body(404, message=f"Object {object_id} not found"), token, headers
            )
            return
        wanted = [p for p in ",".join(parse_qs(query).get("properties", [])).split(",") if p]
        shown = {k: (None if v is None else str(v)) for k, v in props.items() if not wanted or k in wanted}
        stamp = now_iso()
        self._answer(
            "read_object",
            200,
            {"id": object_id, "properties": shown, "createdAt": stamp, "updatedAt": stamp, "archived": False},
            token,
            headers,
        )

    def _search(
        self, groups: tuple[str, ...], query: str, body: bytes, token: str | None, headers: dict[str, str]
    ) -> None:
        (raw_type,) = groups
        request = json.loads(body or b"{}")
        filters = []
        for group in request.get("filterGroups") or []:
            for f in group.get("filters") or []:
                if f.get("operator", "EQ") != "EQ":
                    raise ValueError("the simulator supports only EQ filters")
                filters.append((str(f["propertyName"]), str(f["value"])))
        found = self.server.state.search(normalise(raw_type) or raw_type, filters, int(request.get("limit") or 10))
        stamp = now_iso()
        results = [
            {
                "id": rid,
                "properties": {k: str(v) for k, v in props.items()},
                "createdAt": stamp,
                "updatedAt": stamp,
                "archived": False,
            }
            for rid, props in found
        ]
        self._answer("search", 200, {"total": len(results), "results": results}, token, {})

    def _oauth_token(
        self, groups: tuple[str, ...], query: str, body: bytes, token: str | None, headers: dict[str, str]
    ) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "refresh_token":
            self._answer(
                "oauth_token",
                400,
                {
                    "status": "BAD_GRANT_TYPE",
                    "message": "unsupported grant_type",
                    "correlationId": errors.correlation_id(),
                },
                None,
            )
            return
        issued = self.server.state.refresh(
            form.get("client_id", ""), form.get("client_secret", ""), form.get("refresh_token", "")
        )
        if issued is None:
            self._answer(
                "oauth_token",
                400,
                {
                    "status": "BAD_REFRESH_TOKEN",
                    "message": "missing or unknown refresh token",
                    "correlationId": errors.correlation_id(),
                },
                None,
            )
            return
        self._answer("oauth_token", 200, issued, None)

    # --- the control API ---

    def _control(self, method: str, path: str, query: str, body: bytes) -> None:
        state = self.server.state
        data = json.loads(body) if body.strip() else {}
        route = (method, path)
        result: Any = {"ok": True}
        if route == ("GET", "/_sim/health"):
            pass
        elif route == ("GET", "/_sim/associations"):
            result = state.associations_json()
        elif route == ("GET", "/_sim/requests"):
            result = state.requests_json()
        elif route == ("GET", "/_sim/faults"):
            result = state.faults.as_dict()
        elif route == ("POST", "/_sim/reset"):
            state.reset()
        elif route == ("POST", "/_sim/faults"):
            state.set_faults(data)
            result = state.faults.as_dict()
        elif route == ("DELETE", "/_sim/faults"):
            state.clear_faults()
        elif route == ("PUT", "/_sim/config"):
            state.configure(data)
        elif route == ("POST", "/_sim/records"):
            result = {"seeded": state.seed_records(data.get("records") or [], normalise)}
        elif route == ("POST", "/_sim/invalid-ids"):
            state.mark_invalid(
                [str(i) for i in data.get("ids") or []], int(data.get("status", 400)), data.get("ttl_requests")
            )
        elif route == ("POST", "/_sim/oauth-apps"):
            state.register_oauth_app(
                str(data["client_id"]), str(data["client_secret"]), str(data["refresh_token"]), str(data["portal_id"])
            )
        else:
            self._send(404, errors.error_body(404, message=f"No control route {method} {path}"))
            return
        self._send(200, result)


class SimHTTPServer(ThreadingHTTPServer):
    """A threaded server holding one SimState."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], state: SimState) -> None:
        super().__init__(address, Handler)
        self.state = state


class SimServer:
    """The simulator in a background thread, for tests: ``SimServer().start()`` then ``.url``, ``.stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, state: SimState | None = None) -> None:
        self.state = state or SimState()
        self.httpd = SimHTTPServer((host, port), self.state)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SimServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hubspot-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
