"""Traces end to end: gunicorn and a worker export to an OTLP/HTTP receiver in the test process.

One trace runs from the webhook request to HubSpot's answer: the request's SERVER span, its inbox write,
the worker's expansion (carried through Redis in the inbox entry), the drain of the batch, the HubSpot
call and the settle step. A batch call that carries the work of several requests links to each of them.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib
import requests

from hublink.domain.lookups import is_lookup_lane
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN, API_TOKEN
from tests.integration.conftest import Sim, Stack, env_for
from tests.integration.helpers import wait_settled
from tests.integration.test_dead_letters import seed
from tests.integration.test_trace import LOOKUP_RULES
from tests.integration.test_webhooks import FORM_SECRET, SECRET, hubspot_event, signed
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.processes import REPO, python, wait_for

pytestmark = pytest.mark.integration

RULES = """\
rules:
  - name: deal-created
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "to_contact"}
"""


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """A running OTLP/HTTP receiver."""
    found = OtlpReceiver().start()
    yield found
    found.stop()


@pytest.fixture
def traced_rules(tmp_path: Path) -> str:
    """One rule: a created deal is linked to the contact the event names."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return str(path)


def otel_env(receiver: OtlpReceiver) -> dict[str, str]:
    """Tracing on, exporting to ``receiver`` every 100 ms."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}


def exported(spans: Callable[[], list[ReceivedSpan]], what: str, *, count: int = 1) -> list[ReceivedSpan]:
    """The spans ``spans()`` finds, once at least ``count`` have arrived (failing with ``what`` when more have).

    Each process exports on its own schedule: the web's span of a request can arrive after the worker's spans
    of the work it queued, so a test waits for the spans it reads rather than for another process's.
    """

    def enough() -> list[ReceivedSpan] | None:
        """The spans found, once there are ``count`` of them or more."""
        found = spans()
        return found if len(found) >= count else None

    found: list[ReceivedSpan] = wait_for(enough, timeout=10, what=what)
    assert len(found) == count, f"{what}: {found}"
    return found


def one(spans: Callable[[], list[ReceivedSpan]], what: str) -> ReceivedSpan:
    """The one span ``spans()`` finds, once it has arrived (failing with ``what`` when there are several)."""
    return exported(spans, what)[0]


class TestOneTrace:
    """From the webhook to HubSpot's answer, across the web and the worker."""

    def test_requests_expansions_the_batch_call_and_the_settle_step_form_linked_traces(
        self, stack: Stack, sim: Sim, receiver: OtlpReceiver, traced_rules: str
    ) -> None:
        """Three webhook requests drained in one batch call: each request's trace holds its expansion, the
        first one's also the drain, the HubSpot call and the settle step; the call links to all three."""
        stack.settings = replace(stack.settings, hubspot_client_secret=SECRET, rules_file=traced_rules)
        url = stack.gunicorn(
            HUBSPOT_CLIENT_SECRET=SECRET,
            HUBLINK_RULES_FILE=traced_rules,
            TEST_FORM_SECRET=FORM_SECRET,
            **otel_env(receiver),
        )
        for n in range(3):
            body = json.dumps([hubspot_event(700 + n, 5700 + n)]).encode()
            response = requests.post(
                f"{url}/webhooks/hubspot", data=body, headers=signed(body, uri=f"{url}/webhooks/hubspot"), timeout=5
            )
            assert response.status_code == 200, response.text
        # The worker starts once all three wait in the inbox, and a batch window lets one claim take them all.
        worker = stack.worker(HUBLINK_BATCH_WINDOW_MS="1000", **otel_env(receiver))
        wanted = {("deals", str(5700 + n), "contacts", "7001") for n in range(3)}
        wait_for(lambda: wanted <= sim.pairs(), timeout=20, what="the three associations")
        wait_settled(redis_lib.Redis.from_url(stack.settings.redis_url), timeout=15)
        wait_for(lambda: receiver.named("settle"), timeout=10, what="the settle span")

        servers = exported(lambda: receiver.named("POST /webhooks/hubspot", "hublink-web"), "the requests", count=3)
        for server in servers:
            assert server.kind == "SERVER"
            assert server.attributes["http.request.method"] == "POST"
            assert server.attributes["http.route"] == "/webhooks/hubspot"
            assert server.attributes["http.response.status_code"] == 200
            assert server.attributes["hublink.request_id"]
        by_trace = {s.trace_id: s for s in servers}
        assert len(by_trace) == 3, "each request starts its own trace"
        # Each gunicorn worker built its own provider after the fork: its spans name the worker, not the master.
        [master] = [p for p in stack.processes if p.name == "gunicorn"]
        pids = {s.resource["process.pid"] for s in servers}
        assert pids and master.pid not in pids

        adds = exported(lambda: receiver.named("inbox add", "hublink-web"), "the inbox adds", count=3)
        assert {(a.trace_id, a.parent_span_id) for a in adds} == {(s.trace_id, s.span_id) for s in servers}
        assert all(a.kind == "PRODUCER" and a.attributes["messaging.message.id"] for a in adds)

        expansions = exported(lambda: receiver.named("inbox expand", "hublink-worker"), "the expansions", count=3)
        assert {(e.trace_id, e.parent_span_id) for e in expansions} == {(s.trace_id, s.span_id) for s in servers}
        assert all(e.kind == "CONSUMER" and e.attributes["hublink.associations"] == 1 for e in expansions)
        entry_ids = {a.attributes["messaging.message.id"] for a in adds}
        assert {e.attributes["messaging.message.id"] for e in expansions} == entry_ids

        drain = one(lambda: receiver.named("drain", "hublink-worker"), "one batch")
        assert drain.trace_id in by_trace and drain.parent_span_id == by_trace[drain.trace_id].span_id
        assert drain.attributes["hublink.batch.size"] == 3
        assert drain.attributes["hublink.lane"] == "62515|deals|contacts"
        assert drain.attributes["hublink.portal_id"] == "62515"

        call = one(lambda: [s for s in receiver.named("POST", "hublink-worker") if s.kind == "CLIENT"], "one call")
        assert (call.trace_id, call.parent_span_id) == (drain.trace_id, drain.span_id)
        assert call.attributes["http.response.status_code"] == 200
        assert call.attributes["hubspot.correlation_id"]
        assert call.attributes["hublink.batch.size"] == 3
        assert call.attributes["hublink.portal_id"] == "62515"
        assert call.attributes["url.full"].startswith(stack.settings.hubspot_base_url)
        assert call.attributes["url.full"].endswith("/batch/associate/default")
        assert set(call.links) == {(s.trace_id, s.span_id) for s in servers}, "the call links to each request"

        settle = one(lambda: receiver.named("settle", "hublink-worker"), "one settle step")
        assert (settle.trace_id, settle.parent_span_id) == (drain.trace_id, drain.span_id)
        assert settle.attributes["hublink.linked"] == 3
        assert settle.attributes["hublink.settle.outcomes"] == 3

        # The worker's log lines inside a span name it.
        lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
        expanded = [line for line in lines if line.get("event") == "inbox entry expanded"]
        assert expanded and all(line.get("trace_id") in by_trace for line in expanded)

    def test_a_direct_api_request_is_traced_to_its_call(self, stack: Stack, sim: Sim, receiver: OtlpReceiver) -> None:
        """``POST /api/associations``: its expansion and its HubSpot call are in the request's trace."""
        stack.worker(**otel_env(receiver))
        url = stack.gunicorn(**otel_env(receiver))
        item = {"fromObjectType": "deals", "fromObjectId": "811", "toObjectType": "contacts", "toObjectId": "911"}
        response = requests.post(
            f"{url}/api/associations",
            json={"associations": [item]},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=5,
        )
        assert response.status_code == 202, response.text
        wait_for(lambda: ("deals", "811", "contacts", "911") in sim.pairs(), timeout=15, what="the association")
        wait_for(lambda: receiver.named("settle"), timeout=10, what="the settle span")
        server = one(lambda: receiver.named("POST /api/associations", "hublink-web"), "the request")
        assert server.attributes["http.response.status_code"] == 202
        call = one(lambda: [s for s in receiver.named("PUT", "hublink-worker") if s.kind == "CLIENT"], "the single PUT")
        assert call.trace_id == server.trace_id
        assert call.links == ((server.trace_id, server.span_id),)
        expansion = one(lambda: receiver.named("inbox expand"), "the expansion")
        assert (expansion.trace_id, expansion.parent_span_id) == (server.trace_id, server.span_id)

    def test_a_refused_call_is_an_error_span_and_its_retry_links_to_the_same_request(
        self, stack: Stack, sim: Sim, receiver: OtlpReceiver
    ) -> None:
        """Strict HubSpot answers 429 once: that call's span says so (status, error), the retry succeeds in its own."""
        sim.put("/_sim/config", {"records": "strict"})
        sim.post(
            "/_sim/records",
            {"records": [{"objectType": "deals", "id": "841"}, {"objectType": "contacts", "id": "941"}]},
        )
        sim.post(
            "/_sim/faults",
            {"script": [{"status": 429, "headers": {"Retry-After": "1"}, "policy": "TEN_SECONDLY_ROLLING"}]},
        )
        stack.worker(**otel_env(receiver))
        url = stack.gunicorn(**otel_env(receiver))
        item = {"fromObjectType": "deals", "fromObjectId": "841", "toObjectType": "contacts", "toObjectId": "941"}
        response = requests.post(
            f"{url}/api/associations",
            json={"associations": [item]},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=5,
        )
        assert response.status_code == 202, response.text
        wait_for(lambda: ("deals", "841", "contacts", "941") in sim.pairs(), timeout=20, what="the association")
        calls = wait_for(
            lambda: (
                (found := [s for s in receiver.named("PUT", "hublink-worker") if s.kind == "CLIENT"])
                and len(found) >= 2
                and found
            ),
            timeout=10,
            what="both calls exported",
        )
        server = one(lambda: receiver.named("POST /api/associations", "hublink-web"), "the request")
        refused = [c for c in calls if c.attributes.get("http.response.status_code") == 429]
        linked = [c for c in calls if c.attributes.get("http.response.status_code") in (200, 201)]
        assert len(refused) == 1 and linked, [c.attributes for c in calls]
        assert refused[0].attributes["error.type"] == "RateLimitedError"
        assert refused[0].status_code == 2  # STATUS_CODE_ERROR
        assert linked[-1].status_code != 2
        assert {c.links for c in (refused[0], linked[-1])} == {((server.trace_id, server.span_id),)}

    def test_a_replay_is_traced_from_the_request_that_asked_for_it(
        self, stack: Stack, sim: Sim, receiver: OtlpReceiver
    ) -> None:
        """A dead letter replayed through the API: its HubSpot call is in the replay request's trace, linked to it."""
        [letter_id] = seed(stack.settings.redis_url, 1, start=931)
        url = stack.gunicorn(**otel_env(receiver))
        response = requests.post(
            f"{url}/api/dead-letters/{letter_id}/replay", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
        )
        assert response.status_code == 202, response.text
        stack.worker(**otel_env(receiver))
        wait_for(lambda: ("deals", "931", "contacts", "1") in sim.pairs(), timeout=15, what="the replayed association")
        wait_for(lambda: receiver.named("settle"), timeout=10, what="the settle span")
        server = one(lambda: receiver.named("POST /api/dead-letters/<letter_id>/replay"), "the replay request")
        call = one(lambda: [s for s in receiver.named("PUT", "hublink-worker") if s.kind == "CLIENT"], "the single PUT")
        assert call.trace_id == server.trace_id
        assert call.links == ((server.trace_id, server.span_id),)

    def test_a_lookup_keeps_the_request_it_came_from(
        self, stack: Stack, sim: Sim, receiver: OtlpReceiver, tmp_path: Path
    ) -> None:
        """A rule's lookup runs in a drain of its own; the association it becomes still links to the webhook."""
        rules = tmp_path / "lookup-rules.yaml"
        rules.write_text(LOOKUP_RULES)
        stack.settings = replace(stack.settings, hubspot_client_secret=SECRET, rules_file=str(rules))
        deal = {"objectType": "deals", "id": "5301", "properties": {"buyer_id": "7301"}}
        sim.post("/_sim/records", {"records": [deal]})
        stack.worker(**otel_env(receiver))
        url = stack.gunicorn(HUBSPOT_CLIENT_SECRET=SECRET, HUBLINK_RULES_FILE=str(rules), **otel_env(receiver))
        body = json.dumps([hubspot_event(1, 5301)]).encode()
        headers = signed(body, uri=f"{url}/webhooks/hubspot")
        assert requests.post(f"{url}/webhooks/hubspot", data=body, headers=headers, timeout=5).status_code == 200
        wait_for(lambda: ("deals", "5301", "contacts", "7301") in sim.pairs(), timeout=30, what="the association")
        wait_for(
            lambda: len(receiver.named("settle")) >= 2, timeout=10, what="the lookup's and the association's settle"
        )
        server = one(lambda: receiver.named("POST /webhooks/hubspot"), "the webhook")
        drains = exported(lambda: receiver.named("drain", "hublink-worker"), "both drains", count=2)
        assert {d.trace_id for d in drains} == {server.trace_id}
        assert sorted(is_lookup_lane(d.attributes["hublink.lane"]) for d in drains) == [False, True]
        call = one(
            lambda: [s for s in receiver.named("PUT", "hublink-worker") if s.kind == "CLIENT"], "the association's PUT"
        )
        assert call.trace_id == server.trace_id
        assert call.links == ((server.trace_id, server.span_id),)


