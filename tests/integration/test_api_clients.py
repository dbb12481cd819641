"""API clients on a real Redis: created, listed, rotated and revoked over HTTP, from the command line and in
the store; tokens shown once and kept hashed; two tokens during a rotation; every change audited."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import redis as redis_lib
from click.testing import CliRunner, Result
from flask import Flask
from flask.cli import ScriptInfo

from hublink.config.settings import Settings
from hublink.ops.api_clients import TOUCH_EVERY_S, ApiClientError, ApiClientStore
from hublink.store.connections import text
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN
from web import create_app
from web.callers import SCOPES
from web.cli.main import cli

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def settings(make_settings: Any, redis_url: str) -> Settings:
    """Settings on the test's Redis."""
    built: Settings = make_settings(redis_url=redis_url)
    return built


@pytest.fixture
def app(settings: Settings) -> Flask:
    """The app on the test's Redis."""
    return create_app(settings)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def audited(redis_client: redis_lib.Redis) -> list[tuple[str, str, str]]:
    """The audit stream's (actor, action, target), oldest first."""
    return [
        (text(f[b"actor"]), text(f[b"action"]), text(f[b"target"]))
        for _, f in redis_client.xrange(Keys().audit)  # type: ignore[union-attr]
    ]


def run(settings: Settings, *args: str) -> Result:
    """``hublink ARGS`` in process, with the app built from ``settings``."""
    info = ScriptInfo(create_app=lambda: create_app(settings), set_debug_flag=False)
    return CliRunner().invoke(cli, list(args), obj=info)


