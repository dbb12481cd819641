"""A journal-only portal as HubSpot serves the journal, end to end: the app's token, journal subscriptions, both
entry formats, and an entry that cannot be read set aside.

The simulator runs strict (``records: strict``, ``batch_errors: whole``) with ``journal_auth: app``: the
journal and its subscriptions refuse a portal's token and hold only the events of journal subscriptions.
Nothing is pushed (the app's target URL is not on this machine). HubLink is configured only as
``docs/operations/journal.md`` tells an operator: the portals file's ``journal: true``, ``HUBSPOT_CLIENT_ID``
and ``HUBSPOT_CLIENT_SECRET``, and ``hubspot subscriptions apply``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib
import requests

from hublink.config.settings import Settings
from hublink.delivery.credentials import AppTokens
from hublink.delivery.hubspot import HubSpotClient
from hublink.domain.errors import RateLimitedError
from hublink.store.keys import Keys
from tests.conftest import HUBSPOT_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import wait_settled
from tests.support.processes import wait_for
from web import create_app

pytestmark = pytest.mark.integration

PORTAL = 62515
APP_ID = "4242"
CLIENT_ID = "client-4242"
SECRET = "secret-of-app-4242"
RULES = """\
rules:
  - name: deal-created
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: contacts, id: "`7001`"}
"""


@pytest.fixture
def hubspot(sim: Sim) -> Sim:
    """The simulator as HubSpot is, with the app registered and the contact every deal is linked to."""
    sim.put("/_sim/config", {"records": "strict", "batch_errors": "whole", "journal_auth": "app"})
    sim.post("/_sim/apps", {"appId": APP_ID, "clientId": CLIENT_ID, "clientSecret": SECRET})
    sim.post("/_sim/records", {"records": [{"objectType": "contacts", "id": "7001"}]})
    return sim


def configure(settings: Settings, tmp_path: Path) -> Settings:
    """What docs/operations/journal.md tells an operator to set, for one journal-only portal."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    portals = tmp_path / "portals.yaml"
    portals.write_text(f'portals:\n  "{PORTAL}":\n    token: {HUBSPOT_TOKEN}\n    journal: true\n')
    return replace(
        settings,
        rules_file=str(rules),
        portals_file=str(portals),
        hubspot_client_id=CLIENT_ID,
        hubspot_client_secret=SECRET,
        hubspot_app_id=APP_ID,
        hubspot_developer_token=HUBSPOT_TOKEN,
        public_url="https://hublink.example.com",  # not this machine: the simulator pushes nothing there
    )


def metric(redis: redis_lib.Redis, name: str, field: str) -> int:
    """One counter as stored (``hl:m:<name>``)."""
    return int(redis.hget(f"hl:m:{name}", field) or 0)


def links(sim: Sim, deal: str) -> int:
    """How many times the simulator holds deal → contact 7001."""
    return sum(1 for p in sim.associations() if (p["fromObjectId"], p["toObjectId"]) == (deal, "7001"))


