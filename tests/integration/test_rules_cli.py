"""``hublink rules pull|push|history|rollback`` on a real Redis: GitOps stays possible, every change audited."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis as redis_lib
from click.testing import Result
from flask.testing import FlaskCliRunner

from hublink.config.settings import Settings
from hublink.domain.events import CrmEvent
from hublink.intake.history import EventHistory, EventOutcome
from hublink.store.keys import Keys
from web import create_app

pytestmark = pytest.mark.integration

V1 = """\
rules:
  - name: deal-contact
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: contacts, id: contactId}
"""
V2 = V1.replace("deal.creation", "deal.propertyChange").replace("when: {", "when: {propertyName: dealstage, ")
BROKEN = V1.replace("objectType: contacts", "objectType: ghosts")


@pytest.fixture
def runner(make_settings: Callable[..., Settings], redis_url: str) -> FlaskCliRunner:
    """The commands of an app whose rules live in Redis."""
    return create_app(make_settings(redis_url=redis_url, rules_source="redis")).test_cli_runner()


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> str:
    """A rules file holding ``text``; its path."""
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run(runner: FlaskCliRunner, *args: str) -> Result:
    """``hublink rules ARGS``."""
    return runner.invoke(args=["rules", *args])


def audited(redis_client: redis_lib.Redis) -> list[tuple[str, str, str]]:
    """(action, target, outcome) of each audit entry, oldest first."""
    entries = redis_client.xrange("hl:audit") or []
    return [(f[b"action"].decode(), f[b"target"].decode(), f[b"outcome"].decode()) for _, f in entries if f]


class TestPush:
    """``rules push FILE`` is a publish."""

    def test_push_publishes_and_says_which_subscriptions_the_rules_need(
        self, runner: FlaskCliRunner, tmp_path: Path, redis_client: redis_lib.Redis
    ) -> None:
        """Two pushes: v1 then v2, each naming the subscriptions newly needed; audited as rules.publish."""
        first = run(runner, "push", write(tmp_path, V1), "--comment", "deals")
        assert first.exit_code == 0, first.output
        assert first.output.startswith("published v1 by cli:")
        assert "needs subscription deal.creation (rules: deal-contact)" in first.output
        second = run(runner, "push", write(tmp_path, V2, "v2.yaml"), "-m", "stages")
        assert "published v2" in second.output
        assert "needs subscription deal.propertyChange (dealstage)" in second.output
        assert "hublink hubspot subscriptions apply --dry-run" in second.output
        assert audited(redis_client) == [("rules.publish", "v1", "ok"), ("rules.publish", "v2", "ok")]

    def test_push_of_the_published_text_publishes_nothing(
        self, runner: FlaskCliRunner, tmp_path: Path, redis_client: redis_lib.Redis
    ) -> None:
        """CI pushing the same file again: "unchanged", exit 0, no new version."""
        path = write(tmp_path, V1)
        run(runner, "push", path)
        again = run(runner, "push", path)
        assert again.exit_code == 0 and again.output.startswith("unchanged:")
        assert redis_client.get("hl:rules:published") == b"1"

    def test_push_of_a_file_with_problems_is_refused_with_each_line(
        self, runner: FlaskCliRunner, tmp_path: Path, redis_client: redis_lib.Redis
    ) -> None:
        """Exit 1, ``FILE:LINE: message`` for each problem, nothing published, the refusal audited."""
        path = write(tmp_path, BROKEN)
        result = run(runner, "push", path)
        assert result.exit_code == 1
        assert f"Error: {path}:7: rule 'deal-contact': associations[0].to.objectType" in result.output
        assert redis_client.get("hl:rules:published") is None
        assert audited(redis_client) == [("rules.publish", "draft", "refused")]

    def test_push_with_the_file_source_is_refused(
        self, make_settings: Callable[..., Settings], redis_url: str, tmp_path: Path
    ) -> None:
        """HUBLINK_RULES_SOURCE=file: exit 1 naming the variable."""
        file_runner = create_app(make_settings(redis_url=redis_url)).test_cli_runner()
        result = run(file_runner, "push", write(tmp_path, V1))
        assert result.exit_code == 1 and "HUBLINK_RULES_SOURCE is file" in result.output


class TestPullHistoryRollback:
    """Reading versions back, listing them, rolling back."""

    def test_pull_prints_the_published_text_or_one_version(self, runner: FlaskCliRunner, tmp_path: Path) -> None:
        """pull prints v2's text; --version 1 -o FILE writes v1's."""
        run(runner, "push", write(tmp_path, V1))
        run(runner, "push", write(tmp_path, V2, "v2.yaml"))
        assert run(runner, "pull").output == V2
        out = tmp_path / "pulled.yaml"
        result = run(runner, "pull", "--version", "1", "-o", str(out))
        assert result.exit_code == 0 and out.read_text() == V1

    def test_pull_of_nothing_and_of_an_unknown_version_fail(self, runner: FlaskCliRunner) -> None:
        """No version yet: exit 1 saying so; version 4: exit 1 naming it."""
        assert "no rules published yet" in run(runner, "pull").output
        result = run(runner, "pull", "--version", "4")
        assert result.exit_code == 1 and "no rules version 4" in result.output

    def test_history_lists_newest_first(self, runner: FlaskCliRunner, tmp_path: Path) -> None:
        """The table names each version with its comment; --json gives the API's items."""
        run(runner, "push", write(tmp_path, V1), "-m", "first")
        run(runner, "push", write(tmp_path, V2, "v2.yaml"), "-m", "second")
        lines = run(runner, "history").output.splitlines()
        assert lines[0].startswith("VERSION") and lines[1].startswith("v2") and lines[1].endswith("second")
        assert lines[2].startswith("v1") and lines[2].endswith("first")
        assert '"comment": "second"' in run(runner, "history", "--json").output

    def test_rollback_publishes_the_old_text_as_a_new_version(
        self, runner: FlaskCliRunner, tmp_path: Path, redis_client: redis_lib.Redis
    ) -> None:
        """rollback 1 after v2: v3 with v1's text, audited as rules.rollback v3."""
        run(runner, "push", write(tmp_path, V1))
        run(runner, "push", write(tmp_path, V2, "v2.yaml"))
        result = run(runner, "rollback", "1")
        assert result.exit_code == 0 and result.output.startswith("rolled back: published v3")
        assert run(runner, "pull").output == V1
        assert audited(redis_client)[-1] == ("rules.rollback", "v3", "ok")

    def test_rollback_to_an_unknown_version_fails(self, runner: FlaskCliRunner) -> None:
        """No version 9: exit 1 pointing at the history."""
        result = run(runner, "rollback", "9")
        assert result.exit_code == 1 and "rules history" in result.output


