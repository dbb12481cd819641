"""What the examples' tests share: start the stack with an example's rules, sign and post its event."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import requests

from hublink.domain import signatures
from tests.integration.conftest import Stack

EXAMPLES = Path(__file__).resolve().parent
CLIENT_SECRET = "example-client-secret"


def start(stack: Stack, example: str, **env: str) -> str:
    """Start a worker and gunicorn with the example's rules; return the web URL."""
    rules = str(EXAMPLES / example / "rules.yaml")
    stack.settings = replace(stack.settings, hubspot_client_secret=CLIENT_SECRET, rules_file=rules)
    stack.worker(HUBSPOT_CLIENT_SECRET=CLIENT_SECRET, HUBLINK_RULES_FILE=rules, **env)
    return stack.gunicorn(HUBSPOT_CLIENT_SECRET=CLIENT_SECRET, HUBLINK_RULES_FILE=rules, **env)


def event_body(example: str) -> bytes:
    """The example's sample event, as bytes."""
    return (EXAMPLES / example / "event.json").read_bytes()


def post_signed_v3(url: str, path: str, body: bytes) -> requests.Response:
    """POST with HubSpot's v3 signature over the URI gunicorn sees."""
    ts = int(time.time() * 1000)
    headers = {
        "X-HubSpot-Signature-v3": signatures.sign_v3(CLIENT_SECRET, "POST", url + path, body, ts),
        "X-HubSpot-Request-Timestamp": str(ts),
        "Content-Type": "application/json",
    }
    return requests.post(url + path, data=body, headers=headers, timeout=10)


def post_signed_v2(url: str, path: str, body: bytes) -> requests.Response:
    """POST with HubSpot's v2 signature (workflow actions)."""
    headers = {
        "X-HubSpot-Signature": signatures.sign_v2(CLIENT_SECRET, "POST", url + path, body),
        "X-HubSpot-Signature-Version": "v2",
        "Content-Type": "application/json",
    }
    return requests.post(url + path, data=body, headers=headers, timeout=10)


def compact(body: bytes) -> bytes:
    """Re-encode a JSON file's content compactly (what a sender would put on the wire)."""
    return json.dumps(json.loads(body)).encode()
