"""The dashboard's rules page with Flask's test client on a real Redis: check, preview, publish, roll back."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask.testing import FlaskClient

from hublink.config.settings import Settings
from hublink.domain.events import CrmEvent
from hublink.intake.history import EventOutcome
from hublink.intake.rule_versions import RuleVersions
from hublink.store.connections import text
from hublink.store.keys import Keys
from tests.integration.test_admin import login, page
from tests.integration.test_rules_preview import DRAFT, PUBLISHED
from web import create_app

pytestmark = pytest.mark.integration
KEYS = Keys("hl:")
#: A draft whose rule names a source HubLink does not know, on line 3.
BAD_DRAFT = PUBLISHED.replace("source: hubspot", "source: hubsplot", 1)


def app_client(settings: Settings) -> FlaskClient:
    """A test client of the app built from ``settings``, with a deal created and a contact created in its history."""
    app = create_app(settings)
    history = app.extensions["hublink"].history
    now = time.time() - 30
    for n, (subscription_type, extra) in enumerate(
        [("deal.creation", {"to_contact": 7001}), ("contact.creation", {"to_company": 8001})]
    ):
        payload = {"objectId": 5000 + n, "subscriptionType": subscription_type, **extra}
        event = CrmEvent(
            source="hubspot",
            payload=payload,
            portal_id="62515",
            event_id=str(n + 1),
            subscription_type=subscription_type,
            object_id=str(5000 + n),
        )
        history.record(f"{n + 1}-0", now + n, "hubspot", [EventOutcome(0, "accepted", event)])
    return app.test_client()


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    """The rules file: PUBLISHED."""
    path = tmp_path / "rules.yaml"
    path.write_text(PUBLISHED)
    return path


@pytest.fixture
def file_client(make_settings: Callable[..., Settings], redis_url: str, rules_file: Path) -> FlaskClient:
    """The dashboard with HUBLINK_RULES_SOURCE=file (the default)."""
    return app_client(make_settings(redis_url=redis_url, secret_key="test-secret-key", rules_file=str(rules_file)))


@pytest.fixture
def redis_client(make_settings: Callable[..., Settings], redis_url: str, rules_file: Path) -> FlaskClient:
    """The dashboard with HUBLINK_RULES_SOURCE=redis, the file seeding version 1."""
    settings = make_settings(
        redis_url=redis_url, secret_key="test-secret-key", rules_file=str(rules_file), rules_source="redis"
    )
    return app_client(settings)


@pytest.fixture
def store(redis_url: str) -> RuleVersions:
    """The versions in the test's database."""
    return RuleVersions(redis_lib.Redis.from_url(redis_url), KEYS)


def post(client: FlaskClient, path: str, token: str, **form: Any) -> tuple[int, str]:
    """POST a form with the session's CSRF token; the status and the page."""
    response = client.post(path, data={"csrf_token": token, **form})
    return response.status_code, response.get_data(as_text=True)


def audit_entries(redis_url: str) -> list[dict[str, str]]:
    """The audit log's entries, oldest first."""
    raw = redis_lib.Redis.from_url(redis_url).xrange(KEYS.audit)
    return [{text(k): text(v) for k, v in fields.items()} for _, fields in raw]


class TestEveryMode:
    """Check and preview work whatever the rules source."""

    def test_the_page_is_in_the_nav_and_shows_the_published_rules_in_the_editor(self, file_client: FlaskClient) -> None:
        """The nav links to Rules; the published text is the draft to start from."""
        login(file_client)
        assert 'href="/admin/rules">Rules</a>' in page(file_client, "/admin")
        html = page(file_client, "/admin/rules")
        assert "name: workflow-links" in html
        assert '<textarea name="text" id="draft"' in html

    def test_check_lists_every_problem_with_its_line(self, file_client: FlaskClient) -> None:
        """A source HubLink does not know, on line 3: said with its line and the rule's name."""
        token = login(file_client)
        status, html = post(file_client, "/admin/rules/check", token, text=BAD_DRAFT)
        assert status == 200
        assert re.search(r'<b class="line">line 3</b>: <span class="message">rule &#39;deal-contact&#39;: source', html)
        assert "hubsplot" in html  # the draft is carried back into the editor

    def test_check_of_a_good_draft_says_so(self, file_client: FlaskClient) -> None:
        """No problem: said so, and the draft typed in a browser (CRLF lines) is the draft checked."""
        token = login(file_client)
        status, html = post(file_client, "/admin/rules/check", token, text=DRAFT.replace("\n", "\r\n"))
        assert status == 200
        assert 'id="check-ok"' in html
        assert "\r" not in html.split('id="draft"', 1)[1].split("</textarea>", 1)[0]

    def test_preview_shows_the_summary_and_each_event(self, file_client: FlaskClient) -> None:
        """The contact created is newly linked to its company by the draft."""
        token = login(file_client)
        status, html = post(
            file_client, "/admin/rules/preview", token, text=DRAFT, limit="200", source="", subscriptionType=""
        )
        assert status == 200, html
        assert re.search(r'would link <b id="would-link">2</b>, newly unmatched <b id="newly-unmatched">0</b>', html)
        assert '<b id="changed">1</b>' in html
        assert "link contacts/5001 → companies/8001" in html

    def test_preview_by_type_shows_only_that_type(self, file_client: FlaskClient) -> None:
        """Only deal creations: one event, unchanged."""
        token = login(file_client)
        _, html = post(
            file_client, "/admin/rules/preview", token, text=DRAFT, limit="5", subscriptionType="deal.creation"
        )
        assert "Preview: 1 event</h2>" in html
        assert '<b id="changed">0</b>' in html

    @pytest.mark.parametrize("limit", ["0", "1001", "ten"])
    def test_a_bad_event_count_is_refused_with_the_range(self, file_client: FlaskClient, limit: str) -> None:
        """400, and the page says what is expected."""
        token = login(file_client)
        status, html = post(file_client, "/admin/rules/preview", token, text=DRAFT, limit=limit)
        assert status == 400
        assert "events: expected a number from 1 to 1000" in html

    def test_a_draft_with_problems_is_not_previewed(self, file_client: FlaskClient) -> None:
        """422: the problems are listed instead."""
        token = login(file_client)
        status, html = post(file_client, "/admin/rules/preview", token, text=BAD_DRAFT)
        assert status == 422
        assert "Nothing previewed: the check finds 1 problem(s)." in html
        assert 'id="preview-summary"' not in html