class TestOff:
    """Without OTEL_* variables nothing is exported and nothing extra is stored."""

    def test_no_span_no_entry_field_no_member_origin(
        self, stack: Stack, sim: Sim, receiver: OtlpReceiver, redis_client: redis_lib.Redis
    ) -> None:
        """With tracing off, the inbox entry has no ``tp`` field, and web and worker export nothing."""
        url = stack.gunicorn()
        item = {"fromObjectType": "deals", "fromObjectId": "812", "toObjectType": "contacts", "toObjectId": "912"}
        response = requests.post(
            f"{url}/api/associations",
            json={"associations": [item]},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=5,
        )
        assert response.status_code == 202
        entries = redis_client.xrange(Keys(stack.settings.redis_prefix).inbox)
        assert len(entries) == 1 and b"tp" not in entries[0][1]
        assert sorted(entries[0][1]) == [b"at", b"body", b"kind", b"rules"]
        stack.worker()
        wait_for(lambda: ("deals", "812", "contacts", "912") in sim.pairs(), timeout=15, what="the association")
        assert receiver.requests == 0

    def test_the_sdk_is_never_imported(self, stack: Stack) -> None:
        """A web app serving intake and a worker's parts, built with tracing off, load no tracing SDK or exporter.

        (redis-py itself imports the SDK's metrics package when it is installed, once, at its own import; it
        records nothing unless an application turns its observability on, which HubLink does not.)
        """
        script = """
import sys
from web import create_app
import worker.runtime, worker.__main__
app = create_app()
item = {"fromObjectType": "deals", "fromObjectId": "1", "toObjectType": "contacts", "toObjectId": "2"}
answer = app.test_client().post(
    "/api/associations", json={"associations": [item]}, headers={"Authorization": "Bearer " + sys.argv[1]}
)
assert answer.status_code == 202, answer.get_data()
print(sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter"))))
"""
        env = {"PATH": os.environ.get("PATH", ""), **env_for(stack.settings)}
        done = subprocess.run(
            [python(), "-c", script, API_TOKEN], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]"
