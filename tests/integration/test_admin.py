"""The dashboard with Flask's test client on a real Redis: login, CSRF, pages, filters, confirmed replay and purge."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest
import redis as redis_lib
from flask.testing import FlaskClient

from hublink.config.settings import Settings
from hublink.delivery.rate_limit import RedisRateLimiter
from hublink.domain.associations import AssociationRequest
from hublink.domain.dead_letter import DeadLetter
from hublink.domain.errors import RateHeaders
from hublink.domain.limits import RateLimit
from hublink.domain.times import iso
from hublink.lanes import Claimed, LaneStore, Outcome, PendingItem
from hublink.ops.metrics import Metrics
from hublink.store.connections import text
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN, API_TOKEN
from tests.integration.helpers import expand_all, make_expander, waiting
from tests.support.processes import free_port
from web import create_app

pytestmark = pytest.mark.integration
LANE = "_|deals|contacts"


def seed(
    redis_url: str,
    n: int = 1,
    *,
    start: int = 1,
    source: str = "api",
    status: int = 404,
    category: str = "OBJECT_NOT_FOUND",
    message: str = "resource not found",
    dead_at_s: float | None = None,
) -> list[str]:
    """Dead-letter ``n`` associations (deals ``start``.. to contact 1) through settle.lua; return their ids.

    The letters have the shape drain.py writes: the association, HubSpot's error fields, two attempts.
    """
    client = redis_lib.Redis.from_url(redis_url)
    dead_ms = int((dead_at_s or time.time()) * 1000)
    outcomes, ids, pending = [], [], []
    for i in range(start, start + n):
        request = AssociationRequest.create(
            from_object_type="deals",
            from_object_id=str(i),
            to_object_type="contacts",
            to_object_id="1",
            source=source,
            received_at=time.time(),
        )
        association_id = f"{i:032x}"
        pending.append(PendingItem(request, association_id=association_id))
        attempts = [
            {"at": iso(dead_ms - 1000), "outcome": "retry", "error": "ServerError", "status": 502, "delayS": 0.5},
            {
                "at": iso(dead_ms),
                "outcome": "dead",
                "error": "NotFoundError",
                "status": status,
                "category": category,
                "correlationId": f"corr-{i}",
                "message": message,
            },
        ]
        letter = {
            "id": association_id,
            "kind": "association",
            "association": {
                "portalId": None,
                "fromObjectType": "deals",
                "fromObjectId": str(i),
                "toObjectType": "contacts",
                "toObjectId": "1",
            },
            "source": source,
            "sourceEventId": None,
            "reason": f"permanent: {status} {category}",
            "error": "NotFoundError",
            "status": status,
            "category": category,
            "subCategory": None,
            "message": message,
            "correlationId": f"corr-{i}",
            "missingScopes": ["crm.objects.deals.write"] if status == 403 else [],
            "attemptCount": 2,
            "attempts": attempts,
            "replays": 0,
            "firstSeen": iso(dead_ms - 2000),
            "firstSeenMs": dead_ms - 2000,
            "lastSeen": iso(dead_ms),
            "deadAt": iso(dead_ms),
            "deadAtMs": dead_ms,
            "record": request.as_record(),
        }
        item = Claimed(association_id, request, 2, attempts, dead_ms - 2000, 0)
        outcomes.append(Outcome(item=item, kind="dead", dead_letter=DeadLetter.from_wire(letter)))
        ids.append(association_id)
    lanes = LaneStore(client, Keys(), lease_s=30, dead_letter_ttl_s=86400, dead_letter_max=1_000_000)
    lanes.enqueue_items([(None, pending)])
    lanes.claim(LANE, len(pending))  # leased, as a drain holds what it settles
    lanes.settle(LANE, outcomes)
    # settle.lua scores letters by the time it ran; put them where ``dead_at_s`` says for the time filters.
    client.zadd("hl:dlq", {i: dead_ms for i in ids})
    client.close()
    return ids


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str) -> Settings:
    """Settings on the test's database with a fixed secret key."""
    return make_settings(redis_url=redis_url, secret_key="test-secret-key")


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    """A test client (cookies kept between requests)."""
    return create_app(settings).test_client()


