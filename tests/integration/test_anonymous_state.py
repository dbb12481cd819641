"""No request without a valid session or credential leaves anything in Redis, on gunicorn as the Procfile runs it.

An anonymous client that could make the server store something per request could fill Redis to
``maxmemory``, and a full Redis refuses signed webhooks too. The login form's CSRF token therefore lives in
a signed cookie; only a logged-in dashboard session is kept server-side.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis as redis_lib
import requests

from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def keys_of(redis: redis_lib.Redis) -> set[str]:
    """Every key of the test's database, as text."""
    return {k.decode() for k in redis.scan_iter(count=1000)}


def counters(keys: set[str]) -> set[str]:
    """The keys that are fixed counters (refusals counted per reason, per-minute series): bounded, not per request."""
    return {k for k in keys if k.startswith(("hl:m:", "hl:ts:"))}


def anonymous_pages(url: str, count: int) -> None:
    """``count`` dashboard pages without a cookie: the login form, and a page that sends there."""
    with requests.Session() as client:
        for n in range(count):
            client.cookies.clear()
            path = "/admin/login" if n % 3 else "/admin/dead-letters"
            assert client.get(url + path, timeout=30).status_code == 200


class TestAnonymousRequests:
    """Requests without a session or credential store nothing per request."""

    def test_300_anonymous_login_pages_store_no_session(self, stack: Stack, redis_client: redis_lib.Redis) -> None:
        """300 GET /admin/login without a cookie (and pages that redirect there): no key is added but counters."""
        url = stack.gunicorn()
        before = keys_of(redis_client)
        anonymous_pages(url, 300)
        added = keys_of(redis_client) - before
        assert not added - counters(added), sorted(added)[:10]

    @pytest.mark.faults
    def test_a_flood_of_anonymous_login_pages_leaves_redis_as_it_was(
        self, stack: Stack, redis_client: redis_lib.Redis
    ) -> None:
        """3,000 cookie-less login pages from 10 clients at once: Redis holds no more than its counters after."""
        url = stack.gunicorn()
        before = keys_of(redis_client)
        used = int(redis_client.info("memory")["used_memory"])
        with ThreadPoolExecutor(10) as clients:
            list(clients.map(lambda _: anonymous_pages(url, 300), range(10)))
        added = keys_of(redis_client) - before
        assert not added - counters(added), sorted(added)[:10]
        # About 240 bytes a session would have been 700 kB; counters and allocator noise stay far below.
        assert int(redis_client.info("memory")["used_memory"]) - used < 200_000

    def test_the_login_form_still_logs_in_with_its_cookie_held_token(
        self, stack: Stack, redis_client: redis_lib.Redis
    ) -> None:
        """The login form's token comes back in a signed cookie: logging in works, and only then is a session stored."""
        url = stack.gunicorn()
        with requests.Session() as client:
            form = client.get(f"{url}/admin/login", timeout=10).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert token
            assert not list(redis_client.scan_iter(match="hl:session:*"))
            forged = client.post(
                f"{url}/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": "x" + token.group(1)}, timeout=10
            )
            assert forged.status_code == 400
            answer = client.post(
                f"{url}/admin/login",
                data={"token": ADMIN_TOKEN, "csrf_token": token.group(1)},
                allow_redirects=False,
                timeout=10,
            )
            assert answer.status_code == 302, answer.text[:300]
            assert client.get(f"{url}/admin", timeout=10).status_code == 200
        assert len(list(redis_client.scan_iter(match="hl:session:*"))) == 1
