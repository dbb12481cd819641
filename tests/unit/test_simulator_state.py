"""The simulator's logic without sockets: rolling windows, fault scripts, invalid ids, OAuth expiry, search.

Time is a ``Clock`` the tests move and randomness a seeded ``random.Random``, so nothing here waits.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from hubspot_sim.accounts import AuthOutcome
from hubspot_sim.api import HubSpotApi
from hubspot_sim.messages import Request
from hubspot_sim.oauth import RefreshRefusedError
from hubspot_sim.rate_limits import RateLimit
from hubspot_sim.records import SearchQuery, SeedRecord
from hubspot_sim.request_log import token_hint
from hubspot_sim.state import SimState

TOKEN = "pat-na1-unit-test-token-0001"
PUT_PATH = "/crm/objects/2026-03/deals/1/associations/default/contacts/2"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        """The current time."""
        return self.now


def put(api: HubSpotApi, path: str = PUT_PATH, token: str | None = TOKEN) -> Any:
    """One single-association PUT through the API handler, without a socket."""
    return api.handle(Request("PUT", path, authorization=f"Bearer {token}" if token else None))


class TestRateLimitText:
    """Rate limits are read from text such as 100/10s."""

    @pytest.mark.parametrize(
        ("text", "count", "window_s"),
        [
            ("100/10s", 100, 10.0),
            ("190/10s", 190, 10.0),
            ("5/1s", 5, 1.0),
            ("5/s", 5, 1.0),
            ("50/500ms", 50, 0.5),
        ],
    )
    def test_accepted_forms(self, text: str, count: int, window_s: float) -> None:
        """Each documented form gives its count and window."""
        assert RateLimit.parse(text) == RateLimit(count, window_s)

    @pytest.mark.parametrize("text", ["", "100", "x/10s", "0/10s", "10/0s", "10/10h"])
    def test_malformed_text_is_refused(self, text: str) -> None:
        """Text that is not N/<window> with N >= 1 and a positive window raises ValueError."""
        with pytest.raises(ValueError, match="rate limit"):
            RateLimit.parse(text)


class TestRateWindow:
    """The rolling window per caller."""

    def test_limit_then_recover_after_the_window(self) -> None:
        """Three of 3/10s pass, the fourth is refused, and the window rolls on."""
        clock = Clock()
        state = SimState(rate_limit="3/10s", clock=clock)
        assert [state.take("t")[0] for _ in range(4)] == [True, True, True, False]
        clock.now += 10.01
        accepted, headers = state.take("t")
        assert accepted
        assert headers == {
            "X-HubSpot-RateLimit-Max": "3",
            "X-HubSpot-RateLimit-Remaining": "2",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }

    def test_refused_requests_do_not_count(self) -> None:
        """Requests answered 429 leave the window as it was, so recovery comes one window after the first."""
        clock = Clock()
        state = SimState(rate_limit="1/10s", clock=clock)
        assert state.take("t")[0]
        for _ in range(5):
            clock.now += 1
            assert not state.take("t")[0]
        clock.now = 1_000_000.0 + 10.001
        assert state.take("t")[0]

    def test_callers_have_separate_windows(self) -> None:
        """One caller's use does not spend another's."""
        state = SimState(rate_limit="1/10s", clock=Clock())
        assert state.take("a")[0]
        assert state.take("b")[0]
        assert not state.take("a")[0]

    def test_search_has_its_own_window_and_no_headers(self) -> None:
        """Search counts against its own limit only, and its answers carry no rate-limit headers."""
        state = SimState(rate_limit="1/10s", search_rate_limit="2/1s", clock=Clock())
        assert state.take("t", search=True) == (True, {})
        assert state.take("t", search=True) == (True, {})
        assert state.take("t", search=True) == (False, {})
        assert state.take("t")[0]

    def test_no_limit_means_no_headers(self) -> None:
        """Without a configured limit every request passes and no headers are sent."""
        state = SimState()
        assert state.take("t") == (True, {})

    def test_a_changed_limit_starts_with_empty_windows(self) -> None:
        """PUT /_sim/config with a new rate_limit gives every caller a fresh window."""
        state = SimState(rate_limit="1/10s", clock=Clock())
        assert state.take("t")[0]
        state.configure({"rate_limit": "2/10s"})
        assert [state.take("t")[0] for _ in range(3)] == [True, True, False]


class TestFaults:
    """Scripted answers come first and in order; random faults follow their rates."""

    def test_script_order(self) -> None:
        """Scripted answers are handed out in order, then normal processing resumes."""
        state = SimState()
        state.set_faults({"script": [{"status": 429}, {"status": 503}]})
        answers = [state.decide("associate_default").answer for _ in range(3)]
        assert [a.status if a else None for a in answers] == [429, 503, None]

    def test_scripts_posted_later_are_appended(self) -> None:
        """A second POST adds its script after the first one's."""
        state = SimState()
        state.set_faults({"script": [{"status": 500}]})
        state.set_faults({"script": [{"status": 502}]})
        assert [entry["status"] for entry in state.faults_json()["script"]] == [500, 502]

    def test_error_rate_one_always_fails(self) -> None:
        """With error_rate 1.0 every request gets the error status, until the faults are cleared."""
        state = SimState()
        state.set_faults({"error_rate": 1.0, "error_status": 502})
        decision = state.decide("search")
        assert decision.answer is not None
        assert decision.answer.status == 502
        state.clear_faults()
        assert state.decide("search").answer is None

    def test_rates_follow_the_random_source(self) -> None:
        """About half the requests hang with hang_rate 0.5 (seeded, so the count is exact)."""
        state = SimState(rng=random.Random(7))
        state.set_faults({"hang_rate": 0.5, "hang_ms": 1234})
        hangs = [state.decide("associate_default").hang_ms for _ in range(1000)]
        assert set(hangs) == {0, 1234}
        assert 400 < hangs.count(1234) < 600

    def test_endpoint_filter(self) -> None:
        """Faults limited to some endpoints leave the others alone."""
        state = SimState()
        state.set_faults({"error_rate": 1.0, "endpoints": ["batch_associate_default"]})
        assert state.decide("associate_default").answer is None
        assert state.decide("batch_associate_default").answer is not None

    def test_latency_adds_to_the_configured_latency(self) -> None:
        """Fault latency is added to the command line's --latency-ms."""
        state = SimState(latency_ms=5)
        state.set_faults({"latency_ms": 20})
        assert state.decide("read_object").latency_ms == 25

    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({"error_rate": 2}, "error_rate"),
            ({"error_status": 99}, "error_status"),
            ({"hang_ms": -1}, "hang_ms"),
            ({"script": [{"headers": {}}]}, "script[0]"),
            ({"script": [{"status": 429, "policy": "HOURLY"}]}, "script[0].policy"),
            ({"endpoints": ["nope"]}, "endpoints"),
            ({"errror_rate": 1}, "unknown fault keys"),
        ],
    )
    def test_bad_faults_are_refused_whole(self, body: dict[str, Any], named: str) -> None:
        """A bad key raises ValueError naming it, and nothing of the body is applied."""
        state = SimState()
        with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
            state.set_faults({"latency_ms": 50, **body})
        assert state.faults_json()["latency_ms"] == 0


