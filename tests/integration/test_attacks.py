"""Hardening under attack and faults (issue 12), against real gunicorn processes and real Redis servers.

A full Redis answers JSON 503s and /readyz says so; oversized chunked bodies and bodies cut short are
never processed; guessing admin tokens is throttled; a copied cookie is worthless after logout; query
credentials never reach the access log; and an Idempotency-Key makes a retry store nothing new.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests
from flask.testing import FlaskClient

from hublink.config.settings import Settings
from hublink.domain import signatures
from tests.conftest import ADMIN_TOKEN, API_TOKEN
from tests.integration.conftest import Stack, env_for
from tests.integration.helpers import assoc
from tests.support.processes import REPO, RedisServer, python, wait_for
from web import create_app
from web.throttle import PER_ADDRESS_LIMIT, TOTAL_LIMIT, WINDOW_S

pytestmark = pytest.mark.integration

SECRET = "client-secret-for-attacks"
WF_KEY = "workflow-query-key-0123456789"
FORM_SECRET = "form-secret-for-attacks-0123"
RULES = """\
sources:
  workflow:
    auth: {type: api_key, name: auth_key, in: query, key_env: ATTACK_WF_KEY}
  forms:
    signed:
      auth: {type: hmac, header: X-Signature, secret_env: ATTACK_FORM_SECRET, encoding: hex,
             timestamp_header: X-Request-TS}
    tokened:
      auth: {type: token, header: X-HubLink-Token, token_env: ATTACK_FORM_SECRET}
rules:
  - name: workflow-links
    source: workflow
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "contact_id"}
  - name: form-links
    source: "forms:*"
    associations:
      - from: {objectType: contacts, id: "contact_id"}
        to: {objectType: companies, id: "company_id"}
"""
API = {"Authorization": f"Bearer {API_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def rules_file(tmp_path: Path) -> str:
    """The attack rules on disk: a workflow key in the query string, an HMAC form and a token form."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return str(path)


@pytest.fixture
def web_env(rules_file: str) -> dict[str, str]:
    """What gunicorn needs besides the stack's settings: the rules, their secrets, the client secret."""
    return {
        "HUBLINK_RULES_FILE": rules_file,
        "HUBSPOT_CLIENT_SECRET": SECRET,
        "ATTACK_WF_KEY": WF_KEY,
        "ATTACK_FORM_SECRET": FORM_SECRET,
    }


def intake_requests(url: str) -> dict[str, Callable[[], requests.Response]]:
    """One valid request per intake endpoint, each sent afresh when called."""
    api_body = json.dumps({"associations": [assoc(1)]}).encode()
    hubspot_body = json.dumps(
        [{"eventId": 1, "subscriptionId": 7, "portalId": 62515, "occurredAt": 1764331200000,
          "subscriptionType": "deal.creation", "objectId": 5001}]
    ).encode()  # fmt: skip
    form_body = json.dumps({"contact_id": "11", "company_id": "22"}).encode()

    def hubspot() -> requests.Response:
        """A v3-signed app webhook batch."""
        ts = int(time.time() * 1000)
        headers = {
            "X-HubSpot-Signature-v3": signatures.sign_v3(SECRET, "POST", f"{url}/webhooks/hubspot", hubspot_body, ts),
            "X-HubSpot-Request-Timestamp": str(ts),
            "Content-Type": "application/json",
        }
        return requests.post(f"{url}/webhooks/hubspot", data=hubspot_body, headers=headers, timeout=10)

    def signed_form() -> requests.Response:
        """A form signed with its HMAC over timestamp and body."""
        ts = str(int(time.time()))
        signature = signatures.sign_hmac_sha256(FORM_SECRET, signatures.signed_form_payload(form_body, ts), "hex")
        # Lower-case names: the configured X-Signature / X-Request-TS must match whatever the sender's case.
        headers = {"x-signature": signature, "x-request-ts": ts, "Content-Type": "application/json"}
        return requests.post(f"{url}/webhooks/forms/signed", data=form_body, headers=headers, timeout=10)

    return {
        "api": lambda: requests.post(
            f"{url}/api/associations", data=api_body, headers={**API, "Content-Type": "application/json"}, timeout=10
        ),
        "api-idempotent": lambda: requests.post(
            f"{url}/api/associations",
            data=api_body,
            headers={**API, "Content-Type": "application/json", "Idempotency-Key": "full-redis-1"},
            timeout=10,
        ),
        "hubspot": hubspot,
        "workflow": lambda: requests.post(
            f"{url}/webhooks/workflow?auth_key={WF_KEY}", json={"objectId": 5001, "contact_id": "7001"}, timeout=10
        ),
        "form-hmac": signed_form,
        "form-token": lambda: requests.post(
            f"{url}/webhooks/forms/tokened",
            data=form_body,
            headers={"x-hublink-token": FORM_SECRET, "Content-Type": "application/json"},
            timeout=10,
        ),
    }


