"""The audit log on a real Redis: the store (append, pages, filters, retention), one entry for every admin
action done through the API, the dashboard and the CLI, ``GET /api/audit``, ``hublink audit list`` and the
dashboard's Audit page."""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from hublink.config.settings import Settings
from hublink.delivery.pauses import PauseStore
from hublink.domain.times import iso
from hublink.ops import audit as audit_module
from hublink.ops.audit import MAX_PAGE, AuditEntry, AuditFilter, AuditLog
from hublink.ops.backfill import Backfill, RedisBackfills
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import Sim
from tests.integration.test_admin import csrf, login
from tests.integration.test_admin import seed as seed_dead_letters
from tests.integration.test_backfill import RULES
from tests.integration.test_replay import stored_history
from web import create_app

pytestmark = pytest.mark.integration

KEY = "hl:audit"
#: A whole second a day ago: the known times entries are written at (well inside the 90 days kept).
BASE_S = int(time.time()) - 86_400
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLI_ACTOR = f"cli:{getpass.getuser()}"
BACKFILL_ID = "0123456789abcdef"
LANE = "123|deals|contacts"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The integration settings (test's Redis, the simulator) with a rules file holding the backfill's rule."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return replace(settings, rules_file=str(rules), secret_key="test-secret-key")


def entries(redis: redis_lib.Redis) -> list[AuditEntry]:
    """Every entry, newest first, read straight from the stream."""
    log = AuditLog(redis, Keys("hl:"), days=90)
    found, _ = log.page(AuditFilter(), limit=MAX_PAGE)
    return found


# --------------------------------------------------------------------------------------------- the store


@pytest.fixture
def log(redis_client: redis_lib.Redis) -> AuditLog:
    """The audit log on the test's Redis, kept 90 days."""
    return AuditLog(redis_client, Keys("hl:"), days=90)


class TestTheStore:
    """AuditLog on a real Redis: what goes in comes back, newest first, filtered, and goes when its time is up."""

    def test_an_entry_comes_back_with_every_field(self, log: AuditLog) -> None:
        """record() returns the entry's id, and page() gives back actor, action, target, outcome, address, time."""
        before = int(time.time() * 1000)
        entry_id = log.record(actor="admin", action="purge", target="dead-letter 1", outcome="ok", address="10.0.0.1")
        [entry] = log.page(AuditFilter())[0]
        assert entry.id == entry_id
        assert (entry.actor, entry.action, entry.target, entry.outcome, entry.address) == (
            "admin",
            "purge",
            "dead-letter 1",
            "ok",
            "10.0.0.1",
        )
        assert before <= entry.at_ms <= int(time.time() * 1000)
        wire = entry.to_wire()
        assert set(wire) == {"id", "at", "actor", "action", "target", "outcome", "address"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", wire["at"])

    def test_long_fields_are_cut(self, log: AuditLog) -> None:
        """A target longer than 200 characters is kept to its first 200: the log holds names, not payloads."""
        log.record(actor="admin", action="replay", target="x" * 5000)
        [entry] = log.page(AuditFilter())[0]
        assert entry.target == "x" * 200

    def test_pages_are_newest_first_and_the_cursor_walks_them_all_once(self, log: AuditLog) -> None:
        """25 entries in pages of 10: 10, 10, 5, newest first, none twice, and the last page has no cursor."""
        for n in range(25):
            log.record(actor="admin", action="pause", target=f"portal {n}")
        seen: list[str] = []
        sizes = []
        cursor = None
        while True:
            page, cursor = log.page(AuditFilter(), limit=10, cursor=cursor)
            sizes.append(len(page))
            seen.extend(entry.target for entry in page)
            if cursor is None:
                break
        assert sizes == [10, 10, 5]
        assert seen == [f"portal {n}" for n in reversed(range(25))]

    def test_a_full_last_page_has_no_cursor(self, log: AuditLog) -> None:
        """Exactly ``limit`` matches left: no cursor to an empty page."""
        for n in range(10):
            log.record(actor="admin", action="pause", target=f"portal {n}")
        page, cursor = log.page(AuditFilter(), limit=10)
        assert len(page) == 10 and cursor is None

    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            ({"actor": "admin"}, {"a", "c"}),
            ({"actor": "cli:*"}, {"b", "d"}),
            ({"action": "replay"}, {"a", "b"}),
            ({"action": "rules.*"}, {"c"}),
            ({"outcome": "ok"}, {"a", "c", "d"}),
            ({"outcome": "refused"}, {"b"}),
            ({"target": "DEAD-LETTERS"}, {"a", "b"}),
            ({"actor": "admin", "action": "replay"}, {"a"}),
        ],
    )
    def test_filters_select_entries(self, log: AuditLog, values: dict[str, str], expected: set[str]) -> None:
        """Actor and action exactly or by prefix, the outcome's first word, part of the target, together."""
        log.record(actor="admin", action="replay", target="dead-letters status=404 a", outcome="ok: 3 replayed")
        log.record(actor="cli:ops", action="replay", target="dead-letters b", outcome="refused: not found")
        log.record(actor="admin", action="rules.publish", target="rules c", outcome="ok")
        log.record(actor="cli:ops", action="pause", target="portal d", outcome="ok: unchanged")
        page, _ = log.page(AuditFilter.parse(values))
        assert {entry.target.rsplit(" ", 1)[1] for entry in page} == expected

    def test_since_and_until_bound_the_time(self, log: AuditLog, redis_client: redis_lib.Redis) -> None:
        """Entries at known times (stream ids): since and until include their ends, with or without a cursor."""
        for second in (100, 200, 300, 400):
            fields = {"actor": "a", "action": "pause", "target": f"t{second}"}
            redis_client.xadd(KEY, fields, id=f"{(BASE_S + second) * 1000}-0")  # type: ignore[arg-type]
        flt = AuditFilter.parse({"since": str(BASE_S + 200), "until": str(BASE_S + 300)})
        assert [e.target for e in log.page(flt)[0]] == ["t300", "t200"]
        first, cursor = log.page(flt, limit=1)
        assert [e.target for e in first] == ["t300"] and cursor == f"{(BASE_S + 300) * 1000}-0"
        assert [e.target for e in log.page(flt, limit=1, cursor=cursor)[0]] == ["t200"]

    def test_times_before_1970_find_nothing_and_fail_nothing(self, log: AuditLog) -> None:
        """An ISO time in year 1 is read (a negative epoch) and bounds the page like any other."""
        log.record(actor="admin", action="pause", target="portal 1")
        assert log.page(AuditFilter.parse({"until": "0001-01-01T00:00:00Z"})) == ([], None)
        assert len(log.page(AuditFilter.parse({"since": "0001-01-01T00:00:00Z"}))[0]) == 1

    def test_a_rare_filter_answers_a_short_page_with_a_cursor(
        self, log: AuditLog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A page stops reading after MAX_SCANNED entries: what it found, and a cursor to go on from there."""
        monkeypatch.setattr(audit_module, "MAX_SCANNED", 5)
        log.record(actor="admin", action="purge", target="old")
        for n in range(8):
            log.record(actor="admin", action="pause", target=f"portal {n}")
        flt = AuditFilter(action="purge")
        page, cursor = log.page(flt)
        assert page == [] and cursor is not None
        page, cursor = log.page(flt, cursor=cursor)
        assert [e.target for e in page] == ["old"] and cursor is None

    def test_entries_older_than_the_window_are_gone_after_a_write(self, redis_client: redis_lib.Redis) -> None:
        """With a window of about 9 s, an entry a minute old is trimmed by the next write; a fresh one stays."""
        now_ms = int(time.time() * 1000)
        redis_client.xadd(KEY, {"actor": "a", "action": "pause", "target": "old"}, id=f"{now_ms - 60_000}-0")
        redis_client.xadd(KEY, {"actor": "a", "action": "pause", "target": "recent"}, id=f"{now_ms - 1_000}-0")
        log = AuditLog(redis_client, Keys("hl:"), days=0.0001)
        assert [e.target for e in log.page(AuditFilter())[0]] == ["recent"]  # kept until a write, never shown
        log.record(actor="admin", action="resume", target="new")
        assert [e.target for e in log.page(AuditFilter())[0]] == ["new", "recent"]
        assert redis_client.xlen(KEY) == 2

    def test_bad_cursors_and_limits_are_refused(self, log: AuditLog) -> None:
        """A cursor that is not a stream id, and a limit outside 1..1000, raise ValueError naming them."""
        with pytest.raises(ValueError, match="cursor"):
            log.page(AuditFilter(), cursor="abc")
        with pytest.raises(ValueError, match="limit"):
            log.page(AuditFilter(), limit=0)
        with pytest.raises(ValueError, match="limit"):
            log.page(AuditFilter(), limit=MAX_PAGE + 1)

    def test_an_entry_costs_under_150_bytes_of_redis(self, log: AuditLog, redis_client: redis_lib.Redis) -> None:
        """MEMORY USAGE of the stream per entry, with typical fields (docs/operations/audit.md gives the figure)."""
        for n in range(1000):
            log.record(
                actor="session:1a2b3c4d",
                action="replay",
                target=f"dead-letter {n:032x}",
                outcome="ok",
                address="192.168.10.20",
            )
        usage = int(redis_client.memory_usage(KEY, samples=0) or 0)
        assert usage / 1000 < 150, usage


# ------------------------------------------------------------------------------- one entry per action


@dataclass
class World:
    """A HubLink with something to act on: a dead letter, a stored event, paused things, a backfill, an entry
    set aside; the dashboard's client logged in; and the audit log emptied afterwards."""

    app: Flask
    redis: redis_lib.Redis
    web: FlaskClient
    csrf: str
    letter: str

    @property
    def session_actor(self) -> str:
        """The actor the logged-in dashboard session is recorded as."""
        cookie = self.web.get_cookie("session")
        assert cookie is not None
        return "session:" + hashlib.sha256(cookie.value.encode()).hexdigest()[:8]

    def api(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        """An admin API call (a fresh client: no dashboard cookie)."""
        response = self.app.test_client().open(path, method=method, headers=AUTH, **kwargs)
        assert response.status_code < 500, response.get_data(as_text=True)
        return response

    def admin(self, path: str, **data: str) -> TestResponse:
        """A confirmed dashboard action."""
        response = self.web.post(path, data={"csrf_token": self.csrf, "confirmed": "yes", **data})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    def cli(self, *args: str) -> Result:
        """``hublink ARGS`` in process."""
        return self.app.test_cli_runner().invoke(args=list(args))


@pytest.fixture
def world(settings: Settings, redis_client: redis_lib.Redis, redis_url: str, sim: Sim) -> World:
    """Everything the actions act on, a logged-in dashboard, and an empty audit log."""
    [letter] = seed_dead_letters(redis_url)
    stored_history(settings, 1)  # the request 0-1
    pauses = PauseStore(redis_client, Keys("hl:"))
    pauses.pause("portal", "456", "before the test")
    pauses.pause("lane", LANE, "before the test")
    RedisBackfills(redis_client, Keys("hl:")).save(
        Backfill(id=BACKFILL_ID, rule="deal-company", object_type="deals", started_ms=int(time.time() * 1000))
    )
    redis_client.xadd("hl:inbox:failed", {"kind": "events", "body": b"{}", "at": "1", "entry": "1-0", "reason": "x"})
    sim.post(
        "/_sim/records",
        {
            "records": [
                {"objectType": "deals", "id": str(i), "properties": {"company_id": str(9000 + i), "createdate": "1"}}
                for i in range(1, 4)
            ]
        },
    )
    app = create_app(settings)
    web = app.test_client()
    token = login(web)
    redis_client.delete(KEY)
    return World(app=app, redis=redis_client, web=web, csrf=token, letter=letter)


def _ok(result: Result) -> None:
    """The command succeeded (else its output says why)."""
    assert result.exit_code == 0, result.output


#: (surface, what is done, the expected entry: actor, action, target, outcome as a regular expression).
#: ``{letter}`` stands for the dead letter's id, ``{session}`` for the dashboard session's actor.
Case = tuple[str, Callable[[World], Any], tuple[str, str, str, str]]
CASES: dict[str, Case] = {
    # The API, as the admin token's client.
    "api replay one dead letter": (
        "api",
        lambda w: w.api("POST", f"/api/dead-letters/{w.letter}/replay"),
        ("admin", "replay", "dead-letter {letter}", "ok"),
    ),
    "api replay dead letters by filter": (
        "api",
        lambda w: w.api("POST", "/api/dead-letters/replay?status=404"),
        ("admin", "replay", "dead-letters status=404", "ok: 1 replayed"),
    ),
    "api replay a dead letter that is not there": (
        "api",
        lambda w: w.api("POST", f"/api/dead-letters/{'0' * 32}/replay"),
        ("admin", "replay", f"dead-letter {'0' * 32}", "refused: not found"),
    ),
    "api purge one dead letter": (
        "api",
        lambda w: w.api("DELETE", f"/api/dead-letters/{w.letter}"),
        ("admin", "purge", "dead-letter {letter}", "ok"),
    ),
    "api purge dead letters by filter": (
        "api",
        lambda w: w.api("DELETE", "/api/dead-letters", json={"source": "api"}),
        ("admin", "purge", "dead-letters source=api", "ok: 1 purged"),
    ),
    "api replay an event": (
        "api",
        lambda w: w.api("POST", "/api/events/replay", json={"id": "0-1"}),
        ("admin", "replay", "event 0-1", r"ok: 1 replayed, \d+ associations"),
    ),
    "api pause a portal": (
        "api",
        lambda w: w.api("POST", "/api/portals/123/pause", json={"reason": "maintenance"}),
        ("admin", "pause", "portal 123", "ok"),
    ),
    "api resume a lane": (
        "api",
        lambda w: w.api("POST", "/api/lanes/123%7Cdeals%7Ccontacts/resume"),
        ("admin", "resume", f"lane {LANE}", "ok"),
    ),
    "api resume what is not paused": (
        "api",
        lambda w: w.api("POST", "/api/portals/789/resume"),
        ("admin", "resume", "portal 789", "ok: unchanged"),
    ),
    # The dashboard, as the logged-in session.
    "dashboard logout": (
        "dashboard",
        lambda w: w.web.post("/admin/logout", data={"csrf_token": w.csrf}),
        ("{session}", "logout", "dashboard", "ok"),
    ),
    "dashboard replay one dead letter": (
        "dashboard",
        lambda w: w.admin(f"/admin/dead-letters/{w.letter}/replay"),
        ("{session}", "replay", "dead-letter {letter}", "ok"),
    ),
    "dashboard purge a dead letter gone since its confirmation page": (
        "dashboard",
        lambda w: w.admin(f"/admin/dead-letters/{'0' * 32}/purge"),
        ("{session}", "purge", f"dead-letter {'0' * 32}", "refused: not found"),
    ),
    "dashboard purge one dead letter": (
        "dashboard",
        lambda w: w.admin(f"/admin/dead-letters/{w.letter}/purge"),
        ("{session}", "purge", "dead-letter {letter}", "ok"),
    ),
    "dashboard replay every dead letter": (
        "dashboard",
        lambda w: w.admin("/admin/dead-letters/bulk/replay"),
        ("{session}", "replay", "dead-letters all", "ok: 1 replayed"),
    ),
    "dashboard purge dead letters by filter": (
        "dashboard",
        lambda w: w.admin("/admin/dead-letters/bulk/purge", status="404", category="OBJECT_NOT_FOUND"),
        ("{session}", "purge", "dead-letters status=404 category=OBJECT_NOT_FOUND", "ok: 1 purged"),
    ),
    "dashboard pause a portal": (
        "dashboard",
        lambda w: w.admin("/admin/pauses/pause", scope="portal", name="123"),
        ("{session}", "pause", "portal 123", "ok"),
    ),
    "dashboard resume a portal": (
        "dashboard",
        lambda w: w.admin("/admin/pauses/resume", scope="portal", name="456"),
        ("{session}", "resume", "portal 456", "ok"),
    ),
    "dashboard cancel a backfill": (
        "dashboard",
        lambda w: w.web.post(f"/admin/backfills/{BACKFILL_ID}/cancel", data={"csrf_token": w.csrf}),
        ("{session}", "backfill.cancel", f"backfill {BACKFILL_ID}", "ok"),
    ),
    # The CLI, as the operating-system user.
    "cli revoke every session": (
        "cli",
        lambda w: _ok(w.cli("admin", "sessions", "revoke", "--all")),
        (CLI_ACTOR, "session.revoke", "sessions all", r"ok: [1-9]\d* ended"),
    ),
    "cli replay one dead letter": (
        "cli",
        lambda w: _ok(w.cli("dead-letters", "replay", w.letter)),
        (CLI_ACTOR, "replay", "dead-letter {letter}", "ok"),
    ),
    "cli purge dead letters by filter": (
        "cli",
        lambda w: _ok(w.cli("dead-letters", "purge", "--status", "404")),
        (CLI_ACTOR, "purge", "dead-letters status=404", "ok: 1 purged"),
    ),
    "cli replay every dead letter": (
        "cli",
        lambda w: _ok(w.cli("dead-letters", "replay")),
        (CLI_ACTOR, "replay", "dead-letters all", "ok: 1 replayed"),
    ),
    "cli replay an event": (
        "cli",
        lambda w: _ok(w.cli("events", "replay", "0-1")),
        (CLI_ACTOR, "replay", "event 0-1", r"ok: 1 replayed, \d+ associations"),
    ),
    "cli replay events by filter": (
        "cli",
        lambda w: _ok(w.cli("events", "replay", "--source", "hubspot")),
        (CLI_ACTOR, "replay", "events source=hubspot", r"ok: 1 replayed, \d+ associations"),
    ),
    "cli pause a portal": (
        "cli",
        lambda w: _ok(w.cli("pause", "--portal", "123")),
        (CLI_ACTOR, "pause", "portal 123", "ok"),
    ),
    "cli resume a lane": (
        "cli",
        lambda w: _ok(w.cli("resume", "--lane", LANE)),
        (CLI_ACTOR, "resume", f"lane {LANE}", "ok"),
    ),
    "cli start a backfill": (
        "cli",
        lambda w: _ok(w.cli("backfill", "start", "deal-company", "--limit", "3")),
        (CLI_ACTOR, "backfill.start", r"backfill [0-9a-f]{{16}} rule deal-company", "ok"),
    ),
    "cli cancel a backfill": (
        "cli",
        lambda w: _ok(w.cli("backfill", "cancel", BACKFILL_ID)),
        (CLI_ACTOR, "backfill.cancel", f"backfill {BACKFILL_ID}", "ok"),
    ),
    "cli replay the inbox's entries set aside": (
        "cli",
        lambda w: _ok(w.cli("inbox", "replay", "--all")),
        (CLI_ACTOR, "replay", "inbox all", "ok: 1 back in the inbox"),
    ),
}


class TestEveryActionIsRecordedOnce:
    """Each admin action, through each way in, leaves exactly one entry naming who, what, on what, and how."""

    @pytest.mark.parametrize("name", list(CASES))
    def test_the_action_leaves_one_entry(self, world: World, name: str) -> None:
        """One entry: the surface's actor, the action, the target and the outcome; the address of its caller."""
        surface, perform, (actor, action, target, outcome) = CASES[name]
        session = world.session_actor
        perform(world)
        [entry] = entries(world.redis)
        assert entry.actor == actor.format(session=session)
        assert entry.action == action
        expected = target.format(letter=world.letter)
        assert entry.target == expected or re.fullmatch(expected, entry.target), entry.target
        assert re.fullmatch(outcome, entry.outcome), entry.outcome
        assert entry.address == ("local" if surface == "cli" else "127.0.0.1")

    def test_a_login_is_recorded_under_the_session_it_starts(self, settings: Settings, redis_client: Any) -> None:
        """The entry's actor is the new session's, the one the operator's next actions are recorded under."""
        client = create_app(settings).test_client()
        login(client)
        [entry] = entries(redis_client)
        cookie = client.get_cookie("session")
        assert cookie is not None
        assert entry.actor == "session:" + hashlib.sha256(cookie.value.encode()).hexdigest()[:8]
        assert (entry.action, entry.target, entry.outcome, entry.address) == ("login", "dashboard", "ok", "127.0.0.1")

    def test_a_refused_login_is_recorded_as_anonymous_without_the_token(
        self, settings: Settings, redis_client: Any
    ) -> None:
        """A wrong token: actor anonymous, outcome refused; the token sent is nowhere in the entry."""
        client = create_app(settings).test_client()
        wrong = "wrong-token-with-a-secret-inside"
        answer = client.post("/admin/login", data={"token": wrong, "csrf_token": csrf(client, "/admin/login")})
        assert answer.status_code == 200
        [entry] = entries(redis_client)
        assert (entry.actor, entry.action, entry.target, entry.outcome) == (
            "anonymous",
            "login",
            "dashboard",
            "refused: wrong token",
        )
        raw = json.dumps([[k.decode(), v.decode()] for _, f in redis_client.xrange(KEY) for k, v in f.items()])
        assert wrong not in raw and ADMIN_TOKEN not in raw

    @pytest.mark.parametrize(
        "perform",
        [
            lambda w: w.api("POST", "/api/dead-letters/replay?dry_run=true"),
            lambda w: w.api("DELETE", "/api/dead-letters?status=404&dry_run=true"),
            lambda w: w.api("POST", "/api/events/replay", json={"id": "0-1", "dry_run": True}),
            lambda w: _ok(w.cli("dead-letters", "purge", "--status", "404", "--dry-run")),
            lambda w: _ok(w.cli("events", "replay", "0-1", "--dry-run")),
            lambda w: _ok(w.cli("backfill", "start", "deal-company", "--limit", "2", "--dry-run")),
            lambda w: w.web.post("/admin/dead-letters/bulk/replay", data={"csrf_token": w.csrf}),
        ],
        ids=["api replay", "api purge", "api events", "cli purge", "cli events", "cli backfill", "dashboard confirm"],
    )
    def test_dry_runs_and_confirmation_pages_are_not_recorded(self, world: World, perform: Callable[..., Any]) -> None:
        """A dry run, or the count a confirmation page shows, changes nothing and is not an action."""
        perform(world)
        assert entries(world.redis) == []

    def test_reads_are_not_recorded(self, world: World) -> None:
        """Lists, pages and the audit log itself are reads."""
        world.api("GET", "/api/dead-letters")
        world.api("GET", "/api/audit")
        assert world.web.get("/admin/audit").status_code == 200
        _ok(world.cli("audit", "list"))
        assert entries(world.redis) == []


# ------------------------------------------------------------------------------------- GET /api/audit


def fill(redis_client: redis_lib.Redis) -> None:
    """Four entries at known times (100, 200, 300 and 400 s after BASE_S)."""
    rows = [
        ("admin", "replay", "dead-letters status=404", "ok: 3 replayed"),
        ("cli:ops", "purge", "dead-letter abc", "refused: not found"),
        ("session:1a2b3c4d", "pause", "portal 123", "ok"),
        ("deploy-bot", "rules.publish", "rules v7", "ok"),
    ]
    for second, (actor, action, target, outcome) in zip((100, 200, 300, 400), rows, strict=True):
        fields = {"actor": actor, "action": action, "target": target, "outcome": outcome, "address": "10.0.0.9"}
        redis_client.xadd(KEY, fields, id=f"{(BASE_S + second) * 1000}-0")  # type: ignore[arg-type]


@pytest.fixture
def filled(settings: Settings, redis_client: redis_lib.Redis) -> Flask:
    """An app whose audit log holds the four entries of :func:`fill`."""
    fill(redis_client)
    return create_app(settings)


def get(app: Flask, query: str) -> TestResponse:
    """``GET /api/audit?<query>`` as the admin token's client."""
    return app.test_client().get(f"/api/audit?{query}", headers=AUTH)


class TestTheApi:
    """``GET /api/audit``: newest first, filtered, paged, and precise about what it refuses."""

    def test_it_answers_items_newest_first_with_the_documented_fields(self, filled: Flask) -> None:
        """items with at, actor, action, target, outcome, address (and the id), and next_cursor."""
        body = get(filled, "").get_json()
        assert [item["action"] for item in body["items"]] == ["rules.publish", "pause", "purge", "replay"]
        assert body["items"][-1] == {
            "id": f"{(BASE_S + 100) * 1000}-0",
            "at": iso((BASE_S + 100) * 1000),
            "actor": "admin",
            "action": "replay",
            "target": "dead-letters status=404",
            "outcome": "ok: 3 replayed",
            "address": "10.0.0.9",
        }
        assert body["next_cursor"] is None

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("actor=admin", ["replay"]),
            ("actor=session:*", ["pause"]),
            ("action=rules.*", ["rules.publish"]),
            ("outcome=ok", ["rules.publish", "pause", "replay"]),
            ("target=PORTAL", ["pause"]),
            (f"since={BASE_S + 200}&until={BASE_S + 300}", ["pause", "purge"]),
            (f"since={iso((BASE_S + 300) * 1000)}", ["rules.publish", "pause"]),
        ],
        # Named, not derived from the queries: BASE_S differs between pytest-xdist's workers.
        ids=["actor", "actor prefix", "action prefix", "outcome", "target", "since and until", "since iso"],
    )
    def test_filters(self, filled: Flask, query: str, expected: list[str]) -> None:
        """Each filter alone and the time bounds together select the entries they name."""
        response = get(filled, query)
        assert response.status_code == 200, response.get_json()
        assert [item["action"] for item in response.get_json()["items"]] == expected

    def test_the_cursor_pages(self, filled: Flask) -> None:
        """limit=3 then the cursor: three entries, then the last one, then no cursor."""
        first = get(filled, "limit=3").get_json()
        assert len(first["items"]) == 3 and first["next_cursor"] == f"{(BASE_S + 200) * 1000}-0"
        second = get(filled, f"limit=3&cursor={first['next_cursor']}").get_json()
        assert [item["id"] for item in second["items"]] == [f"{(BASE_S + 100) * 1000}-0"] and second[
            "next_cursor"
        ] is None

    @pytest.mark.parametrize(
        ("query", "code", "names"),
        [
            ("actr=admin", "invalid_parameter", "actr"),
            ("actor=", "invalid_filter", "actor is empty"),
            ("action=Replay!", "invalid_filter", "action"),
            ("outcome=ok:%203", "invalid_filter", "outcome"),
            ("since=yesterday", "invalid_filter", "since"),
            ("until=2026-13-01T00:00:00Z", "invalid_filter", "until"),
            ("since=300&until=200", "invalid_filter", "after until"),
            ("target=%01", "invalid_filter", "target"),
            ("limit=0", "invalid_parameter", "limit"),
            ("limit=1001", "invalid_parameter", "limit"),
            ("limit=ten", "invalid_parameter", "limit"),
            ("cursor=abc", "invalid_parameter", "cursor"),
        ],
    )
    def test_bad_parameters_are_a_400_naming_them(self, filled: Flask, query: str, code: str, names: str) -> None:
        """A misspelt, empty or unreadable parameter is refused with its name, never answered with everything."""
        response = get(filled, query)
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert error["code"] == code and names in error["message"], error

    def test_it_needs_the_admin_token(self, filled: Flask) -> None:
        """Without a token (or with the direct API's) it is a 401."""
        assert filled.test_client().get("/api/audit").status_code == 401