class TestApiOrder:
    """The API handler's order of checks, exercised without a socket."""

    def test_unauthenticated_requests_do_not_spend_the_script(self) -> None:
        """A 401 leaves the scripted answer for the next authenticated request."""
        api = HubSpotApi(SimState(tokens=[TOKEN]))
        api.state.set_faults({"script": [{"status": 503}]})
        assert put(api, token=None).status == 401
        assert put(api, token="wrong-token-123").status == 401
        assert put(api).status == 503
        assert put(api).status == 200

    def test_a_hang_records_nothing(self) -> None:
        """A hung request waits hang_ms (through the injected pause), answers 504 and records nothing."""
        waited: list[float] = []
        api = HubSpotApi(SimState(), pause=waited.append)
        api.state.set_faults({"hang_rate": 1.0, "hang_ms": 2500})
        answer = put(api)
        assert (answer.status, answer.close, waited) == (504, True, [2.5])
        assert api.state.associations_json()["associations"] == []

    def test_scripted_answers_are_not_counted_in_the_window(self) -> None:
        """A scripted answer pre-empts the rate limit and does not use up the window."""
        api = HubSpotApi(SimState(rate_limit="1/10s", clock=Clock()))
        api.state.set_faults({"script": [{"status": 500}]})
        scripted = put(api)
        assert scripted.status == 500
        assert scripted.headers["X-HubSpot-RateLimit-Remaining"] == "1"
        assert put(api).status == 200
        assert put(api).status == 429

    def test_rate_headers_leave_the_body_alone(self) -> None:
        """Under a rate limit an association answer keeps its body and gains the three headers."""
        api = HubSpotApi(SimState(rate_limit="5/10s", clock=Clock()))
        answer = put(api)
        assert answer.json()["results"][0]["to"] == {"id": "2"}
        assert answer.headers["X-HubSpot-RateLimit-Remaining"] == "4"

    def test_drop_closes_without_an_answer(self) -> None:
        """A drop entry is logged with status 0 and asks the transport to close the connection."""
        api = HubSpotApi(SimState())
        api.state.set_faults({"script": [{"drop": True}]})
        assert put(api).drop
        assert api.state.requests_json()["by_status"] == {"0": 1}


