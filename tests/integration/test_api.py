"""The direct API on a real Redis: what it accepts, what it refuses, and that refusals store nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient

from hublink.config.settings import Settings
from hublink.lanes import peek
from hublink.store.keys import Keys
from tests.conftest import API_TOKEN
from tests.integration.helpers import expand_all, make_expander, waiting
from web import create_app

pytestmark = pytest.mark.integration

GOOD = {"fromObjectType": "deals", "fromObjectId": "123", "toObjectType": "contacts", "toObjectId": "456"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str) -> Settings:
    """Settings on the test's Redis database."""
    return make_settings(redis_url=redis_url, max_body_bytes=16384)


@pytest.fixture
def app(settings: Settings) -> Flask:
    """An app on the test's Redis database."""
    return create_app(settings)


@pytest.fixture
def expand(settings: Settings) -> Callable[[], int]:
    """Run a worker's expander over the inbox; return how many associations it stored."""
    expander = make_expander(settings)
    return lambda: sum(report.associations for report in expand_all(expander))


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    """A test client for the app."""
    with app.test_client() as c:
        yield c


def post(
    client: FlaskClient,
    body: Any,
    *,
    token: str | None = API_TOKEN,
    content_type: str = "application/json",
    raw: bytes | None = None,
) -> Any:
    """POST to /api/associations."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = raw if raw is not None else json.dumps(body).encode()
    return client.post("/api/associations", data=data, headers=headers, content_type=content_type)


def error_code(response: Any) -> str:
    """The error code of a JSON error answer."""
    code: str = response.get_json()["error"]["code"]
    return code


class TestAccepts:
    """What the direct API accepts."""

    def test_valid_items_are_accepted_202_with_ids_that_a_worker_keeps(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], int]
    ) -> None:
        """A valid request answers 202 with one id per item once it is in the inbox; the worker stores those ids."""
        response = post(client, {"associations": [GOOD, {**GOOD, "toObjectId": "789"}]})
        assert response.status_code == 202
        body = response.get_json()
        assert body["accepted"] == 2
        assert redis_client.xlen("hl:inbox") == 1
        assert expand() == 2
        for association_id in body["ids"]:
            assert association_id in waiting(redis_client, "_|deals|contacts")
        assert redis_client.xlen("hl:inbox") == 0
        assert redis_client.hgetall("hl:m:associations_enqueued") == {b"source=api,kind=association": b"2"}

    def test_one_request_wakes_its_lane_once(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], int]
    ) -> None:
        """Two requests for one idle lane push one wake-up: the second finds the lane already marked."""
        post(client, {"associations": [GOOD]})
        post(client, {"associations": [{**GOOD, "toObjectId": "999"}]})
        assert expand() == 2
        assert redis_client.lrange("hl:wake", 0, -1) == [b"_|deals|contacts"]

    def test_an_unlink_with_explicit_types_is_stored_as_such(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], int]
    ) -> None:
        """An unlink with types needs no label look-up; the worker stores it with its action and types."""
        item = {**GOOD, "action": "unlink", "types": [{"associationCategory": "USER_DEFINED", "associationTypeId": 9}]}
        response = post(client, {"associations": [item]})
        assert response.status_code == 202
        assert expand() == 1
        (association_id,) = response.get_json()["ids"]
        [stored] = peek(redis_client, Keys(), "_|deals|contacts")
        assert stored.association_id == association_id
        assert (stored.request.action, stored.request.types) == ("unlink", (("USER_DEFINED", 9),))

    def test_singular_and_type_id_forms_share_a_lane(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], int]
    ) -> None:
        """deal, deals and 0-3 are one object type: their associations wait in one lane."""
        items = [
            {**GOOD, "fromObjectType": t, "toObjectType": c}
            for t, c in (("deal", "contact"), ("0-3", "0-1"), ("DEALS", "contacts"))
        ]
        assert post(client, {"associations": items}).status_code == 202
        assert expand() == 3
        assert len(waiting(redis_client, "_|deals|contacts")) == 3


class TestRefuses:
    """Each bad input gets its documented 4xx and nothing reaches Redis."""

    @pytest.fixture(autouse=True)
    def _nothing_stored(self, redis_client: redis_lib.Redis) -> Iterator[None]:
        """After each refusal, nothing but the refusal counter is in Redis: no work, no wake-up, no job."""
        yield
        keys = {k.decode() for k in redis_client.keys("*")}
        assert keys <= {"hl:m:requests_refused"}

    def test_missing_token_is_401(self, client: FlaskClient) -> None:
        """No Authorization header answers 401 unauthorized."""
        response = post(client, {"associations": [GOOD]}, token=None)
        assert response.status_code == 401 and error_code(response) == "unauthorized"

    def test_wrong_token_is_401(self, client: FlaskClient) -> None:
        """A wrong bearer token answers 401."""
        response = post(client, {"associations": [GOOD]}, token="nope")
        assert response.status_code == 401 and error_code(response) == "unauthorized"

    def test_malformed_json_is_400(self, client: FlaskClient) -> None:
        """A body that is not JSON answers 400 malformed_json."""
        response = post(client, None, raw=b'{"associations": [')
        assert response.status_code == 400 and error_code(response) == "malformed_json"

    def test_non_utf8_body_is_400(self, client: FlaskClient) -> None:
        """Bytes that are not UTF-8 answer 400."""
        response = post(client, None, raw=b'{"a": "\xff"}')
        assert response.status_code == 400

    def test_deep_nesting_is_400(self, client: FlaskClient) -> None:
        """JSON nested absurdly deep answers 400, not 500."""
        response = post(client, None, raw=b"[" * 3000 + b"]" * 3000)
        assert response.status_code in (400, 413)

    def test_not_json_content_type_is_415(self, client: FlaskClient) -> None:
        """A form content type answers 415."""
        response = post(client, {"associations": [GOOD]}, content_type="application/x-www-form-urlencoded")
        assert response.status_code == 415 and error_code(response) == "unsupported_media_type"

    def test_oversize_body_is_413(self, client: FlaskClient) -> None:
        """A body over HUBLINK_MAX_BODY_BYTES answers 413 before it is read."""
        response = post(client, None, raw=b'{"associations": "' + b"x" * 20000 + b'"}')
        assert response.status_code == 413 and error_code(response) == "payload_too_large"

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"associations": [{**GOOD, "fromObjectId": "12a"}]}, "/associations/0/fromObjectId"),
            ({"associations": [{**GOOD, "fromObjectId": 123}]}, "/associations/0/fromObjectId"),
            ({"associations": [{**GOOD, "toObjectType": "../../admin"}]}, "/associations/0/toObjectType"),
            ({"associations": [{**GOOD, "toObjectId": "1" * 21}]}, "/associations/0/toObjectId"),
            ({"associations": [GOOD, "x"]}, "/associations/1"),
            ({"associations": []}, "/associations"),
            ({"associations": [GOOD] * 101}, "/associations"),
            ({"associations": [{**GOOD, "acton": "unlink"}]}, "/associations/0/acton"),
            ({"associations": [{**GOOD, "action": "remove"}]}, "/associations/0/action"),
            ({"associations": [{**GOOD, "types": [{"associationTypeId": 5}]}]}, "/associations/0/types"),
        ],
    )
    def test_invalid_items_are_422_with_per_item_details(self, client: FlaskClient, body: Any, field: str) -> None:
        """Invalid items answer 422 naming each bad field, and no item of the request is stored."""
        response = post(client, body)
        assert response.status_code == 422
        assert error_code(response) == "invalid_input"
        assert field in [d["field"] for d in response.get_json()["error"]["details"]]

    def test_a_json_array_instead_of_an_object_is_400(self, client: FlaskClient) -> None:
        """A top-level array is refused as malformed for this endpoint."""
        assert post(client, [GOOD]).status_code == 400


class TestRedisDown:
    """Without Redis, intake answers 503 and never 2xx."""

    def test_unreachable_redis_is_503(self, make_settings: Callable[..., Settings]) -> None:
        """With nothing listening at REDIS_URL, a valid request answers 503 store_unavailable."""
        from tests.support.processes import free_port

        app = create_app(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.5))
        with app.test_client() as c:
            response = post(c, {"associations": [GOOD]})
        assert response.status_code == 503 and error_code(response) == "store_unavailable"
        assert response.headers["Retry-After"]


class TestReplicas:
    """With HUBLINK_REDIS_MIN_REPLICAS, a 2xx means that many replicas hold the request."""

    def test_too_few_replicas_is_503_not_replicated(
        self, make_settings: Callable[..., Settings], redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """A primary with no replica cannot confirm one: 503 not_replicated with Retry-After, stored all the same."""
        app = create_app(make_settings(redis_url=redis_url, redis_min_replicas=1, redis_wait_ms=20))
        with app.test_client() as c:
            response = post(c, {"associations": [GOOD]})
        app.extensions["hublink"].redis.close()
        assert response.status_code == 503 and error_code(response) == "not_replicated"
        assert response.json["error"]["details"] == {"replicas": 0, "wanted": 1}
        assert response.headers["Retry-After"]
        assert redis_client.xlen("hl:inbox") == 1  # on the primary: a retry is deduplicated downstream

    def test_no_replicas_asked_is_one_xadd(self, client: FlaskClient, redis_client: redis_lib.Redis) -> None:
        """With the default of 0 replicas, intake sends no WAIT at all."""
        before = redis_client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
        assert post(client, {"associations": [GOOD]}).status_code == 202
        assert redis_client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0) == before