@pytest.mark.parametrize("journal_format", ["wrapper", "array"])
def test_a_journal_only_portal_links_each_event_once_and_sets_a_corrupt_entry_aside(
    hubspot: Sim, stack: Stack, redis_client: redis_lib.Redis, tmp_path: Path, journal_format: str
) -> None:
    """apply makes the journal subscription; two created deals are linked once each; a corrupt entry is kept."""
    hubspot.put("/_sim/config", {"journal_format": journal_format})
    settings = configure(stack.settings, tmp_path)
    stack.settings = settings
    runner = create_app(settings).test_cli_runner()
    dry = runner.invoke(args=["hubspot", "subscriptions", "apply", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    # The rule's creations, and the deletions and merges of the deals (and contacts) it names.
    held = f"journal OBJECT 0-3 CREATE+DELETE+MERGE (portal {PORTAL})"
    assert f"would create    {held}" in dry.output
    assert "would create    journal APP_LIFECYCLE_EVENT 4-1916193 APP_UNINSTALL (app-wide)" in dry.output
    applied = runner.invoke(args=["hubspot", "subscriptions", "apply"])
    assert applied.exit_code == 0 and f"created {held}" in applied.output
    assert "created journal APP_LIFECYCLE_EVENT 4-1909196 APP_INSTALL (app-wide)" in applied.output
    again = runner.invoke(args=["hubspot", "subscriptions", "apply"])
    assert f"keep            {held}" in again.output
    assert "nothing to do" in again.output

    env = {
        "HUBLINK_PORTALS_FILE": settings.portals_file or "",
        "HUBSPOT_CLIENT_ID": CLIENT_ID,
        "HUBSPOT_CLIENT_SECRET": SECRET,
        "HUBLINK_JOURNAL_POLL_S": "0.2",
    }
    stack.worker(**env)
    hubspot.post("/_sim/records", {"records": [{"objectType": "deals", "id": "5001"}]})
    hubspot.post("/_sim/journal/events", {"raw": '{"offset": "x", "journalEvents": [{', "portalId": PORTAL})
    hubspot.post("/_sim/records", {"records": [{"objectType": "deals", "id": "5002"}]})

    read = f"portal={PORTAL}"
    wait_for(lambda: metric(redis_client, "journal_events_read", read) == 2, timeout=30, what="both deals' entries")
    wait_for(lambda: links(hubspot, "5002") == 1, timeout=30, what="the second deal linked")
    wait_settled(redis_client, timeout=30)
    assert links(hubspot, "5001") == 1 and links(hubspot, "5002") == 1
    assert hubspot.get("/_sim/requests")["inputs_total"] == 2
    assert not hubspot.get("/_sim/webhooks/deliveries")["deliveries"]  # nothing was pushed

    [(_, kept)] = redis_client.xrange("hl:inbox:failed")
    assert kept[b"kind"] == b"delivery" and b"journal entry" in kept[b"reason"]
    assert b'"source":"journal"' in kept[b"body"] and b'\\"journalEvents\\": [{' in kept[b"body"]
    entries = hubspot.get("/_sim/journal")["entries"]
    assert len(entries) == 3
    assert redis_client.get(f"hl:journal:{PORTAL}:offset") == entries[-1]["offset"].encode()


def test_apply_widens_a_journal_subscription_and_never_narrows_it(hubspot: Sim, stack: Stack, tmp_path: Path) -> None:
    """A rule needing deal.restore too: the dry run says it would change the subscription to add RESTORE."""
    settings = configure(stack.settings, tmp_path)
    runner = create_app(settings).test_cli_runner()
    assert runner.invoke(args=["hubspot", "subscriptions", "apply"]).exit_code == 0
    Path(settings.rules_file or "").write_text(RULES.replace("deal.creation", "[deal.creation, deal.restore]"))
    dry = runner.invoke(args=["hubspot", "subscriptions", "apply", "--dry-run"])
    widened = f"journal OBJECT 0-3 CREATE+DELETE+MERGE+RESTORE (portal {PORTAL})"
    assert f"would change    {widened}" in dry.output, dry.output
    changed = runner.invoke(args=["hubspot", "subscriptions", "apply"])
    assert f"changed {widened}" in changed.output, changed.output
    Path(settings.rules_file or "").write_text(RULES)  # fewer actions needed: the held ones stay
    kept = runner.invoke(args=["hubspot", "subscriptions", "apply", "--dry-run"])
    assert f"keep            {widened}" in kept.output, kept.output


def test_the_journal_refuses_the_portal_token_the_app_token_reads_it(hubspot: Sim) -> None:
    """Under journal_auth app a portal's token is refused (403), which is why HubLink reads with the app's."""
    path = f"{hubspot.url}/webhooks-journal/journal/2026-03/earliest?installPortalId={PORTAL}"
    refused = requests.get(path, headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"}, timeout=5)
    assert refused.status_code == 403
    token = HubSpotClient(hubspot.url, connect_timeout_s=2, read_timeout_s=5).app_token(CLIENT_ID, SECRET, ())
    read = requests.get(path, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=5)
    assert read.status_code == 204


class TestAppTokens:
    """The app's client_credentials token, cached in Redis for every worker."""

    @staticmethod
    def tokens(sim: Sim, redis: redis_lib.Redis, clock: Callable[[], float]) -> AppTokens:
        """AppTokens of the simulator's app, on the test's Redis, with a test clock."""
        client = HubSpotClient(sim.url, connect_timeout_s=2, read_timeout_s=5)
        return AppTokens(redis, Keys("hl:"), client, CLIENT_ID, SECRET, clock=clock)

    @staticmethod
    def grants(sim: Sim) -> int:
        """How many token requests the simulator has answered."""
        return int(sim.get("/_sim/requests")["by_endpoint"].get("oauth_token", 0))

    def test_one_token_serves_until_the_margin_before_expiry(self, hubspot: Sim, redis_client: redis_lib.Redis) -> None:
        """Fetched once, shared from Redis, fetched again 5 minutes before HubSpot's expiry, with a new value."""
        now = [1000.0]
        tokens = self.tokens(hubspot, redis_client, lambda: now[0])
        first = tokens.token()
        assert self.tokens(hubspot, redis_client, lambda: now[0]).token() == first and self.grants(hubspot) == 1
        now[0] += 1800 - 301
        assert tokens.token() == first and self.grants(hubspot) == 1
        now[0] += 2
        assert tokens.token() != first and self.grants(hubspot) == 2
        assert CLIENT_ID.encode() not in b"".join(redis_client.keys("hl:apptoken:*"))

    def test_a_forgotten_token_is_fetched_again(self, hubspot: Sim, redis_client: redis_lib.Redis) -> None:
        """invalidate() (HubSpot refused it) makes the next call fetch another."""
        tokens = self.tokens(hubspot, redis_client, lambda: 1000.0)
        first = tokens.token()
        tokens.invalidate()
        assert tokens.token() != first and self.grants(hubspot) == 2

    def test_a_throttled_token_endpoint_is_a_rate_limit(self, hubspot: Sim, redis_client: redis_lib.Redis) -> None:
        """The token endpoint's 429 comes back as RateLimitedError with its Retry-After; nothing is cached."""
        hubspot.put("/_sim/config", {"token_429_s": 30})
        with pytest.raises(RateLimitedError) as raised:
            self.tokens(hubspot, redis_client, lambda: 1000.0).token()
        assert raised.value.retry_after_s is not None and raised.value.retry_after_s > 0
        assert not redis_client.keys("hl:apptoken:*")