class FakeClock:
    """A clock the test moves."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        """The current fake time."""
        return self.now


class TestOverHttp:
    """``/api/api-clients``, scope ``admin``."""

    def test_create_answers_the_token_once_and_it_opens_its_scopes_only(
        self, app: Flask, redis_client: redis_lib.Redis
    ) -> None:
        """201 with an ``hl_`` token that reads events but cannot replay them; stored only as its SHA-256."""
        client = app.test_client()
        made = client.post("/api/api-clients", json={"name": "ci", "scopes": ["events:read"]}, headers=ADMIN)
        assert made.status_code == 201, made.get_json()
        body = made.get_json()
        token = body["token"]
        assert token.startswith("hl_") and body["scopes"] == ["events:read"] and body["last_used_ms"] is None
        assert client.get("/api/events", headers=bearer(token)).status_code == 200
        refused = client.post("/api/events/replay", json={}, headers=bearer(token))
        assert refused.status_code == 403 and refused.get_json()["error"]["details"]["scope"] == "events:replay"
        dump = b"".join(
            json.dumps({text(k): text(v) for k, v in redis_client.hgetall(key).items()}).encode()  # type: ignore[union-attr]
            for key in redis_client.keys("hl:api*")
            if redis_client.type(key) == b"hash"
        )
        assert token.encode() not in dump
        assert hashlib.sha256(token.encode()).hexdigest().encode() in dump

    def test_the_list_never_shows_a_token_or_its_hash(self, app: Flask) -> None:
        """GET lists names, scopes and token ids; neither the token nor its digest appears in it."""
        client = app.test_client()
        token = client.post("/api/api-clients", json={"name": "ci", "scopes": "events:read,pause:write"}, headers=ADMIN)
        secret = token.get_json()["token"]
        listed = client.get("/api/api-clients", headers=ADMIN)
        assert listed.status_code == 200
        raw = listed.get_data(as_text=True)
        assert secret not in raw and hashlib.sha256(secret.encode()).hexdigest() not in raw
        (item,) = listed.get_json()["items"]
        assert item["name"] == "ci" and item["scopes"] == ["events:read", "pause:write"]

    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            ({"name": "ci", "scopes": ["events:write"]}, 400, "invalid_parameter"),
            ({"name": "ci", "scopes": []}, 400, "invalid_parameter"),
            ({"name": "admin", "scopes": ["events:read"]}, 400, "invalid_parameter"),
            ({"name": "Bad Name", "scopes": ["events:read"]}, 400, "invalid_parameter"),
            ({"scopes": ["events:read"]}, 400, "invalid_parameter"),
            ({"name": "ci", "scopes": "events:read"}, 409, "conflict"),
        ],
    )
    def test_bad_creations_are_refused_and_store_nothing_new(
        self, app: Flask, body: dict[str, Any], status: int, code: str
    ) -> None:
        """Unknown scopes, no scopes, a built-in or malformed name, no name, a taken name: precise 4xx."""
        client = app.test_client()
        client.post("/api/api-clients", json={"name": "ci", "scopes": ["pause:write"]}, headers=ADMIN)
        refused = client.post("/api/api-clients", json=body, headers=ADMIN)
        assert refused.status_code == status and refused.get_json()["error"]["code"] == code
        names = [c["name"] for c in client.get("/api/api-clients", headers=ADMIN).get_json()["items"]]
        assert names == ["ci"]

    def test_rotation_keeps_both_tokens_until_the_old_one_is_revoked(
        self, app: Flask, redis_client: redis_lib.Redis
    ) -> None:
        """rotate: old and new both work; DELETE ?token=old: only the new one; DELETE: neither. All audited."""
        client = app.test_client()
        old = client.post("/api/api-clients", json={"name": "ci", "scopes": ["events:read"]}, headers=ADMIN)
        old_token = old.get_json()["token"]
        rotated = client.post("/api/api-clients/ci/rotate", json={"window_s": 3600}, headers=ADMIN)
        assert rotated.status_code == 201 and rotated.get_json()["rotating"] is True
        new_token = rotated.get_json()["token"]
        for token in (old_token, new_token):
            assert client.get("/api/events", headers=bearer(token)).status_code == 200
        for window in (True, "soon", 0, -5, 31 * 86_400):
            bad = client.post("/api/api-clients/ci/rotate", json={"window_s": window}, headers=ADMIN)
            assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_parameter", window
        again = client.post("/api/api-clients/ci/rotate", json={}, headers=ADMIN)
        assert again.status_code == 409  # a third token would cut off a caller still on the first
        ended = client.delete("/api/api-clients/ci?token=old", headers=ADMIN)
        assert ended.status_code == 200
        assert client.get("/api/events", headers=bearer(old_token)).status_code == 401
        assert client.get("/api/events", headers=bearer(new_token)).status_code == 200
        assert client.delete("/api/api-clients/ci", headers=ADMIN).status_code == 200
        assert client.get("/api/events", headers=bearer(new_token)).status_code == 401
        assert client.delete("/api/api-clients/ci", headers=ADMIN).status_code == 404
        assert [(a, t) for _, a, t in audited(redis_client)] == [
            ("api_client.create", "ci"),
            ("api_client.rotate", "ci"),
            ("api_client.revoke", "ci (old token)"),
            ("api_client.revoke", "ci"),
        ]
        assert {actor for actor, _, _ in audited(redis_client)} == {"admin"}

    def test_an_api_client_with_admin_manages_clients_and_is_the_audited_actor(
        self, app: Flask, redis_client: redis_lib.Redis
    ) -> None:
        """A client holding ``admin`` creates another; the audit entry names it, not the built-in admin."""
        client = app.test_client()
        ops = client.post("/api/api-clients", json={"name": "ops", "scopes": ["admin"]}, headers=ADMIN)
        made = client.post(
            "/api/api-clients", json={"name": "ci", "scopes": ["events:read"]}, headers=bearer(ops.get_json()["token"])
        )
        assert made.status_code == 201
        assert audited(redis_client)[-1] == ("ops", "api_client.create", "ci")


class TestStore:
    """The store's own rules: expiry of an old token, last use at most once a minute."""

    def test_the_old_token_stops_at_the_end_of_the_window(self, redis_client: redis_lib.Redis) -> None:
        """Before the window ends both tokens are found; after it only the new one, and list shows one token."""
        clock = FakeClock()
        store = ApiClientStore(redis_client, Keys(), scopes=SCOPES, clock=clock)
        _, old = store.create("ci", ["events:read"])
        _, new = store.rotate("ci", 600)
        clock.now += 599
        assert store.find(old) is not None and store.find(new) is not None
        clock.now += 2
        assert store.find(old) is None
        found = store.find(new)
        assert found is not None and found.name == "ci" and found.scopes == {"events:read"}
        (listed,) = store.every()
        assert len(listed.tokens) == 1 and not listed.rotating

    def test_last_use_is_written_at_most_once_a_minute(self, redis_client: redis_lib.Redis) -> None:
        """Touching twice within a minute writes once; after a minute, again; a revoked client is not revived."""
        clock = FakeClock()
        store = ApiClientStore(redis_client, Keys(), scopes=SCOPES, clock=clock)
        _, token = store.create("ci", ["events:read"])
        match = store.find(token)
        assert match is not None
        assert store.touch(match) is True
        clock.now += TOUCH_EVERY_S - 1
        assert store.touch(match) is False
        client = store.get("ci")
        assert client is not None and client.last_used_ms == int((clock.now - TOUCH_EVERY_S + 1) * 1000)
        clock.now += 1
        store.revoke("ci")
        assert store.touch(match) is False
        assert not redis_client.exists(Keys().api_client("ci"))

    @pytest.mark.parametrize("token", ["", "hl_", "hl_zzzz_abc", "not-a-token", "hl_0123456789abcdef_" + "A" * 43])
    def test_malformed_or_unknown_tokens_find_nothing(self, redis_client: redis_lib.Redis, token: str) -> None:
        """Tokens of the wrong shape, or of the right shape and unknown, are nobody's."""
        store = ApiClientStore(redis_client, Keys(), scopes=SCOPES)
        store.create("ci", ["events:read"])
        assert store.find(token) is None

    def test_windows_out_of_range_are_refused(self, redis_client: redis_lib.Redis) -> None:
        """A window of 0, a negative one, NaN or beyond 30 days: ApiClientError, nothing rotated."""
        store = ApiClientStore(redis_client, Keys(), scopes=SCOPES)
        store.create("ci", ["events:read"])
        for window in (0, -1, float("nan"), 31 * 86_400):
            with pytest.raises(ApiClientError):
                store.rotate("ci", window)
        client = store.get("ci")
        assert client is not None and not client.rotating