class TestInvalidIds:
    """Ids that are invalid now, and turn valid later."""

    def test_invalid_id_becomes_valid_after_its_mentions(self) -> None:
        """An id invalid for one request is valid on the next."""
        state = SimState()
        state.mark_invalid(["9"], 404, ttl_requests=1)
        assert state.screen(["1", "9"]) == {"9": 404}
        assert state.screen(["1", "9"]) == {}

    def test_a_request_counts_once_however_often_it_names_the_id(self) -> None:
        """A batch naming the id in three inputs counts as one request against ttl_requests."""
        state = SimState()
        state.mark_invalid(["9"], 400, ttl_requests=2)
        assert state.screen(["9", "1", "9", "9"]) == {"9": 400}
        assert state.screen(["9"]) == {"9": 400}
        assert state.screen(["9"]) == {}

    def test_until_expires_with_the_clock(self) -> None:
        """An id marked invalid until a time is valid from that time on."""
        clock = Clock()
        state = SimState(clock=clock)
        state.mark_invalid(["9"], 400, until=clock.now + 5)
        assert state.screen(["9"]) == {"9": 400}
        clock.now += 5
        assert state.screen(["9"]) == {}

    def test_without_expiry_it_stays_until_cleared(self) -> None:
        """An id with neither ttl_requests nor until stays invalid until cleared."""
        state = SimState()
        state.mark_invalid(["9"], 400)
        for _ in range(3):
            assert state.screen(["9"]) == {"9": 400}
        state.clear_invalid()
        assert state.screen(["9"]) == {}

    def test_search_does_not_see_invalid_ids(self) -> None:
        """A record whose id is invalid is left out of search results without counting down."""
        state = SimState(records=[SeedRecord("contacts", "9", {"email": "a@b.c"})])
        state.mark_invalid(["9"], 404, ttl_requests=1)
        assert state.search("contacts", SearchQuery())["total"] == 0
        assert state.screen(["9"]) == {"9": 404}
        assert state.search("contacts", SearchQuery())["total"] == 1