def stored_work(client: redis_lib.Redis) -> list[str]:
    """Keys that would mean a request was stored (the inbox, lanes, association state, idempotency keys)."""
    return sorted(
        k.decode()
        for k in client.keys("hl:*")
        if k.decode().startswith(("hl:inbox", "hl:q:", "hl:lane:", "hl:a:", "hl:idem:", "hl:seen:"))
    )


class TestFullRedis:
    """Redis at maxmemory with noeviction: 503s, never 500s, and a 4xx stays a 4xx."""

    def test_every_intake_endpoint_answers_json_503_and_readyz_503(
        self, stack: Stack, tmp_path: Path, web_env: dict[str, str]
    ) -> None:
        """With every write refused (OOM), each intake endpoint answers JSON 503 store_full with Retry-After,
        /readyz answers 503, a malformed request still gets its 400, and nothing is stored; once memory is
        freed the same requests are accepted."""
        server = RedisServer(tmp_path / "full").start()
        try:
            url = stack.gunicorn(**web_env, REDIS_URL=server.url)
            client = redis_lib.Redis(port=server.port)
            requests_ = intake_requests(url)
            assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", 1)

            for name, send in requests_.items():
                response = send()
                assert response.status_code == 503, (name, response.status_code, response.text)
                assert response.json()["error"]["code"] == "store_full", name
                assert int(response.headers["Retry-After"]) > 0, name
            ready = requests.get(f"{url}/readyz", timeout=10)
            assert ready.status_code == 503
            assert "StoreFullError" in ready.json()["problems"][0]
            malformed = requests.post(
                f"{url}/api/associations",
                data=b"{nope",
                headers={**API, "Content-Type": "application/json"},
                timeout=10,
            )
            assert malformed.status_code == 400
            assert malformed.json()["error"]["code"] == "malformed_json"
            assert stored_work(client) == []

            client.config_set("maxmemory", 0)
            assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
            assert [send().status_code for send in requests_.values()] == [202, 202, 200, 200, 200, 200]
        finally:
            server.stop()

    def test_a_read_only_replica_answers_503_store_unavailable(
        self, stack: Stack, tmp_path: Path, web_env: dict[str, str]
    ) -> None:
        """Pointed at a read-only replica (what a failover can leave behind), intake answers JSON 503
        store_unavailable with Retry-After and /readyz answers 503; nothing is stored."""
        master = RedisServer(tmp_path / "master").start()
        replica = RedisServer(tmp_path / "replica").start()
        try:
            client = redis_lib.Redis(port=replica.port)
            client.replicaof("127.0.0.1", str(master.port))
            url = stack.gunicorn(**web_env, REDIS_URL=replica.url)
            for name, send in intake_requests(url).items():
                response = send()
                assert response.status_code == 503, (name, response.status_code, response.text)
                assert response.json()["error"]["code"] == "store_unavailable", name
                assert response.headers["Retry-After"] == "5", name
            ready = requests.get(f"{url}/readyz", timeout=10)
            assert ready.status_code == 503
            assert "ReadOnlyError" in ready.json()["problems"][0]
            assert stored_work(redis_lib.Redis(port=master.port)) == []
        finally:
            replica.stop()
            master.stop()


