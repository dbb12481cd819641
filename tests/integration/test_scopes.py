"""Scopes on every API route, read from the URL map: a route without one, or one that lets the wrong caller
in, fails here (routes added later are checked the same way: nothing here lists them)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from hublink.config.settings import Settings
from tests.conftest import ADMIN_TOKEN, API_TOKEN
from web import create_app
from web.callers import SCOPES, api_clients

pytestmark = pytest.mark.integration
#: Values tried for a URL variable, the first its converter accepts is used (besides an ``any(...)``'s own).
SAMPLES = ("1", "a" * 32, "1764331200000-0", "deals", "_|deals|contacts", "ci")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def api_rules(app: Flask) -> list[Rule]:
    """Every rule under /api."""
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/") or rule.rule == "/api"]


def sample_path(rule: Rule) -> str:
    """A path that ``rule`` matches, each variable filled with the first sample its converter accepts."""
    values: dict[str, str] = {}
    for name, converter in rule._converters.items():
        candidates = [*getattr(converter, "items", ()), *SAMPLES]
        found = next((c for c in candidates if re.fullmatch(converter.regex, c)), None)
        assert found is not None, f"{rule.rule}: no sample fits <{name}> ({converter.regex}); add one to SAMPLES"
        values[name] = found
    built = rule.build(values, append_unknown=False)
    assert built is not None, rule.rule
    return built[1]


def routes(app: Flask) -> list[tuple[str, str, str]]:
    """(method, path, required scope) for every method of every /api route."""
    found = []
    for rule in api_rules(app):
        scope = getattr(app.view_functions[rule.endpoint], "required_scope", None)
        for method in sorted((rule.methods or set()) & set(METHODS)):
            found.append((method, sample_path(rule), str(scope)))
    return found


@pytest.fixture
def app(make_settings: Any, redis_url: str) -> Flask:
    """The app on the test's Redis, with the two built-in tokens."""
    settings: Settings = make_settings(redis_url=redis_url)
    return create_app(settings)


@pytest.fixture
def tokens(app: Flask) -> dict[str, str]:
    """One API client per scope, holding only that scope: scope -> token."""
    out = {}
    with app.app_context():
        for scope in SCOPES:
            _, out[scope] = api_clients().create(f"only-{scope.replace(':', '-')}", [scope])
    return out


def call(client: FlaskClient, method: str, path: str, token: str | None) -> Any:
    """One request, with a bearer token when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.open(path, method=method, headers=headers)


def test_every_api_route_declares_a_known_scope(app: Flask) -> None:
    """Each /api view carries ``required_scope`` (set by ``@requires``), and it is one of SCOPES."""
    rules = api_rules(app)
    assert len(rules) >= 10  # the URL map was read, not an empty one
    missing = [rule.rule for rule in rules if not hasattr(app.view_functions[rule.endpoint], "required_scope")]
    assert missing == [], f"routes without @requires(scope): {missing}"
    for rule in rules:
        assert app.view_functions[rule.endpoint].required_scope in SCOPES


def test_no_token_is_401_everywhere(app: Flask) -> None:
    """Without a bearer token every /api route answers 401 ``unauthorized``."""
    client = app.test_client()
    for method, path, _ in routes(app):
        response = call(client, method, path, None)
        assert response.status_code == 401, (method, path, response.get_json())
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_a_client_without_the_scope_gets_403_naming_it(app: Flask, tokens: dict[str, str]) -> None:
    """A valid token of a client lacking the route's scope: 403 ``forbidden`` whose details name that scope."""
    client = app.test_client()
    for method, path, scope in routes(app):
        for held, token in tokens.items():
            if held in (scope, "admin"):
                continue
            response = call(client, method, path, token)
            assert response.status_code == 403, (method, path, held, response.get_json())
            error = response.get_json()["error"]
            assert error["code"] == "forbidden"
            assert error["details"]["scope"] == scope
            assert scope in error["message"]


def test_a_client_with_only_that_scope_gets_in(app: Flask, tokens: dict[str, str]) -> None:
    """A client holding just the route's scope passes the check (whatever the view then answers)."""
    client = app.test_client()
    for method, path, scope in routes(app):
        response = call(client, method, path, tokens[scope])
        assert response.status_code not in (401, 403), (method, path, scope, response.get_json())


def test_the_built_in_tokens_keep_their_rights(app: Flask) -> None:
    """HUBLINK_API_TOKEN opens only ``associations:write``; HUBLINK_ADMIN_TOKEN opens every route."""
    client = app.test_client()
    for method, path, scope in routes(app):
        api = call(client, method, path, API_TOKEN)
        if scope == "associations:write":
            assert api.status_code not in (401, 403), (method, path)
        else:
            assert api.status_code == 403, (method, path)
            assert api.get_json()["error"]["details"] == {"scope": scope, "caller": "api"}
        assert call(client, method, path, ADMIN_TOKEN).status_code not in (401, 403), (method, path)


def test_wrong_client_tokens_are_throttled_like_wrong_admin_tokens(app: Flask, tokens: dict[str, str]) -> None:
    """Ten wrong ``hl_`` tokens from one address: the eleventh attempt is a 429, the right token too."""
    client = app.test_client()
    right = tokens["events:read"]
    wrong = right[:-4] + ("AAAA" if not right.endswith("AAAA") else "BBBB")
    for _ in range(10):
        assert call(client, "GET", "/api/events", wrong).status_code == 401
    refused = call(client, "GET", "/api/events", right)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_attempts"


def test_openapi_names_each_operations_scope(app: Flask) -> None:
    """openapi.yaml's ``apiClient`` requirement of every /api operation is the scope its route enforces."""
    import pathlib

    import yaml

    spec = yaml.safe_load((pathlib.Path(__file__).parents[2] / "openapi.yaml").read_text())
    declared = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for requirement in operation.get("security", []) if isinstance(operation, dict) else []:
                if "apiClient" in requirement:
                    declared[(re.sub(r"\{[^}]+\}", "{}", path), method.upper())] = requirement["apiClient"]
    checked = 0
    for rule in api_rules(app):
        scope = app.view_functions[rule.endpoint].required_scope
        shapes = [rule.rule]
        for name, converter in rule._converters.items():
            options = getattr(converter, "items", None)
            if options:  # an any(...) converter: one documented path per choice
                shapes = [s.replace(re.search(rf"<[^<>]*:{name}>", s).group(0), o) for s in shapes for o in options]  # type: ignore[union-attr]
        for shape in shapes:
            normalized = re.sub(r"<[^<>]+>", "{}", shape)
            for method in sorted((rule.methods or set()) & set(METHODS)):
                assert declared.get((normalized, method)) == [scope], (method, shape)
                checked += 1
    assert checked >= 25