class TestOAuth:
    """Refresh tokens and the access tokens issued for them."""

    def test_oauth_tokens_expire(self) -> None:
        """An issued access token authorises until its lifetime ends, then it is EXPIRED."""
        clock = Clock()
        state = SimState(tokens=["static"], clock=clock)
        state.register_oauth_app("cid", "csecret", "rt", 62515)
        issued = state.refresh("cid", "csecret", "rt")
        assert (issued["expires_in"], issued["hub_id"], issued["token_type"]) == (1800, 62515, "bearer")
        assert state.authenticate(issued["access_token"]).outcome is AuthOutcome.OK
        clock.now += 1800
        assert state.authenticate(issued["access_token"]).outcome is AuthOutcome.EXPIRED

    def test_lifetime_is_configurable(self) -> None:
        """oauth_token_ttl_s sets the lifetime of tokens issued afterwards."""
        state = SimState(clock=Clock())
        state.configure({"oauth_token_ttl_s": 2})
        state.register_oauth_app("cid", "s", "r", 1)
        assert state.refresh("cid", "s", "r")["expires_in"] == 2

    @pytest.mark.parametrize(
        ("client_id", "secret", "refresh", "reason"),
        [
            ("cid", "wrong", "rt", "BAD_REFRESH_TOKEN"),
            ("cid", "s", "wrong", "BAD_REFRESH_TOKEN"),
            ("x", "s", "rt", "BAD_CLIENT_ID"),
        ],
    )
    def test_wrong_credentials_are_refused(
        self,
        client_id: str,
        secret: str,
        refresh: str,
        reason: str,
    ) -> None:
        """A wrong secret or refresh token is BAD_REFRESH_TOKEN; an unknown client is BAD_CLIENT_ID."""
        state = SimState()
        state.register_oauth_app("cid", "s", "rt", 7)
        with pytest.raises(RefreshRefusedError) as refused:
            state.refresh(client_id, secret, refresh)
        assert refused.value.status_name == reason

    def test_tokens_of_one_portal_share_a_window(self) -> None:
        """Two tokens issued for one portal draw on one rate window; a refresh grants no fresh window."""
        state = SimState(rate_limit="1/10s", clock=Clock())
        state.register_oauth_app("cid", "s", "rt", 7)
        first, second = (state.refresh("cid", "s", "rt")["access_token"] for _ in range(2))
        key_1, key_2 = state.authenticate(first).window_key, state.authenticate(second).window_key
        assert key_1 == key_2
        assert state.take(key_1)[0]
        assert not state.take(key_2)[0]

    def test_any_token_is_accepted_when_none_is_configured(self) -> None:
        """With no tokens configured any non-empty token passes; an empty one never does."""
        state = SimState()
        assert state.authenticate("anything").outcome is AuthOutcome.OK
        assert state.authenticate("").outcome is AuthOutcome.MISSING


class TestSearch:
    """HubSpot's search semantics over seeded records."""

    RECORDS = (
        SeedRecord("contacts", "1", {"email": "Ann@Example.com", "age": "30"}),
        SeedRecord("contacts", "2", {"email": "bob@example.com", "age": "45"}),
        SeedRecord("contacts", "3", {"email": None, "age": "9"}),
        SeedRecord("companies", "4", {"domain": "example.com"}),
    )

    def ids(self, body: dict[str, Any]) -> list[str]:
        """Ids of the contacts a search body finds."""
        state = SimState(records=self.RECORDS)
        return [r["id"] for r in state.search("contacts", SearchQuery.parse(body))["results"]]

    def test_eq_ignores_case(self) -> None:
        """EQ on an email matches whatever the case, as HubSpot's does."""
        wanted = {"propertyName": "email", "value": "ANN@example.COM"}
        assert self.ids({"filterGroups": [{"filters": [wanted]}]}) == ["1"]

    def test_groups_are_or_and_filters_are_and(self) -> None:
        """Filter groups are alternatives; filters inside a group must all hold."""
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "age", "operator": "GT", "value": "40"}]},
                {
                    "filters": [
                        {"propertyName": "age", "operator": "LT", "value": "40"},
                        {"propertyName": "email", "operator": "HAS_PROPERTY"},
                    ]
                },
            ]
        }
        assert self.ids(body) == ["1", "2"]

    def test_paging_reports_the_total_and_the_next_cursor(self) -> None:
        """A limited page carries the total and paging.next.after for the rest."""
        state = SimState(records=self.RECORDS)
        page = state.search("contacts", SearchQuery.parse({"limit": 2}))
        assert (page["total"], [r["id"] for r in page["results"]]) == (3, ["1", "2"])
        cursor = page["paging"]["next"]["after"]
        rest = state.search("contacts", SearchQuery.parse({"limit": 2, "after": cursor}))
        assert ([r["id"] for r in rest["results"]], "paging" in rest) == (["3"], False)

    def test_requested_properties_only(self) -> None:
        """With properties given, results carry only those (and hs_object_id)."""
        state = SimState(records=self.RECORDS)
        found = state.search("contacts", SearchQuery.parse({"properties": ["age"], "limit": 1}))
        assert found["results"][0]["properties"] == {"hs_object_id": "1", "age": "30"}

    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({"filterGroups": [{"filters": [{"propertyName": "a", "operator": "LIKE"}]}]}, "operator"),
            ({"filterGroups": [{"filters": [{"propertyName": "a", "operator": "IN"}]}]}, r"\.values"),
            ({"limit": 201}, "limit"),
            ({"after": "x"}, "after"),
        ],
    )
    def test_bad_search_bodies_name_the_field(self, body: dict[str, Any], named: str) -> None:
        """A malformed search body raises ValueError naming the field."""
        with pytest.raises(ValueError, match=named):
            SearchQuery.parse(body)


