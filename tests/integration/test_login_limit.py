"""The failed-login limit counts and checks in one step: wrong tokens sent at once are compared at most the limit.

150 clients send a wrong admin token at the same moment, to the admin API and to the dashboard's login form,
on gunicorn as the Procfile runs it. However the requests interleave, no more than the per-address limit of
them are compared with the token; the rest are refused 429 before any comparison.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integration.conftest import Stack
from web.throttle import PER_ADDRESS_LIMIT

pytestmark = pytest.mark.integration
CLIENTS = 150


def at_once(attempt: Callable[[requests.Session], int], prepare: Callable[[requests.Session], None]) -> list[int]:
    """Each of CLIENTS sessions is prepared, then all make their attempt together; the statuses."""
    sessions = [requests.Session() for _ in range(CLIENTS)]
    for session in sessions:
        prepare(session)
    start = threading.Barrier(CLIENTS)

    def run(session: requests.Session) -> int:
        """Wait for every other client, then attempt."""
        start.wait(timeout=60)
        return attempt(session)

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            return list(pool.map(run, sessions))
    finally:
        for session in sessions:
            session.close()


class TestWrongTokensAtOnce:
    """150 wrong tokens at once: at most PER_ADDRESS_LIMIT compared, every other one 429."""

    def test_the_admin_api_compares_at_most_the_limit(self, stack: Stack) -> None:
        """150 wrong bearer tokens at once on /api/events: at most 10 answered 401, the rest 429."""
        url = stack.gunicorn()
        statuses = at_once(
            lambda s: s.get(f"{url}/api/events", headers={"Authorization": "Bearer wrong"}, timeout=60).status_code,
            lambda s: None,
        )
        assert statuses.count(401) <= PER_ADDRESS_LIMIT, statuses.count(401)
        assert statuses.count(401) + statuses.count(429) == CLIENTS, sorted(set(statuses))

    def test_the_login_form_compares_at_most_the_limit(self, stack: Stack) -> None:
        """150 wrong tokens at once on the login form: at most 10 say "Wrong token.", the rest are 429."""
        url = stack.gunicorn()
        tokens: dict[int, str] = {}

        def prepare(session: requests.Session) -> None:
            """Open the login form (its token comes in the session's cookie); keep the token."""
            page = session.get(f"{url}/admin/login", timeout=30).text
            found = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert found
            tokens[id(session)] = found.group(1)

        def attempt(session: requests.Session) -> int:
            """Post a wrong token; 401 stands for "compared and refused" (the form says "Wrong token.")."""
            answer = session.post(
                f"{url}/admin/login", data={"token": "wrong", "csrf_token": tokens[id(session)]}, timeout=60
            )
            return 401 if answer.status_code == 200 and "Wrong token." in answer.text else answer.status_code

        statuses = at_once(attempt, prepare)
        assert statuses.count(401) <= PER_ADDRESS_LIMIT, statuses.count(401)
        assert statuses.count(401) + statuses.count(429) == CLIENTS, sorted(set(statuses))
