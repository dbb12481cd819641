"""The dashboard with Flask's test client on a real Redis: login, CSRF, confirmations, replay and purge."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import redis as redis_lib
from flask.testing import FlaskClient

from hublink.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.integration.test_dead_letters import seed
from web import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def client(make_settings: Callable[..., Settings], redis_url: str) -> FlaskClient:
    """A test client (cookies kept between requests)."""
    return create_app(make_settings(redis_url=redis_url, secret_key="test-secret-key")).test_client()


def csrf(client: FlaskClient, path: str) -> str:
    """The CSRF token a page renders."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match, path
    return match.group(1)


def login(client: FlaskClient) -> None:
    """Log in with the admin token."""
    token = csrf(client, "/admin/login")
    response = client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": token})
    assert response.status_code == 302


class TestAccess:
    """Who may see and do what."""

    def test_pages_redirect_to_login(self, client: FlaskClient) -> None:
        """Without a session, /admin redirects to the login page."""
        response = client.get("/admin")
        assert response.status_code == 302
        assert "/admin/login" in response.headers["Location"]

    def test_wrong_token_is_refused(self, client: FlaskClient) -> None:
        """A wrong token shows the login page again, and /admin stays closed."""
        token = csrf(client, "/admin/login")
        page = client.post("/admin/login", data={"token": "nope", "csrf_token": token})
        assert "Wrong token" in page.get_data(as_text=True)
        assert client.get("/admin").status_code == 302

    def test_a_post_without_csrf_is_400_and_changes_nothing(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """Replay with a missing or wrong CSRF token answers 400; the dead letter stays."""
        [letter_id] = seed(redis_url, 1)
        login(client)
        for data in ({"confirmed": "yes"}, {"confirmed": "yes", "csrf_token": "forged"}):
            assert client.post(f"/admin/dead-letters/{letter_id}/replay", data=data).status_code == 400
        assert redis_client.zscore("hl:dlq", letter_id) is not None


class TestPages:
    """What the pages show and do."""

    def test_overview_shows_depths_and_charts(self, client: FlaskClient, redis_url: str) -> None:
        """The overview renders counts, SVG charts and recent failures."""
        seed(redis_url, 2)
        login(client)
        html = client.get("/admin").get_data(as_text=True)
        assert '<b id="dead-count">2</b>' in html
        assert "<svg" in html
        assert "deals/1" in html

    def test_replay_one_needs_confirmation(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """Replay shows a confirmation page first; confirming moves the letter back to its lane."""
        [letter_id] = seed(redis_url, 1)
        login(client)
        token = csrf(client, f"/admin/dead-letters/{letter_id}")
        page = client.post(f"/admin/dead-letters/{letter_id}/replay", data={"csrf_token": token})
        assert "Confirm: replay 1" in page.get_data(as_text=True)
        assert redis_client.zscore("hl:dlq", letter_id) is not None
        done = client.post(f"/admin/dead-letters/{letter_id}/replay", data={"csrf_token": token, "confirmed": "yes"})
        assert done.status_code == 302
        assert redis_client.zscore("hl:dlq", letter_id) is None
        assert redis_client.zscore("hl:lane:_|deals|contacts", letter_id) is not None

    def test_bulk_purge_by_filter_with_count(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """Bulk purge shows the dry-run count for the filter, then deletes exactly those."""
        seed(redis_url, 3, status=404)
        seed(redis_url, 2, status=403, start=50)
        login(client)
        token = csrf(client, "/admin/dead-letters?status=403")
        page = client.post("/admin/dead-letters/bulk/purge", data={"csrf_token": token, "status": "403"})
        assert "Confirm: purge 2" in page.get_data(as_text=True)
        client.post("/admin/dead-letters/bulk/purge", data={"csrf_token": token, "status": "403", "confirmed": "yes"})
        assert redis_client.zcard("hl:dlq") == 3

    def test_purge_without_a_filter_is_refused(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """Bulk purge with no filter is not offered from the browser."""
        seed(redis_url, 2)
        login(client)
        token = csrf(client, "/admin/dead-letters")
        client.post("/admin/dead-letters/bulk/purge", data={"csrf_token": token, "confirmed": "yes"})
        assert redis_client.zcard("hl:dlq") == 2

    def test_filters_select_letters(self, client: FlaskClient, redis_url: str) -> None:
        """The status filter lists only matching letters."""
        seed(redis_url, 1, status=404)
        seed(redis_url, 1, status=403, start=50)
        login(client)
        html = client.get("/admin/dead-letters?status=403").get_data(as_text=True)
        assert html.count('class="letter"') == 1
        assert "deals/50" in html