def raw_exchange(port: int, head: bytes, body: bytes, *, half_close: bool = False) -> bytes:
    """Send ``head`` and ``body`` on a raw socket and read the answer until the server closes (or resets)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


def port_of(url: str) -> int:
    """The port of a base URL."""
    return int(url.rsplit(":", 1)[1])


def api_head(extra: str) -> bytes:
    """The request line and headers of an authenticated JSON POST /api/associations, plus ``extra`` lines."""
    return (
        "POST /api/associations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


class TestBodies:
    """Bodies over the limit or cut short are never processed."""

    LIMIT = 4096

    def test_a_chunked_body_over_the_limit_is_413_and_not_stored(
        self, stack: Stack, redis_client: redis_lib.Redis
    ) -> None:
        """A chunked body one chunk past HUBLINK_MAX_BODY_BYTES answers 413 payload_too_large (it used to be
        cut at the limit and processed), and nothing reaches Redis."""
        url = stack.gunicorn(HUBLINK_MAX_BODY_BYTES=str(self.LIMIT))
        payload = json.dumps({"associations": [assoc(1)]}).encode()
        payload += b" " * (self.LIMIT + 900 - len(payload))  # valid JSON, and so are its first LIMIT bytes:
        # cut there, as it used to be, it was accepted. One chunk, no terminator: the server must refuse on
        # the size alone, without waiting for the end.
        answer = raw_exchange(
            port_of(url), api_head("Transfer-Encoding: chunked\r\n"), b"%x\r\n" % len(payload) + payload
        )
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 413"), answer[:300]
        assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "payload_too_large"
        assert stored_work(redis_client) == []

    def test_a_chunked_body_within_the_limit_is_accepted(self, stack: Stack, redis_client: redis_lib.Redis) -> None:
        """Chunked bodies as such are fine: one under the limit is accepted (202) and stored once."""
        url = stack.gunicorn(HUBLINK_MAX_BODY_BYTES=str(self.LIMIT))
        parts = [b'{"associations": [', json.dumps(assoc(2)).encode(), b"]}"]
        response = requests.post(
            f"{url}/api/associations", data=iter(parts), headers={**API, "Content-Type": "application/json"}, timeout=10
        )
        assert response.request.headers.get("Transfer-Encoding") == "chunked"
        assert response.status_code == 202, response.text
        assert redis_client.xlen("hl:inbox") == 1

    def test_a_body_cut_short_is_never_processed(self, stack: Stack, redis_client: redis_lib.Redis) -> None:
        """Content-Length larger than what arrives (the client stops sending): 400 incomplete_body, and
        nothing stored, even though what did arrive is valid JSON."""
        url = stack.gunicorn()
        payload = json.dumps({"associations": [assoc(3)]}).encode()
        answer = raw_exchange(
            port_of(url), api_head(f"Content-Length: {len(payload) + 50}\r\n"), payload, half_close=True
        )
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]  # it used to be a 202: processed
        assert b'"incomplete_body"' in answer
        assert stored_work(redis_client) == []


def login_form(session: requests.Session, url: str) -> str:
    """GET the login page in ``session``; return its CSRF token."""
    html = session.get(f"{url}/admin/login", timeout=10).text
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def log_in(session: requests.Session, url: str, token: str = ADMIN_TOKEN, next_: str = "") -> requests.Response:
    """POST the login form in ``session`` (redirects not followed)."""
    csrf = login_form(session, url)
    query = f"?next={next_}" if next_ else ""
    return session.post(
        f"{url}/admin/login{query}", data={"token": token, "csrf_token": csrf}, allow_redirects=False, timeout=10
    )


def refused(client: redis_lib.Redis, reason: str) -> int:
    """How many refusals with ``reason`` the shared counters hold."""
    return sum(int(v) for k, v in client.hgetall("hl:m:requests_refused").items() if reason in k.decode())


class TestBruteForce:
    """Guessing the admin token is throttled in Redis, so every web process counts together."""

    def test_failed_logins_are_throttled_per_address(self, stack: Stack, redis_client: redis_lib.Redis) -> None:
        """After 10 wrong tokens from one address, even the right token is refused 429 with Retry-After for
        the rest of the window; the refusal is logged and counted."""
        url = stack.gunicorn()
        session = requests.Session()
        csrf = login_form(session, url)
        for i in range(PER_ADDRESS_LIMIT):
            wrong = session.post(f"{url}/admin/login", data={"token": f"guess-{i}", "csrf_token": csrf}, timeout=10)
            assert wrong.status_code == 200 and "Wrong token." in wrong.text, i
        right = session.post(
            f"{url}/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf}, allow_redirects=False, timeout=10
        )
        assert right.status_code == 429
        assert 0 < int(right.headers["Retry-After"]) <= WINDOW_S
        assert refused(redis_client, "too_many_attempts") == 1
        wait_for(lambda: "admin login throttled" in stack.processes[-1].output(), timeout=10, what="the log line")

    def test_wrong_admin_api_tokens_are_throttled_per_address(
        self, stack: Stack, redis_client: redis_lib.Redis
    ) -> None:
        """After 10 wrong bearer tokens on the dead-letter API, the right one is refused with JSON 429
        too_many_attempts and Retry-After; a missing token is not counted as a guess."""
        url = stack.gunicorn()
        for _ in range(3):
            assert requests.get(f"{url}/api/dead-letters", timeout=10).status_code == 401
        for i in range(PER_ADDRESS_LIMIT):
            wrong = requests.get(f"{url}/api/dead-letters", headers={"Authorization": f"Bearer g{i}"}, timeout=10)
            assert wrong.status_code == 401, i
        right = requests.get(f"{url}/api/dead-letters", headers=ADMIN, timeout=10)
        assert right.status_code == 429
        assert right.json()["error"]["code"] == "too_many_attempts"
        assert 0 < int(right.headers["Retry-After"]) <= WINDOW_S
        assert refused(redis_client, "too_many_attempts") == 1
        wait_for(lambda: "admin token throttled" in stack.processes[-1].output(), timeout=10, what="the log line")

    def test_failures_from_many_addresses_are_bounded_in_total(
        self, make_settings: Callable[..., Settings], redis_url: str
    ) -> None:
        """Spread over many addresses, 100 failures in the window close the admin API to every address."""
        client: FlaskClient = create_app(make_settings(redis_url=redis_url)).test_client()

        def get(address: str, token: str) -> Any:
            """GET the dead-letter list from ``address`` with ``token``."""
            return client.get(
                "/api/dead-letters",
                headers={"Authorization": f"Bearer {token}"},
                environ_base={"REMOTE_ADDR": address},
            )

        for i in range(TOTAL_LIMIT):
            assert get(f"10.0.{i // 250}.{i % 250}", "guess").status_code == 401
        fresh = get("192.0.2.1", ADMIN_TOKEN)
        assert fresh.status_code == 429
        assert fresh.get_json()["error"]["code"] == "too_many_attempts"


class TestStolenCookie:
    """Sessions live in Redis: a copied cookie dies with the session."""

    def test_a_cookie_copied_before_logout_opens_nothing_after_it(self, stack: Stack) -> None:
        """The cookie holds only a random id; after logout the same cookie, sent from elsewhere, redirects to login."""
        url = stack.gunicorn()
        operator = requests.Session()
        assert log_in(operator, url).status_code == 302
        stolen = operator.cookies["session"]
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", stolen)
        assert (
            requests.get(f"{url}/admin", cookies={"session": stolen}, allow_redirects=False, timeout=10).status_code
            == 200
        )
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', operator.get(f"{url}/admin", timeout=10).text)
        assert csrf
        logout = operator.post(
            f"{url}/admin/logout", data={"csrf_token": csrf.group(1)}, allow_redirects=False, timeout=10
        )
        assert logout.status_code == 302
        thief = requests.get(f"{url}/admin", cookies={"session": stolen}, allow_redirects=False, timeout=10)
        assert thief.status_code == 302
        assert "/admin/login" in thief.headers["Location"]

    def test_revoke_all_ends_every_session(self, stack: Stack, settings: Settings) -> None:
        """``flask --app web admin sessions revoke --all`` ends every logged-in session at once."""
        url = stack.gunicorn()
        sessions = [requests.Session() for _ in range(2)]
        for s in sessions:
            assert log_in(s, url).status_code == 302
            assert s.get(f"{url}/admin", allow_redirects=False, timeout=10).status_code == 200
        done = subprocess.run(
            [python(), "-m", "flask", "--app", "web", "admin", "sessions", "revoke", "--all"],
            env={**env_for(settings), "PATH": "/usr/bin:/bin"},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "revoked" in done.stdout
        for s in sessions:
            assert s.get(f"{url}/admin", allow_redirects=False, timeout=10).status_code == 302

    @pytest.mark.parametrize(
        ("overrides", "secure"),
        [({}, False), ({"public_url": "https://hub.example"}, True), ({"cookie_secure": True}, True)],
    )
    def test_the_cookie_is_secure_behind_https(
        self, make_settings: Callable[..., Settings], redis_url: str, overrides: dict[str, Any], secure: bool
    ) -> None:
        """The session cookie is Secure when HUBLINK_PUBLIC_URL is https or HUBLINK_COOKIE_SECURE is true."""
        client = create_app(make_settings(redis_url=redis_url, **overrides)).test_client()
        html = client.get("/admin/login").get_data(as_text=True)
        match = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert match
        response = client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": match.group(1)})
        assert response.status_code == 302
        assert ("; Secure" in response.headers["Set-Cookie"]) is secure

    def test_a_next_with_crlf_is_not_followed_and_not_a_500(self, stack: Stack) -> None:
        """``next=/admin/%0D%0ASet-Cookie:%20x=1`` with the right token logs in and goes to /admin, no header split."""
        url = stack.gunicorn()
        response = log_in(requests.Session(), url, next_="/admin/%0D%0ASet-Cookie:%20x=1")
        assert response.status_code == 302
        assert response.headers["Location"] == "/admin"
        assert "x=1" not in response.headers.get("Set-Cookie", "")


class TestSecretsInUrls:
    """Query credentials never reach a log line."""

    def test_query_keys_are_redacted_in_the_gunicorn_access_log(self, stack: Stack, web_env: dict[str, str]) -> None:
        """The workflow's ``auth_key`` (right or wrong) and ``hapikey`` appear as [REDACTED] in the access log."""
        url = stack.gunicorn(**web_env)
        body = {"objectId": 5001, "contact_id": "7001"}
        assert requests.post(f"{url}/webhooks/workflow?auth_key={WF_KEY}", json=body, timeout=10).status_code == 200
        wrong = requests.post(f"{url}/webhooks/workflow?x=1&auth_key=wrong-guess-4711", json=body, timeout=10)
        assert wrong.status_code == 401
        assert requests.get(f"{url}/healthz?hapikey=legacy-key-0815", timeout=10).status_code == 200
        gunicorn = stack.processes[-1]
        wait_for(lambda: gunicorn.output().count("[REDACTED]") >= 3, timeout=10, what="three access lines")
        output = gunicorn.output()
        assert "auth_key=[REDACTED]" in output
        assert "hapikey=[REDACTED]" in output
        for secret in (WF_KEY, "wrong-guess-4711", "legacy-key-0815", FORM_SECRET):
            assert secret not in output