def created(event_id: int, subscription_type: str) -> CrmEvent:
    """A HubSpot event as the history keeps it: a deal or company created, naming contact 7000 + id."""
    payload = {
        "eventId": event_id,
        "objectId": event_id,
        "subscriptionType": subscription_type,
        "contactId": 7000 + event_id,
    }
    return CrmEvent(
        source="hubspot",
        payload=payload,
        portal_id="62515",
        event_id=str(event_id),
        subscription_type=subscription_type,
        object_id=str(event_id),
        dedup_key=f"hs:{event_id}",
    )


class TestPreview:
    """``rules preview FILE``: the file and the published rules over the history's last events."""

    @pytest.fixture
    def runner_with_history(
        self, runner: FlaskCliRunner, redis_client: redis_lib.Redis, tmp_path: Path
    ) -> FlaskCliRunner:
        """v1 published (deals to contacts); the history holds two deals and a company created."""
        run(runner, "push", write(tmp_path, V1, "published.yaml"))
        store = EventHistory(redis_client, Keys())
        start = time.time() - 60
        for n, kind in enumerate(("deal.creation", "deal.creation", "company.creation"), start=1):
            store.record(f"{n}-0", start + n, "hubspot", [EventOutcome(0, "accepted", created(n, kind))])
        return runner

    def test_preview_prints_each_event_the_draft_acts_on_and_the_summary(
        self, runner_with_history: FlaskCliRunner, tmp_path: Path, redis_client: redis_lib.Redis
    ) -> None:
        """A draft adding company creations: the company's event changes, the deals stay; nothing is stored."""
        draft = V1 + V1.split("rules:\n", 1)[1].replace("deal-contact", "company-contact").replace(
            "deal.creation", "company.creation"
        ).replace("objectType: deals", "objectType: companies")
        before = {k: redis_client.type(k) for k in redis_client.keys("*")}
        result = run(runner_with_history, "preview", write(tmp_path, draft, "draft.yaml"))
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[-1] == "3 event(s) against v1: would link 3, newly unmatched 0, changed 1"
        assert "3-0.0 company.creation 3: changed; draft rules company-contact" in lines
        assert "  link    companies/3 -> contacts/7003" in lines
        assert {k: redis_client.type(k) for k in redis_client.keys("*")} == before

    def test_preview_filters_by_type_and_speaks_json(self, runner_with_history: FlaskCliRunner, tmp_path: Path) -> None:
        """--type deal.creation --json: the two deals, unchanged against v1."""
        result = run(
            runner_with_history, "preview", write(tmp_path, V1, "same.yaml"), "--type", "deal.creation", "--json"
        )
        body = json.loads(result.output)
        assert body["summary"] == {"wouldLink": 2, "newlyUnmatched": 0, "changed": 0, "events": 2}

    def test_preview_of_a_file_with_problems_is_refused_with_each_line(
        self, runner_with_history: FlaskCliRunner, tmp_path: Path
    ) -> None:
        """Exit 1 with ``FILE:LINE: message``, as push refuses it."""
        path = write(tmp_path, BROKEN, "broken.yaml")
        result = run(runner_with_history, "preview", path)
        assert result.exit_code == 1 and f"Error: {path}:7:" in result.output