def csrf(client: FlaskClient, path: str) -> str:
    """The CSRF token the page at ``path`` renders."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match, path
    return match.group(1)


def login(client: FlaskClient, token: str = ADMIN_TOKEN) -> str:
    """Log in; return the session's CSRF token."""
    response = client.post("/admin/login", data={"token": token, "csrf_token": csrf(client, "/admin/login")})
    assert response.status_code == 302, response.get_data(as_text=True)
    return csrf(client, "/admin")


def page(client: FlaskClient, path: str) -> str:
    """The HTML of a page that must answer 200."""
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def dead(redis_client: redis_lib.Redis) -> set[str]:
    """Ids in the dead-letter index."""
    return {text(m) for m in redis_client.zrange("hl:dlq", 0, -1)}


class TestLogin:
    """Who gets in, for how long, and how they leave."""

    @pytest.mark.parametrize("path", ["/admin", "/admin/dead-letters", f"/admin/dead-letters/{1:032x}"])
    def test_every_page_redirects_to_login_without_a_session(self, client: FlaskClient, path: str) -> None:
        """Without a session each page redirects to the login page, naming itself as the way back."""
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/admin/login?next=")

    def test_a_wrong_token_is_refused(self, client: FlaskClient) -> None:
        """A wrong token shows the login page again with a message, and the pages stay closed."""
        html = client.post("/admin/login", data={"token": "nope", "csrf_token": csrf(client, "/admin/login")}).get_data(
            as_text=True
        )
        assert "Wrong token." in html
        assert client.get("/admin").status_code == 302

    def test_the_right_token_opens_the_page_that_was_asked_for(self, client: FlaskClient) -> None:
        """After login the operator lands on the admin page that sent them to log in."""
        token = csrf(client, "/admin/login")
        response = client.post(
            "/admin/login?next=/admin/dead-letters?status=403", data={"token": ADMIN_TOKEN, "csrf_token": token}
        )
        assert response.headers["Location"] == "/admin/dead-letters?status=403"
        assert client.get("/admin").status_code == 200

    @pytest.mark.parametrize("target", ["https://evil.example/admin", "//evil.example/admin", "/api/associations"])
    def test_next_never_leaves_the_dashboard(self, client: FlaskClient, target: str) -> None:
        """A ``next`` outside /admin on this site is ignored: login goes to the overview."""
        token = csrf(client, "/admin/login")
        response = client.post(f"/admin/login?next={target}", data={"token": ADMIN_TOKEN, "csrf_token": token})
        assert response.headers["Location"] == "/admin"

    def test_the_session_cookie_is_httponly_lax_and_expires_in_hours(self, client: FlaskClient) -> None:
        """The session cookie is HttpOnly, SameSite=Lax, and lasts eight hours, not Flask's 31 days."""
        token = csrf(client, "/admin/login")
        cookie = client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": token}).headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        expires = re.search(r"Expires=([^;]+)", cookie)
        assert expires, cookie
        hours = (parsedate_to_datetime(expires.group(1)) - datetime.now(UTC)).total_seconds() / 3600
        assert 7.9 < hours <= 8.0

    def test_logging_out_ends_the_session(self, client: FlaskClient) -> None:
        """After logout the pages redirect to login again."""
        token = login(client)
        assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
        assert client.get("/admin").status_code == 302

    def test_changing_the_admin_token_ends_existing_sessions(self, settings: Settings) -> None:
        """A session started with the old token is not accepted once HUBLINK_ADMIN_TOKEN changes."""
        old = create_app(settings).test_client()
        login(old)
        cookie = old.get_cookie("session")
        assert cookie is not None
        rotated = create_app(replace(settings, admin_token="a-new-admin-token-0123456789")).test_client()
        rotated.set_cookie("session", cookie.value)
        assert rotated.get("/admin").status_code == 302

    def test_without_an_admin_token_the_dashboard_is_disabled(
        self, make_settings: Callable[..., Settings], redis_url: str
    ) -> None:
        """With HUBLINK_ADMIN_TOKEN unset the login page says so and no token, not even empty, gets in."""
        client = create_app(make_settings(redis_url=redis_url, admin_token=None)).test_client()
        assert "dashboard is disabled" in page(client, "/admin/login")
        for token in ("", ADMIN_TOKEN):
            client.post("/admin/login", data={"token": token, "csrf_token": csrf(client, "/admin/login")})
            assert client.get("/admin").status_code == 302