class TestFileSource:
    """HUBLINK_RULES_SOURCE=file: read-only, and the page says how to switch."""

    def test_the_page_says_it_is_read_only_and_how_to_switch(self, file_client: FlaskClient) -> None:
        """No publish button, no versions; HUBLINK_RULES_SOURCE=redis is named."""
        login(file_client)
        html = page(file_client, "/admin/rules")
        assert 'id="read-only"' in html and "HUBLINK_RULES_SOURCE=redis" in html
        assert 'id="publish"' not in html and 'id="versions"' not in html

    def test_publishing_is_refused_and_stores_nothing(self, file_client: FlaskClient, store: RuleVersions) -> None:
        """A forged publish POST changes nothing."""
        token = login(file_client)
        response = file_client.post(
            "/admin/rules/publish",
            data={"csrf_token": token, "text": DRAFT, "comment": "x", "confirmed": "yes"},
            follow_redirects=True,
        )
        assert "publish by deploying the file" in response.get_data(as_text=True)
        assert store.published_version() == 0


class TestRedisSource:
    """HUBLINK_RULES_SOURCE=redis: publish and roll back, confirmed, audited, kept with their diffs."""

    def test_publish_is_confirmed_then_stored_audited_and_shown_with_its_diff(
        self, redis_client: FlaskClient, store: RuleVersions, redis_url: str
    ) -> None:
        """Confirmation page with the diff; then a new version with its comment, an audit entry, the version list."""
        token = login(redis_client)
        before = store.published_version()
        status, html = post(redis_client, "/admin/rules/publish", token, text=DRAFT, comment="contacts to companies")
        assert status == 200
        assert f"Confirm: publish the draft as v{before + 1}?" in html
        assert '<span class="add">+  - name: contact-company</span>' in html
        assert store.published_version() == before

        response = redis_client.post(
            "/admin/rules/publish",
            data={
                "csrf_token": token,
                "text": DRAFT,
                "comment": "contacts to companies",
                "confirmed": "yes",
                "base": str(before),
            },
        )
        assert response.status_code == 302
        published = store.published()
        assert published is not None
        assert (published.version, published.text, published.comment) == (before + 1, DRAFT, "contacts to companies")
        assert published.author.startswith("session:")
        assert audit_entries(redis_url)[-1] | {"actor": ""} == {
            "actor": "",
            "action": "rules.publish",
            "target": f"v{published.version}",
            "outcome": "ok",
            "address": "127.0.0.1",
        }
        html = page(redis_client, response.headers["Location"])
        assert f"Published v{published.version}." in html
        assert f'id="version-{published.version}"' in html
        assert "contacts to companies" in html
        assert 'id="subscriptions"' in html and "<code>contact.creation</code> (rules: contact-company)" in html
        assert "hublink hubspot subscriptions apply --dry-run" in html

    def test_a_confirmation_made_against_an_older_version_shows_the_diff_again(
        self, redis_client: FlaskClient, store: RuleVersions
    ) -> None:
        """Another publish came between the confirmation page and the click: nothing published over it."""
        token = login(redis_client)
        before = store.published_version()
        store.publish(DRAFT + "  # meanwhile\n", author="someone", comment="meanwhile")
        status, html = post(
            redis_client,
            "/admin/rules/publish",
            token,
            text=DRAFT,
            comment="mine",
            confirmed="yes",
            base=str(before),
        )
        assert status == 200
        assert f"v{before + 1} was published meanwhile" in html
        assert f"Confirm: publish the draft as v{before + 2}?" in html
        assert store.published_version() == before + 1

    def test_a_draft_with_problems_is_refused_and_the_refusal_audited(
        self, redis_client: FlaskClient, store: RuleVersions, redis_url: str
    ) -> None:
        """422 with the problems, even confirmed; nothing stored."""
        token = login(redis_client)
        before = store.published_version()
        status, html = post(
            redis_client, "/admin/rules/publish", token, text=BAD_DRAFT, comment="oops", confirmed="yes"
        )
        assert status == 422
        assert "Not published: the check finds 1 problem(s)." in html and '<b class="line">line 3</b>' in html
        assert store.published_version() == before
        assert audit_entries(redis_url)[-1]["outcome"] == "refused"

    def test_a_publish_without_a_comment_is_refused(self, redis_client: FlaskClient, store: RuleVersions) -> None:
        """The comment is the version's reason: 400 without one."""
        token = login(redis_client)
        before = store.published_version()
        status, html = post(redis_client, "/admin/rules/publish", token, text=DRAFT, comment=" ", confirmed="yes")
        assert status == 400 and "give a comment" in html
        assert store.published_version() == before

    def test_roll_back_is_confirmed_then_publishes_the_old_text_as_a_new_version(
        self, redis_client: FlaskClient, store: RuleVersions, redis_url: str
    ) -> None:
        """v1 (the old rules), v2 (the draft); rolling back to v1 makes v3 with v1's text."""
        first = store.publish(PUBLISHED, author="test", comment="first")
        second = store.publish(DRAFT, author="test", comment="second")
        token = login(redis_client)
        html = page(redis_client, "/admin/rules")
        assert f'id="rollback-{first.version}"' in html and f'id="rollback-{second.version}"' not in html
        status, html = post(redis_client, "/admin/rules/rollback", token, version=str(first.version))
        assert status == 200
        assert f"Confirm: roll back to v{first.version} (published as v{second.version + 1})?" in html
        assert '<span class="del">-  - name: contact-company</span>' in html
        assert store.published_version() == second.version

        status, _ = post(
            redis_client,
            "/admin/rules/rollback",
            token,
            version=str(first.version),
            confirmed="yes",
            base=str(second.version),
        )
        assert status == 302
        now = store.published()
        assert now is not None
        assert (now.version, now.text, now.comment) == (second.version + 1, PUBLISHED, f"rollback to v{first.version}")
        assert audit_entries(redis_url)[-1]["action"] == "rules.rollback"
        assert audit_entries(redis_url)[-1]["target"] == f"v{now.version}"

    def test_rolling_back_to_a_version_this_process_cannot_load_is_refused_and_audited(
        self, redis_client: FlaskClient, store: RuleVersions, redis_url: str
    ) -> None:
        """v1 names a form secret the web's environment lacks: rolling back to it says so and stores nothing."""
        sources = "sources:\n  forms:\n    demo:\n      auth: {type: token, header: X-T, token_env: HL_TEST_UNSET}\n"
        first = store.publish(sources + PUBLISHED, author="test", comment="with a form")  # checked for shape only
        store.publish(DRAFT, author="test", comment="second")
        token = login(redis_client)
        before = store.published_version()
        response = redis_client.post(
            "/admin/rules/rollback",
            data={"csrf_token": token, "version": str(first.version), "confirmed": "yes", "base": str(before)},
        )
        assert response.status_code == 302
        assert store.published_version() == before
        assert f"Not rolled back: v{first.version} no longer checks" in page(redis_client, "/admin/rules")
        assert audit_entries(redis_url)[-1] | {"actor": "", "address": ""} == {
            "actor": "",
            "address": "",
            "action": "rules.rollback",
            "target": f"v{first.version}",
            "outcome": "refused",
        }

    def test_rolling_back_to_a_version_that_does_not_exist_does_nothing(
        self, redis_client: FlaskClient, store: RuleVersions
    ) -> None:
        """Said so; nothing stored."""
        token = login(redis_client)
        before = store.published_version()
        response = redis_client.post(
            "/admin/rules/rollback", data={"csrf_token": token, "version": "999", "confirmed": "yes"}
        )
        assert response.status_code == 302
        assert store.published_version() == before
        assert "no version &#39;999&#39;" in page(redis_client, "/admin/rules")

    def test_publishing_the_published_text_again_is_refused(
        self, redis_client: FlaskClient, store: RuleVersions
    ) -> None:
        """Nothing to publish: 409, no new version."""
        store.publish(DRAFT, author="test", comment="first")
        token = login(redis_client)
        status, html = post(redis_client, "/admin/rules/publish", token, text=DRAFT, comment="again", confirmed="yes")
        assert status == 409 and "Nothing to publish" in html
        assert store.published_version() == 1