class TestAssociationsAndLog:
    """The association set and the request log."""

    def test_associations_are_a_set_in_first_seen_order(self) -> None:
        """Re-associating keeps one entry and its first receive time; since skips the first N."""
        clock = Clock()
        state = SimState(clock=clock)
        state.associate([("deals", "1", "contacts", "2"), ("deals", "1", "contacts", "3")])
        clock.now += 1
        state.associate([("deals", "1", "contacts", "2")])
        listed = state.associations_json()
        assert listed["total"] == 2
        assert [(a["toObjectId"], a["received_at"]) for a in listed["associations"]] == [
            ("2", 1_000_000.0),
            ("3", 1_000_000.0),
        ]
        assert [a["toObjectId"] for a in state.associations_json(since=1)["associations"]] == ["3"]

    def test_inputs_count_only_for_answers_of_200(self) -> None:
        """inputs_total adds the pairs of requests answered 200, not of refused ones."""
        state = SimState()
        for status in (200, 503):
            state.log(method="POST", path="/b", status=status, endpoint="batch", token=TOKEN, inputs=100)
        seen = state.requests_json()
        assert (seen["total"], seen["inputs_total"], seen["by_status"]) == (2, 100, {"200": 1, "503": 1})

    def test_token_hint_never_shows_a_token(self) -> None:
        """The log keeps only the last four characters, and nothing of a short token."""
        assert token_hint(TOKEN) == "0001"
        assert token_hint("short") == ""
        assert token_hint(None) == ""

    def test_reset_returns_to_the_start_up_configuration(self) -> None:
        """Reset empties everything and restores the command line's tokens, limits and seed."""
        state = SimState(tokens=["t"], rate_limit="5/10s", records=[SeedRecord("deals", "1", {})])
        state.configure({"tokens": ["other"], "rate_limit": None})
        state.associate([("deals", "1", "contacts", "2")])
        state.seed_records([SeedRecord("deals", "2", {})])
        state.mark_invalid(["1"], 400)
        state.reset()
        assert state.config_json()["rate_limit"] == "5/10s"
        assert state.authenticate("t").outcome is AuthOutcome.OK
        assert [r["id"] for r in state.records_json()["records"]] == ["1"]
        assert (state.associations_json()["total"], state.screen(["1"])) == (0, {})

    @pytest.mark.parametrize(
        "body",
        [{"rate_limit": "fast"}, {"latency_ms": -1}, {"tokens": [""]}, {"ratelimit": 1}],
    )
    def test_bad_config_is_refused(self, body: dict[str, Any]) -> None:
        """A bad PUT /_sim/config body raises ValueError and changes nothing."""
        state = SimState(rate_limit="5/10s")
        with pytest.raises(ValueError, match=r"rate_limit|latency_ms|tokens|unknown"):
            state.configure(body)
        assert state.config_json()["rate_limit"] == "5/10s"
