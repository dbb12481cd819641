"""The audit log's pure parts: reading filters (what the API, the page and the CLI share) and naming targets."""

from __future__ import annotations

import pytest

from hublink.ops.audit import AuditEntry, AuditFilter, check_cursor
from web.audit import done_count, matching


def entry(**fields: str) -> AuditEntry:
    """An entry at 1,000 s after the epoch, with ``fields`` over plain defaults."""
    values = {"actor": "admin", "action": "replay", "target": "dead-letter 1", "outcome": "ok", "address": "local"}
    return AuditEntry(id="1000000-0", **{**values, **fields})


class TestFilters:
    """AuditFilter.parse reads the shared fields and names the one it cannot read."""

    def test_absent_and_blank_fields_mean_any(self) -> None:
        """A form sends every field: blank ones are no filter."""
        assert AuditFilter.parse({"actor": " ", "action": ""}) == AuditFilter()

    def test_an_api_caller_is_told_a_field_is_empty(self) -> None:
        """``?actor=`` from the API is a mistake, named."""
        with pytest.raises(ValueError, match="actor is empty"):
            AuditFilter.parse({"actor": ""}, blank_is_any=False)

    @pytest.mark.parametrize(
        ("values", "field"),
        [
            ({"action": "Replay"}, "action"),
            ({"action": "re play"}, "action"),
            ({"outcome": "ok: 3"}, "outcome"),
            ({"actor": "a\nb"}, "actor"),
            ({"target": "x" * 201}, "target"),
            ({"since": "last week"}, "since"),
            ({"until": "2026-02-30T00:00:00Z"}, "until"),
            ({"since": "20", "until": "10"}, "since"),
        ],
    )
    def test_a_bad_field_is_named(self, values: dict[str, str], field: str) -> None:
        """Each unreadable field raises ValueError starting with its name."""
        with pytest.raises(ValueError, match=f"^{field}"):
            AuditFilter.parse(values)

    def test_times_are_epoch_seconds_or_iso(self) -> None:
        """since and until become epoch milliseconds."""
        flt = AuditFilter.parse({"since": "1000", "until": "1970-01-01T00:20:00Z"})
        assert (flt.since_ms, flt.until_ms) == (1_000_000, 1_200_000)

    @pytest.mark.parametrize(
        ("flt", "fields", "expected"),
        [
            (AuditFilter(actor="cli:*"), {"actor": "cli:ops"}, True),
            (AuditFilter(actor="cli:*"), {"actor": "client"}, False),
            (AuditFilter(actor="admin"), {"actor": "admin2"}, False),
            (AuditFilter(action="rules.*"), {"action": "rules.publish"}, True),
            (AuditFilter(outcome="ok"), {"outcome": "ok: 12 replayed"}, True),
            (AuditFilter(outcome="ok"), {"outcome": "okay"}, False),
            (AuditFilter(target="Status=404"), {"target": "dead-letters status=404"}, True),
            (AuditFilter(since_ms=1_000_000, until_ms=1_000_000), {}, True),
            (AuditFilter(since_ms=1_000_001), {}, False),
        ],
    )
    def test_matching(self, flt: AuditFilter, fields: dict[str, str], expected: bool) -> None:
        """Exact or prefix (``*``), the outcome's first word, part of the target ignoring case, the time bounds."""
        assert flt.matches(entry(**fields)) is expected

    def test_a_cursor_is_a_stream_id(self) -> None:
        """Anything else is refused."""
        assert check_cursor("1764331200000-3") == "1764331200000-3"
        with pytest.raises(ValueError, match="cursor"):
            check_cursor("1764331200000")


class TestTargets:
    """How bulk actions name what they acted on."""

    def test_the_given_filters_in_their_order(self) -> None:
        """Blank and absent filters are left out; the order is the fields'."""
        values = {"status": 404, "source": "api", "category": ""}
        assert (
            matching("dead-letters", values, ("source", "status", "category")) == "dead-letters source=api status=404"
        )

    def test_no_filter_is_all(self) -> None:
        """A bulk action without a filter acted on everything."""
        assert matching("inbox", {}, ("source",)) == "inbox all"

    def test_counts_read_in_the_past_tense(self) -> None:
        """ok, the count and what was done."""
        assert done_count("replay", 12) == "ok: 12 replayed"
        assert done_count("purge", 1) == "ok: 1 purged"