# ------------------------------------------------------------------------------------ the CLI and the page


class TestTheCommand:
    """``hublink audit list``: a table, or the API's JSON, with the same filters."""

    def test_the_table_lists_entries_newest_first(self, filled: Flask) -> None:
        """One line per entry under a header, newest first, and a count."""
        result = filled.test_cli_runner().invoke(args=["audit", "list", "--outcome", "ok"])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].split()[:3] == ["AT", "(UTC)", "ACTOR"]
        assert [line.split()[2] for line in lines[1:-1]] == ["rules.publish", "pause", "replay"]
        assert lines[-1] == "3 shown"

    def test_json_is_the_apis_answer(self, filled: Flask) -> None:
        """--json prints {"items", "next_cursor"} exactly as GET /api/audit answers it."""
        result = filled.test_cli_runner().invoke(args=["audit", "list", "--json", "--limit", "2", "--action", "p*"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == get(filled, "limit=2&action=p*").get_json()

    def test_a_bad_filter_is_a_usage_error(self, filled: Flask) -> None:
        """An unreadable --since exits 2 naming it."""
        result = filled.test_cli_runner().invoke(args=["audit", "list", "--since", "yesterday"])
        assert result.exit_code == 2 and "since" in result.output


@pytest.fixture
def dashboard(settings: Settings, redis_client: redis_lib.Redis) -> FlaskClient:
    """A logged-in dashboard whose audit log then holds the four entries of :func:`fill` (and no login)."""
    client = create_app(settings).test_client()
    login(client)
    redis_client.delete(KEY)
    fill(redis_client)
    return client


class TestThePage:
    """The dashboard's Audit page: in the nav, filters as a GET form, everything escaped."""

    def test_it_lists_entries_and_is_in_the_nav(self, dashboard: FlaskClient) -> None:
        """Every entry is a row, newest first, and the nav links to the page."""
        html = dashboard.get("/admin/audit").get_data(as_text=True)
        assert html.count('class="entry"') == 4 and html.index("rules v7") < html.index("dead-letters status=404")
        assert 'href="/admin/audit"' in dashboard.get("/admin").get_data(as_text=True)

    def test_filters_are_a_get_form(self, dashboard: FlaskClient) -> None:
        """?action=pause shows that entry alone (a blank field means any); a bad filter lists nothing and says why."""
        html = dashboard.get("/admin/audit?action=pause&actor=").get_data(as_text=True)
        assert '<form class="filters" method="get"' in html
        assert html.count('class="entry"') == 1 and "portal 123" in html
        bad = dashboard.get("/admin/audit?since=yesterday").get_data(as_text=True)
        assert 'class="entry"' not in bad and "Bad filter" in bad

    def test_what_it_shows_is_escaped(self, settings: Settings, redis_client: redis_lib.Redis) -> None:
        """An actor or target holding markup is shown as text, never run."""
        log = AuditLog(redis_client, Keys("hl:"), days=90)
        log.record(actor="<script>alert(1)</script>", action="purge", target='<img src=x onerror="alert(2)">')
        client = create_app(settings).test_client()
        login(client)
        html = client.get("/admin/audit").get_data(as_text=True)
        assert "<script>alert(1)" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x" in html

    def test_it_needs_a_session(self, filled: Flask) -> None:
        """Without logging in, the page redirects to the login form."""
        response = filled.test_client().get("/admin/audit")
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


class TestBestEffort:
    """An action that happened stands, and is answered, even when its entry cannot be written."""

    def test_a_refused_entry_is_logged_and_the_action_answered(
        self, world: World, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With the audit key taken by a string (Redis refuses XADD), a pause is done, answered 200, and logged."""
        world.redis.set(KEY, "not a stream")
        answer = world.api("POST", "/api/portals/123/pause")
        assert answer.status_code == 200 and answer.get_json()["changed"] is True
        assert PauseStore(world.redis, Keys("hl:")).get("portal", "123") is not None
        [record] = [r for r in caplog.records if r.getMessage() == "audit entry not written"]
        assert (record.levelname, record.action, record.error) == ("ERROR", "pause", "ResponseError")  # type: ignore[attr-defined]