class TestCsrf:
    """Every POST carries the session's CSRF token, or is refused with 400 and changes nothing."""

    @pytest.mark.parametrize(
        "action",
        [
            f"/admin/dead-letters/{1:032x}/replay",
            f"/admin/dead-letters/{1:032x}/purge",
            "/admin/dead-letters/bulk/replay",
            "/admin/dead-letters/bulk/purge",
        ],
    )
    @pytest.mark.parametrize("sent", [None, "", "forged"], ids=["missing", "empty", "wrong"])
    def test_an_action_without_the_token_is_400_and_changes_nothing(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis, action: str, sent: str | None
    ) -> None:
        """Replay or purge, one or by filter, with a missing, empty or wrong token: 400, the letter stays."""
        [letter_id] = seed(redis_url)
        login(client)
        data = {"confirmed": "yes", "source": "api"} | ({} if sent is None else {"csrf_token": sent})
        response = client.post(action, data=data)
        assert response.status_code == 400
        assert "CSRF" in response.get_data(as_text=True)
        assert dead(redis_client) == {letter_id}
        assert len(waiting(redis_client, f"{LANE}")) == 0

    def test_another_sessions_token_is_refused(
        self, settings: Settings, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """A token from another operator's session does not work in this one."""
        [letter_id] = seed(redis_url)
        app = create_app(settings)
        mine, theirs = app.test_client(), app.test_client()
        login(mine)
        their_token = login(theirs)
        response = mine.post(
            f"/admin/dead-letters/{letter_id}/purge", data={"csrf_token": their_token, "confirmed": "yes"}
        )
        assert response.status_code == 400
        assert dead(redis_client) == {letter_id}

    def test_login_and_logout_need_the_token_too(self, client: FlaskClient) -> None:
        """Login without the token is refused (no login CSRF), and so is logout."""
        assert client.post("/admin/login", data={"token": ADMIN_TOKEN}).status_code == 400
        assert client.get("/admin").status_code == 302
        login(client)
        assert client.post("/admin/logout").status_code == 400
        assert client.get("/admin").status_code == 200

    def test_logging_in_gives_a_new_token(self, client: FlaskClient) -> None:
        """The token used on the login form is replaced when the session is granted."""
        before = csrf(client, "/admin/login")
        client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": before})
        assert csrf(client, "/admin") != before


class TestOverview:
    """The first page: depths, charts, headroom, recent failures."""

    def test_it_shows_queue_depths_per_lane(self, client: FlaskClient, settings: Settings) -> None:
        """A request in the inbox is counted; once a worker expanded it, its associations are its lane's depth."""
        items = [
            {"fromObjectType": "deals", "fromObjectId": str(i), "toObjectType": "contacts", "toObjectId": "1"}
            for i in range(1, 4)
        ]
        response = client.post(
            "/api/associations", json={"associations": items}, headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        assert response.status_code == 202
        login(client)
        assert '<b id="inbox">1</b>' in page(client, "/admin")
        assert sum(r.associations for r in expand_all(make_expander(settings))) == 3
        html = page(client, "/admin")
        assert '<b id="inbox">0</b>' in html
        assert '<b id="pending">3</b>' in html
        assert re.search(r"<code>[^<]*deals\|contacts</code></td><td>3</td>", html)

    def test_it_charts_the_last_hour_from_the_series(self, client: FlaskClient, redis_client: redis_lib.Redis) -> None:
        """Linked and failed counts of the last hour become the cards and one SVG bar per minute."""
        metrics, now = Metrics(redis_client, Keys()), time.time()
        metrics.apply(
            [
                metrics.series_op("linked", 30, at_s=now),
                metrics.series_op("failed", 10, at_s=now),
                metrics.series_op("hubspot_429", 2, at_s=now - 120),
            ]
        )
        login(client)
        html = page(client, "/admin")
        assert '<b id="linked">30</b>' in html
        assert '<b id="error-rate">25.0 %</b>' in html
        assert html.count('<rect class="linked"') == 60
        assert html.count('<rect class="errors"') == 60
        assert "UTC: 25.0 % failed" in html
        assert "UTC: 2 429 answers" in html

    def test_it_shows_headroom_per_bucket(self, client: FlaskClient, redis_client: redis_lib.Redis) -> None:
        """What HubSpot's rate-limit headers last said about a bucket is drawn as the share left."""
        limiter = RedisRateLimiter(redis_client, Keys(), margin=0.1)
        limiter.observe("app-1234", RateLimit(100, 10), RateHeaders(max=100, remaining=25, interval_ms=10_000))
        login(client)
        html = page(client, "/admin")
        assert "<code>app-1234</code>" in html
        assert "25 of 100 left per 10 s" in html
        assert '<rect class="free" width="75" height="16"/>' in html  # a quarter of 300 px

    def test_it_lists_recent_failures(self, client: FlaskClient, redis_url: str) -> None:
        """The dead-letter count and the newest dead letters are on the first page."""
        ids = seed(redis_url, 2)
        login(client)
        html = page(client, "/admin")
        assert '<b id="dead-count">2</b>' in html
        assert all(f'id="letter-{i}"' in html for i in ids)

    def test_without_redis_it_answers_503(self, client: FlaskClient, settings: Settings) -> None:
        """When Redis does not answer, a logged-in operator's page says so with a 503 instead of failing.

        (Sessions live in Redis, so the session is started while Redis answers, then used without it.)
        """
        login(client)
        cookie = client.get_cookie("session")
        assert cookie is not None
        down = create_app(
            replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.5)
        ).test_client()
        down.set_cookie("session", cookie.value)
        response = down.get("/admin")
        assert response.status_code == 503
        assert "Redis is not answering" in response.get_data(as_text=True)


class TestPages:
    """What every admin answer promises: escaping and headers."""

    def test_what_hubspot_said_is_escaped(self, client: FlaskClient, redis_url: str) -> None:
        """Markup in a dead letter's fields is shown as text, never run."""
        [letter_id] = seed(redis_url, message="<script>alert(1)</script>", category='"><img src=x onerror=1>')
        login(client)
        for path in ("/admin", "/admin/dead-letters", f"/admin/dead-letters/{letter_id}"):
            html = page(client, path)
            assert "<script>alert" not in html
            assert "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page(client, f"/admin/dead-letters/{letter_id}")

    def test_pages_are_not_cached_framed_or_given_scripts(self, client: FlaskClient) -> None:
        """Admin answers forbid caching, framing and scripts, and the pages contain no script."""
        login(client)
        response = client.get("/admin")
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert "<script" not in response.get_data(as_text=True)

    def test_the_stylesheet_is_served_without_a_session(self, client: FlaskClient) -> None:
        """The login page's stylesheet loads before anyone has logged in."""
        response = client.get("/admin/static/admin.css")
        assert response.status_code == 200
        assert response.mimetype == "text/css"
        response.close()

    def test_the_admin_token_never_appears_in_a_page(self, client: FlaskClient, redis_url: str) -> None:
        """No page renders the admin token, the API token or the secret key."""
        [letter_id] = seed(redis_url)
        login(client)
        for path in ("/admin/login", "/admin", "/admin/dead-letters", f"/admin/dead-letters/{letter_id}"):
            html = page(client, path)
            assert ADMIN_TOKEN not in html
            assert API_TOKEN not in html
            assert "test-secret-key" not in html


class TestDeadLetters:
    """The list, its filters and paging, one letter's page, and the confirmed actions."""

    def test_a_letter_shows_its_attempt_history(self, client: FlaskClient, redis_url: str) -> None:
        """A letter's page shows HubSpot's error fields and one row per attempt."""
        [letter_id] = seed(redis_url, status=403, category="MISSING_SCOPES")
        login(client)
        html = page(client, f"/admin/dead-letters/{letter_id}")
        assert f'<code id="letter-id">{letter_id}</code>' in html
        assert '<td id="status">403</td>' in html
        assert "MISSING_SCOPES" in html
        assert "crm.objects.deals.write" in html
        assert html.count('class="attempt"') == 2
        assert "corr-1" in html

    def test_an_unknown_letter_is_a_404_page(self, client: FlaskClient) -> None:
        """A letter that is gone answers 404 with a page that says why."""
        login(client)
        response = client.get(f"/admin/dead-letters/{7:032x}")
        assert response.status_code == 404
        assert "replayed, purged or has expired" in response.get_data(as_text=True)

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("status=403", {50}),
            ("category=MISSING_SCOPES", {50}),
            ("source=hubspot", {60}),
            ("since={middle}", {50, 60}),
            ("until={middle}", {1}),
            ("since={middle_iso}", {50, 60}),
            ("source=api&status=404", {1}),
        ],
    )
    def test_filters_select_letters(self, client: FlaskClient, redis_url: str, query: str, expected: set[int]) -> None:
        """Each of the API's filters, alone or together, lists exactly the matching letters."""
        now = int(time.time())
        seed(redis_url, 1, start=1, status=404, dead_at_s=now - 3 * 3600)
        seed(redis_url, 1, start=50, status=403, category="MISSING_SCOPES", dead_at_s=now - 3600)
        seed(redis_url, 1, start=60, source="hubspot", dead_at_s=now - 3600)
        middle = now - 2 * 3600
        login(client)
        query = query.format(middle=middle, middle_iso=iso(middle * 1000))
        html = page(client, f"/admin/dead-letters?{query}")
        assert {int(i, 16) for i in re.findall(r'id="letter-([0-9a-f]{32})"', html)} == expected

    def test_a_bad_filter_lists_nothing_and_says_why(self, client: FlaskClient, redis_url: str) -> None:
        """An unreadable filter lists nothing (not everything) and names the field."""
        seed(redis_url, 2)
        login(client)
        html = page(client, "/admin/dead-letters?since=yesterday")
        assert "Bad filter, nothing listed: since:" in html
        assert 'class="letter"' not in html

    def test_pages_follow_the_cursor(self, client: FlaskClient, redis_url: str) -> None:
        """Sixty letters are listed fifty to a page, newest first, with a link to the next page."""
        now = time.time()
        for i in range(1, 61):
            seed(redis_url, 1, start=i, dead_at_s=now - 61 + i)
        login(client)
        first = page(client, "/admin/dead-letters")
        found = re.findall(r'id="letter-([0-9a-f]{32})"', first)
        assert [int(i, 16) for i in found] == list(range(60, 10, -1))
        cursor = re.search(r'href="(/admin/dead-letters\?cursor=[^"]+)" id="next-page"', first)
        assert cursor
        second = page(client, cursor.group(1).replace("&amp;", "&"))
        assert [int(i, 16) for i in re.findall(r'id="letter-([0-9a-f]{32})"', second)] == list(range(10, 0, -1))
        assert 'id="next-page"' not in second

    def test_replaying_one_needs_confirmation(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """Replay shows a confirmation page first; confirming moves the letter back to its lane."""
        [letter_id] = seed(redis_url)
        token = login(client)
        asked = client.post(f"/admin/dead-letters/{letter_id}/replay", data={"csrf_token": token})
        assert "Confirm: replay 1 dead letter?" in asked.get_data(as_text=True)
        assert dead(redis_client) == {letter_id}
        done = client.post(f"/admin/dead-letters/{letter_id}/replay", data={"csrf_token": token, "confirmed": "yes"})
        assert done.status_code == 302
        assert dead(redis_client) == set()
        assert letter_id in waiting(redis_client, f"{LANE}")
        assert f"Replayed {letter_id}." in page(client, "/admin/dead-letters")

    def test_purging_one_needs_confirmation(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """Purge shows a confirmation page first; confirming deletes the letter and nothing else."""
        keep, gone = seed(redis_url, 2)
        token = login(client)
        asked = client.post(f"/admin/dead-letters/{gone}/purge", data={"csrf_token": token})
        assert "Confirm: purge 1 dead letter?" in asked.get_data(as_text=True)
        assert dead(redis_client) == {keep, gone}
        client.post(f"/admin/dead-letters/{gone}/purge", data={"csrf_token": token, "confirmed": "yes"})
        assert dead(redis_client) == {keep}
        assert redis_client.exists(f"hl:dl:{gone}") == 0
        assert len(waiting(redis_client, f"{LANE}")) == 0

    def test_bulk_replay_shows_the_count_then_replays_those(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """Bulk replay by filter shows how many match, then replays exactly those."""
        seed(redis_url, 3, status=404)
        forbidden = seed(redis_url, 2, start=50, status=403)
        token = login(client)
        asked = client.post("/admin/dead-letters/bulk/replay", data={"csrf_token": token, "status": "403"})
        assert "Confirm: replay 2 dead letters?" in asked.get_data(as_text=True)
        assert redis_client.zcard("hl:dlq") == 5
        client.post("/admin/dead-letters/bulk/replay", data={"csrf_token": token, "status": "403", "confirmed": "yes"})
        assert redis_client.zcard("hl:dlq") == 3
        assert set(waiting(redis_client, LANE)) == set(forbidden)

    def test_bulk_purge_shows_the_count_then_purges_those(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """Bulk purge by filter shows the dry-run count, then deletes exactly those."""
        kept = seed(redis_url, 3, status=404)
        seed(redis_url, 2, start=50, status=403)
        token = login(client)
        asked = client.post("/admin/dead-letters/bulk/purge", data={"csrf_token": token, "status": "403"})
        assert "Confirm: purge 2 dead letters?" in asked.get_data(as_text=True)
        assert redis_client.zcard("hl:dlq") == 5
        client.post("/admin/dead-letters/bulk/purge", data={"csrf_token": token, "status": "403", "confirmed": "yes"})
        assert dead(redis_client) == set(kept)

    def test_a_filter_that_matches_nothing_offers_nothing_to_confirm(self, client: FlaskClient, redis_url: str) -> None:
        """When no letter matches, the confirmation page says so and has no confirm button."""
        seed(redis_url, 1)
        token = login(client)
        html = client.post("/admin/dead-letters/bulk/purge", data={"csrf_token": token, "status": "500"}).get_data(
            as_text=True
        )
        assert "Nothing to purge" in html
        assert 'id="confirm"' not in html

    def test_purging_without_a_filter_is_refused(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """Bulk purge with no filter is refused from the browser, even confirmed."""
        seed(redis_url, 2)
        token = login(client)
        client.post("/admin/dead-letters/bulk/purge", data={"csrf_token": token, "confirmed": "yes"})
        assert redis_client.zcard("hl:dlq") == 2
        assert "Give a filter to purge by" in page(client, "/admin/dead-letters")

    @pytest.mark.parametrize("action", ["replay", "purge"])
    def test_a_bad_filter_does_nothing(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis, action: str
    ) -> None:
        """A confirmed bulk action with an unreadable filter acts on nothing (never on everything)."""
        ids = seed(redis_url, 2)
        token = login(client)
        client.post(
            f"/admin/dead-letters/bulk/{action}", data={"csrf_token": token, "status": "4o4", "confirmed": "yes"}
        )
        assert dead(redis_client) == set(ids)
        assert "Bad filter, nothing done: status:" in page(client, "/admin/dead-letters")