class TestIdempotency:
    """Idempotency-Key on POST /api/associations."""

    @pytest.fixture
    def url(self, stack: Stack) -> str:
        """A running web process."""
        return stack.gunicorn()

    @staticmethod
    def post(url: str, items: list[dict[str, str]], key: str | None) -> requests.Response:
        """POST the items with ``key`` as the Idempotency-Key (none when None)."""
        headers = {**API, "Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        body = json.dumps({"associations": items}).encode()
        return requests.post(f"{url}/api/associations", data=body, headers=headers, timeout=10)

    def test_a_retry_answers_the_first_answer_and_stores_nothing(self, url: str, redis_client: redis_lib.Redis) -> None:
        """The same key and body again: the same status and body (the same ids), and one inbox entry only."""
        first = self.post(url, [assoc(1), assoc(2)], "order-42")
        again = self.post(url, [assoc(1), assoc(2)], "order-42")
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert redis_client.xlen("hl:inbox") == 1
        ttl = redis_client.ttl(next(iter(redis_client.keys("hl:idem:*"))))
        assert 86_000 < ttl <= 86_400

    def test_the_same_key_with_another_body_is_422(self, url: str, redis_client: redis_lib.Redis) -> None:
        """Reusing a key for another body answers 422 idempotency_key_reused and stores nothing."""
        assert self.post(url, [assoc(1)], "k-1").status_code == 202
        other = self.post(url, [assoc(9)], "k-1")
        assert other.status_code == 422
        assert other.json()["error"]["code"] == "idempotency_key_reused"
        assert redis_client.xlen("hl:inbox") == 1

    @pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9"])
    def test_a_malformed_key_is_400(self, url: str, key: str, redis_client: redis_lib.Redis) -> None:
        """A key that is empty, over 255 characters or not printable ASCII is a 400 and stores nothing."""
        headers = {**API, "Content-Type": "application/json", "Idempotency-Key": key}
        response = requests.post(
            f"{url}/api/associations",
            data=json.dumps({"associations": [assoc(1)]}).encode(),
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_idempotency_key"
        assert redis_client.xlen("hl:inbox") == 0

    def test_concurrent_duplicates_store_once(self, url: str, redis_client: redis_lib.Redis) -> None:
        """Eight copies sent at once with one key: every answer carries the same ids, and one entry is stored."""
        barrier = threading.Barrier(8)
        answers: list[requests.Response] = []
        lock = threading.Lock()

        def send() -> None:
            """Wait for the others, then post the shared key."""
            barrier.wait(timeout=10)
            response = self.post(url, [assoc(5), assoc(6)], "burst-1")
            with lock:
                answers.append(response)

        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert [a.status_code for a in answers] == [202] * 8
        assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
        assert redis_client.xlen("hl:inbox") == 1
