"""Deeply nested JSON is refused with a 400 before anything recurses over it, on every route that reads JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from hublink.domain import signatures
from hublink.domain.json_nesting import MAX_DEPTH
from tests.conftest import ADMIN_TOKEN, API_TOKEN
from tests.integration.test_webhooks import (  # noqa: F401 - the fixtures these tests use
    FORM_SECRET,
    PUBLIC,
    SECRET,
    client,
    hook_settings,
    hubspot_event,
    rules_file,
    signed,
)

pytestmark = pytest.mark.integration


#: Where a document's deep part goes (the encoder would recurse over it as deeply, so it is spliced in).
DEEP = "__deep__"


@pytest.fixture
def hooks(request: pytest.FixtureRequest) -> FlaskClient:
    """The webhook tests' client: their settings, secrets and rules."""
    found: FlaskClient = request.getfixturevalue("client")
    return found


def nested(depth: int) -> bytes:
    """A list nested ``depth`` levels deep (``[[[...]]]``), as JSON text."""
    return b"[" * depth + b"]" * depth


def post(web: FlaskClient, route: str, document: Any, deep: bytes) -> tuple[int, Any]:
    """POST ``document`` (``deep`` in place of DEEP) to ``route``, signed or authorized as it wants; status, answer."""
    body = json.dumps(document).encode().replace(json.dumps(DEEP).encode(), deep)
    headers = {"Content-Type": "application/json"}
    if route == "/webhooks/hubspot":
        headers |= signed(body)
    elif route == "/webhooks/workflow":
        headers |= {
            "X-HubSpot-Signature": signatures.sign_v2(SECRET, "POST", PUBLIC + route, body),
            "X-HubSpot-Signature-Version": "v2",
        }
    elif route == "/webhooks/forms/demo":
        headers |= {"X-Signature": "sha256=" + signatures.sign_hmac_sha256(FORM_SECRET, body, "hex")}
    elif route == "/api/associations":
        headers |= {"Authorization": f"Bearer {API_TOKEN}"}
    else:
        headers |= {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    answer = web.post(route, data=body, headers=headers)
    return answer.status_code, answer.get_json(silent=True)


def document(route: str) -> Any:
    """A body each route would take, with DEEP in a field of it."""
    if route == "/webhooks/hubspot":
        return [hubspot_event(1, 5001, extra=DEEP)]
    if route == "/webhooks/workflow":
        return {"objectId": 5001, "contact_id": "7001", "extra": DEEP}
    if route == "/webhooks/forms/demo":
        return {"submission_id": "s1", "contact_id": "11", "company_id": "22", "extra": DEEP}
    if route == "/api/associations":
        return {
            "fromObjectType": "deals",
            "fromObjectId": "1",
            "toObjectType": "contacts",
            "toObjectId": "2",
            "x": DEEP,
        }
    return {"since": "2026-01-01T00:00:00Z", "dry_run": True, "x": DEEP}


ROUTES = ["/webhooks/hubspot", "/webhooks/workflow", "/webhooks/forms/demo", "/api/associations", "/api/events/replay"]


class TestNesting:
    """A body nested past MAX_DEPTH is a 400 ``too_deep``; one within it is read as before."""

    @pytest.mark.parametrize("route", ROUTES)
    def test_a_body_1000_levels_deep_is_a_400(self, hooks: FlaskClient, route: str) -> None:
        """1,000 levels (under orjson's own limit of 1,024): 400 too_deep, never a 500."""
        status, answer = post(hooks, route, document(route), nested(1000))
        assert status == 400, answer
        assert answer["error"]["code"] == "too_deep", answer

    @pytest.mark.parametrize("route", ROUTES)
    def test_a_body_just_within_the_limit_is_not_refused_for_its_depth(self, hooks: FlaskClient, route: str) -> None:
        """Nested to MAX_DEPTH in all: not refused as too deep (whatever the route makes of it)."""
        status, answer = post(hooks, route, document(route), nested(MAX_DEPTH - 3))
        assert status != 500 and (answer or {}).get("error", {}).get("code") != "too_deep", answer
