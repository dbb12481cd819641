"""The error tree against HubSpot's status table: every row has its class, and no error shows a token."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
import requests
import responses
from hypothesis import given
from hypothesis import strategies as st

import hublink
from hublink.delivery.hubspot import HubSpotClient, error_for_status
from hublink.domain import errors as e
from tests.unit.strategies import json_values

#: docs/reference/hubspot.md §3.2's status column, plus 477 (migration in progress), in the order of the table.
DOCUMENTED_STATUSES = (400, 401, 403, 404, 409, 414, 423, 429, 477, 500, 502, 503, 504, 521, 522, 523, 524, 525, 526)

#: The class each documented status must map to (docs/concepts/delivery.md "Error classes";
#: docs/reference/hubspot.md §3.2).
STATUS_CLASS: dict[int, type[e.DeliveryError]] = {
    400: e.ValidationRejectedError,
    401: e.AuthError,
    403: e.ForbiddenError,
    404: e.NotFoundError,
    409: e.ValidationRejectedError,
    414: e.ValidationRejectedError,
    423: e.ServerError,
    429: e.RateLimitedError,
    477: e.ServerError,
    500: e.ServerError,
    502: e.ServerError,
    503: e.ServerError,
    504: e.ServerError,
    521: e.ServerError,
    522: e.ServerError,
    523: e.ServerError,
    524: e.ServerError,
    525: e.PermanentError,
    526: e.PermanentError,
}

#: The three things a DeliveryError can make happen next; every class is exactly one of them.
KINDS = (e.TransientError, e.RateLimitedError, e.PermanentError)

#: The suggested kind of each documented status (docs/reference/hubspot.md §3.2, last column).
STATUS_KIND: dict[int, type[e.DeliveryError]] = {
    **dict.fromkeys((400, 401, 403, 404, 409, 414, 525, 526), e.PermanentError),
    **dict.fromkeys((423, 477, 500, 502, 503, 504, 521, 522, 523, 524), e.TransientError),
    429: e.RateLimitedError,
}

#: Bodies HubSpot (or something in front of it) might send that are not its documented shape.
ODD_BODIES: list[object] = [
    None,
    [],
    ["error"],
    "error",
    42,
    {},
    {"message": ["not", "a", "string"], "category": {"nested": True}},
    {"message": None, "correlationId": {"id": "x"}, "context": ["missingScopes"]},
    {"message": "", "correlationId": "", "policyName": 7},
    {"context": {"missingScopes": "crm.objects.deals.write"}},
]

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
BASE = "https://api.hubapi.test"
SINGLE = f"{BASE}/crm/objects/2026-03/deals/1/associations/default/contacts/2"


def all_subclasses(cls: type) -> set[type]:
    """Every class below ``cls``."""
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub} | all_subclasses(sub)
    return found


def documented_tree() -> dict[str, str]:
    """The tree drawn in errors.py's docstring, as class name -> parent name."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (e.__doc__ or "").splitlines():
        match = re.match(r"^(\s*)(?:[├└]── )?([A-Z][A-Za-z]+Error)\b", line.replace("│", " "))
        if not match:
            continue
        depth = match.start(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[match.group(2)] = stack[-1][1]
        stack.append((depth, match.group(2)))
    return parents


def every_hublink_error() -> set[type]:
    """Every HubLinkError subclass defined anywhere in the hublink package (every module imported first)."""
    for module in pkgutil.walk_packages(hublink.__path__, "hublink."):
        importlib.import_module(module.name)
    return all_subclasses(e.HubLinkError)


_BY_NAME = {c.__name__: c for c in every_hublink_error() | {e.HubLinkError}}
TREE: dict[type[Exception], type[Exception]] = {
    _BY_NAME[name]: _BY_NAME[parent] for name, parent in documented_tree().items() if name in _BY_NAME
}


class TestTree:
    """The exception tree is the documented one, and each delivery error means exactly one next step."""

    @pytest.mark.parametrize(("cls", "parent"), TREE.items(), ids=lambda c: c.__name__)
    def test_each_class_has_its_documented_parent(self, cls: type[Exception], parent: type[Exception]) -> None:
        """Each class of errors.py's tree derives directly from the parent the tree shows."""
        assert cls.__bases__ == (parent,)

    def test_the_drawing_is_the_whole_tree(self) -> None:
        """Every HubLinkError subclass in the package is drawn, under its real parent, and nothing else is."""
        assert {c.__name__ for c in every_hublink_error()} == set(documented_tree())
        assert len(TREE) >= 20

    def test_every_delivery_error_subclass_in_the_package_is_drawn(self) -> None:
        """A DeliveryError subclass defined in any module (not only errors.py) must be in the drawing."""
        drawn = set(TREE)
        assert {c for c in every_hublink_error() if issubclass(c, e.DeliveryError)} <= drawn

    @pytest.mark.parametrize(
        "cls", sorted(set(TREE) - {e.DeliveryError}, key=lambda c: c.__name__), ids=lambda c: c.__name__
    )
    def test_every_delivery_error_means_exactly_one_next_step(self, cls: type[Exception]) -> None:
        """Each DeliveryError class is exactly one of transient, rate-limited or permanent."""
        if issubclass(cls, e.DeliveryError):
            assert sum(issubclass(cls, kind) for kind in KINDS) == 1
        else:
            assert not issubclass(cls, KINDS)

    @pytest.mark.parametrize("reason", sorted(e.SIGNATURE_REASONS))
    def test_each_signature_reason_is_accepted(self, reason: str) -> None:
        """InvalidSignatureError carries each documented reason and says it in its message."""
        error = e.InvalidSignatureError(reason)
        assert error.reason == reason
        assert reason in str(error)

    def test_signature_reasons_are_closed(self) -> None:
        """InvalidSignatureError refuses a reason that is not documented."""
        with pytest.raises(ValueError, match="reason"):
            e.InvalidSignatureError("because")

    def test_field_problems_have_a_wire_form(self) -> None:
        """A FieldProblem renders as {field, message} for a 422's details."""
        problem = e.FieldProblem("/associations/0/fromObjectId", "fromObjectId: expected digits")
        assert problem.as_dict() == {
            "field": "/associations/0/fromObjectId",
            "message": "fromObjectId: expected digits",
        }

    def test_invalid_input_keeps_its_problems(self) -> None:
        """InvalidInputError keeps its message and an immutable tuple of problems."""
        error = e.InvalidInputError("invalid association", [e.FieldProblem("/a", "a: bad")])
        assert (error.message, error.problems) == ("invalid association", (e.FieldProblem("/a", "a: bad"),))


class TestStatusTable:
    """hublink.delivery.hubspot.error_for_status covers HubSpot's whole status table."""

    def test_the_table_under_test_is_the_documented_one(self) -> None:
        """Every documented status has an expected class and kind here, and nothing else does."""
        assert set(STATUS_CLASS) == set(DOCUMENTED_STATUSES) == set(STATUS_KIND)

    @pytest.mark.parametrize("status", DOCUMENTED_STATUSES)
    def test_each_documented_status_maps_to_its_class(self, status: int) -> None:
        """Each status of HubSpot's table maps to exactly the class docs/concepts/delivery.md's error table names."""
        error = error_for_status(status, {"message": "x", "correlationId": "c-1"}, {}, 0.0)
        assert type(error) is STATUS_CLASS[status]
        assert error.status == status

    @pytest.mark.parametrize("status", DOCUMENTED_STATUSES)
    def test_each_documented_status_has_its_suggested_kind(self, status: int) -> None:
        """Each status is transient, rate-limited or permanent as docs/reference/hubspot.md §3.2 suggests."""
        assert isinstance(error_for_status(status, {}, {}, 0.0), STATUS_KIND[status])

    def test_every_error_status_has_a_class(self) -> None:
        """Every 4xx and 5xx status, documented or not, maps to a class that means exactly one next step."""
        unclassified = [
            status
            for status in range(400, 600)
            if sum(isinstance(error_for_status(status, {}, {}, 0.0), kind) for kind in KINDS) != 1
        ]
        assert unclassified == []

    @pytest.mark.parametrize("status", [418, 422, 451, 499])
    def test_other_4xx_are_validation_rejections(self, status: int) -> None:
        """A 4xx not in HubSpot's table is a permanent ValidationRejectedError."""
        assert type(error_for_status(status, {}, {}, 0.0)) is e.ValidationRejectedError

    @pytest.mark.parametrize("status", [501, 505, 520, 530, 599])
    def test_other_5xx_are_server_errors(self, status: int) -> None:
        """A 5xx not in HubSpot's table is retried as a ServerError."""
        assert type(error_for_status(status, {}, {}, 0.0)) is e.ServerError

    def test_locked_asks_for_at_least_two_seconds(self) -> None:
        """A 423 carries a retry hint of at least 2 s, and a longer Retry-After wins."""
        assert error_for_status(423, {}, {}, 0.0).retry_after_s == 2.0  # type: ignore[attr-defined]
        assert error_for_status(423, {}, {"Retry-After": "9"}, 0.0).retry_after_s == 9.0  # type: ignore[attr-defined]

    def test_migration_in_progress_carries_retry_after(self) -> None:
        """A 477's Retry-After in seconds becomes its retry hint."""
        assert error_for_status(477, {}, {"Retry-After": "120"}, 0.0).retry_after_s == 120.0  # type: ignore[attr-defined]

    def test_forbidden_parses_missing_scopes(self) -> None:
        """A 403's context.missingScopes is available on the ForbiddenError."""
        body = {
            "status": "error",
            "message": "This app hasn't been granted all required scopes to make this call.",
            "correlationId": "7c6a4b1e-0000-4000-8000-000000000000",
            "category": "MISSING_SCOPES",
            "context": {"missingScopes": ["crm.objects.deals.write", "crm.objects.contacts.write"]},
        }
        error = error_for_status(403, body, {}, 0.0)
        assert isinstance(error, e.ForbiddenError)
        assert error.detail.missing_scopes == ("crm.objects.deals.write", "crm.objects.contacts.write")
        assert error.category == "MISSING_SCOPES"

    @pytest.mark.parametrize(
        "context", [{}, {"missingScopes": "crm.objects.deals.write"}, {"missingScopes": None}, {"missingScopes": 3}]
    )
    def test_odd_missing_scopes_are_none(self, context: dict[str, object]) -> None:
        """A 403 whose missingScopes is absent or not a list has no missing scopes rather than characters."""
        assert error_for_status(403, {"context": context}, {}, 0.0).detail.missing_scopes == ()

    def test_validation_rejection_names_invalid_ids(self) -> None:
        """A 400 with context.objectId exposes the ids HubSpot called invalid."""
        body = {
            "category": "VALIDATION_ERROR",
            "context": {"INVALID_OBJECT_IDS": ["CONTACT=2 is not valid"], "objectId": ["2"]},
        }
        error = error_for_status(400, body, {}, 0.0)
        assert isinstance(error, e.ValidationRejectedError)
        assert error.invalid_object_ids == ("2",)

    @pytest.mark.parametrize(
        ("body", "policy"),
        [
            ({"errorType": "RATE_LIMIT", "policyName": "DAILY"}, "DAILY"),
            ({"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}, "TEN_SECONDLY_ROLLING"),
            ({"message": "You have reached your secondly limit."}, "SECONDLY"),
            ({}, "UNKNOWN"),
        ],
    )
    def test_rate_limits_name_their_policy(self, body: dict[str, str], policy: str) -> None:
        """A 429 names the limit from policyName, else 'secondly limit' in the message, else UNKNOWN."""
        error = error_for_status(429, body, {}, 0.0)
        assert isinstance(error, e.RateLimitedError)
        assert error.policy == policy

    def test_a_429_reads_its_category_from_error_type(self) -> None:
        """A 429 body's errorType stands in for the category it lacks."""
        assert error_for_status(429, {"errorType": "RATE_LIMIT"}, {}, 0.0).category == "RATE_LIMIT"

    @given(status=st.integers(min_value=400, max_value=599), body=json_values)
    def test_any_body_is_parsed_without_raising(self, status: int, body: object) -> None:
        """Whatever JSON HubSpot sends, error_for_status returns an error whose str and repr are plain text."""
        error = error_for_status(status, body, {}, 0.0)
        assert isinstance(str(error), str)
        assert f"status={status}" in repr(error)


class TestRendering:
    """What errors show of themselves: enough for support, never a credential."""

    def test_str_shows_message_and_correlation_id(self) -> None:
        """str() is HubSpot's message followed by its correlationId, which HubSpot support asks for."""
        error = error_for_status(502, {"message": "Bad gateway", "correlationId": "abc-123"}, {}, 0.0)
        assert str(error) == "Bad gateway (correlationId abc-123)"

    def test_repr_shows_status_category_and_correlation_id(self) -> None:
        """repr() names the class, the status, the category and the correlationId."""
        body = {"message": "m", "category": "VALIDATION_ERROR", "correlationId": "abc-123"}
        error = error_for_status(400, body, {}, 0.0)
        assert (
            repr(error) == "ValidationRejectedError(status=400, category='VALIDATION_ERROR', correlation_id='abc-123')"
        )

    def test_an_error_without_a_message_names_its_status(self) -> None:
        """An empty body still gives a readable message naming the HTTP status."""
        assert str(error_for_status(503, {}, {}, 0.0)) == "HTTP 503"

    def test_an_error_without_any_detail_names_its_class(self) -> None:
        """An error built with no detail at all renders as its class name."""
        assert str(e.HubSpotTimeoutError(e.HubSpotErrorDetail())) == "HubSpotTimeoutError"

    @pytest.mark.parametrize("status", DOCUMENTED_STATUSES)
    @pytest.mark.parametrize("body", ODD_BODIES, ids=lambda b: repr(b)[:24])
    @responses.activate
    def test_no_error_shows_the_token_whatever_the_body(self, status: int, body: object) -> None:
        """For every documented status and any odd body, the raised error's str() and repr() hold no token."""
        responses.put(SINGLE, status=status, json=body)
        client = HubSpotClient(BASE, connect_timeout_s=1.0, read_timeout_s=1.0, session=requests.Session())
        with pytest.raises(e.DeliveryError) as info:
            client.associate_default(TOKEN, "deals", "1", "contacts", "2")
        assert type(info.value) is STATUS_CLASS[status]
        assert TOKEN not in str(info.value)
        assert TOKEN not in repr(info.value)
        assert f"status={status}" in repr(info.value)
