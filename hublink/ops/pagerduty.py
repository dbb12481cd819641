"""PagerDuty Events API v2: the bodies HubLink sends to page someone when a portal's circuit opens.

Pure: builds the JSON of a ``trigger`` (the circuit opened) and a ``resolve`` (it closed) with one
``dedup_key`` per portal, so PagerDuty keeps one incident per portal however often it opens, and closing
the circuit resolves it. Sending is ``hublink.ops.alerts``'s business. The routing key (an integration
key, ``HUBLINK_ALERT_PAGERDUTY_KEY``) is a secret: it is only ever put in the body, never in a log line.
"""

from __future__ import annotations

from typing import Any

#: Where Events v2 are sent (``HUBLINK_ALERT_PAGERDUTY_URL``).
DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
#: PagerDuty's limit on ``payload.summary``.
MAX_SUMMARY = 1024


def dedup_key(portal: str) -> str:
    """One incident per portal's circuit."""
    return f"hublink-circuit-{portal}"


def trigger(
    routing_key: str, *, portal: str, reason: str, summary: str, dashboard_url: str, details: dict[str, Any]
) -> dict[str, Any]:
    """The event that opens (or adds to) the portal's incident."""
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(portal),
        "client": "HubLink",
        "client_url": dashboard_url,
        "links": [{"href": dashboard_url, "text": "HubLink dashboard"}],
        "payload": {
            "summary": summary[:MAX_SUMMARY],
            "source": "hublink",
            "severity": "critical",
            "component": f"portal {portal}",
            "group": "hubspot",
            "class": reason,
            "custom_details": details,
        },
    }


def resolve(routing_key: str, *, portal: str) -> dict[str, Any]:
    """The event that resolves the portal's incident."""
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key(portal)}