class TestCommands:
    """``hublink api-clients …``."""

    def test_create_prints_the_token_alone_on_the_last_line(self, settings: Settings, app: Flask) -> None:
        """The last line is the token and nothing else; it opens what its scopes allow; list shows the client."""
        made = run(settings, "api-clients", "create", "ci", "--scopes", "associations:write,events:read")
        assert made.exit_code == 0, made.output
        token = made.output.rstrip("\n").splitlines()[-1]
        assert token.startswith("hl_") and " " not in token
        assert app.test_client().get("/api/events", headers=bearer(token)).status_code == 200
        listed = run(settings, "api-clients", "list")
        assert "ci  scopes=associations:write,events:read" in listed.output and token not in listed.output
        as_json = json.loads(run(settings, "api-clients", "list", "--json").output)
        assert as_json["items"][0]["last_used_ms"] is not None  # the request above was its first use

    def test_rotate_and_revoke(self, settings: Settings, app: Flask, redis_client: redis_lib.Redis) -> None:
        """rotate --window 24h prints a second token; revoke --token old ends the first; revoke ends all."""
        first = run(settings, "api-clients", "create", "ci", "--scopes", "events:read").output.splitlines()[-1]
        rotated = run(settings, "api-clients", "rotate", "ci", "--window", "24h")
        assert rotated.exit_code == 0, rotated.output
        second = rotated.output.splitlines()[-1]
        http = app.test_client()
        assert http.get("/api/events", headers=bearer(first)).status_code == 200
        assert run(settings, "api-clients", "revoke", "ci", "--token", "old").exit_code == 0
        assert http.get("/api/events", headers=bearer(first)).status_code == 401
        assert http.get("/api/events", headers=bearer(second)).status_code == 200
        assert run(settings, "api-clients", "revoke", "ci").exit_code == 0
        assert http.get("/api/events", headers=bearer(second)).status_code == 401
        missing = run(settings, "api-clients", "revoke", "ci")
        assert missing.exit_code == 1 and "no API client named 'ci'" in missing.output
        assert [a for _, a, _ in audited(redis_client)] == [
            "api_client.create",
            "api_client.rotate",
            "api_client.revoke",
            "api_client.revoke",
        ]

    def test_bad_window_and_scopes_are_one_line_errors(self, settings: Settings) -> None:
        """An unreadable --window or an unknown scope: exit status 2 or 1, one line, nothing stored."""
        assert run(settings, "api-clients", "create", "ci", "--scopes", "everything").exit_code == 1
        run(settings, "api-clients", "create", "ci", "--scopes", "events:read")
        assert run(settings, "api-clients", "rotate", "ci", "--window", "soon").exit_code == 2
