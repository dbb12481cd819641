"""The baseline worker job: what most tools do, one RQ job and one HubSpot request per association."""

from __future__ import annotations

import os

import requests


def associate_one(from_type: str, from_id: str, to_type: str, to_id: str) -> int:
    """PUT one default association; raise for a non-2xx (RQ then fails the job)."""
    base = os.environ["HUBSPOT_BASE_URL"]
    token = os.environ["HUBSPOT_ACCESS_TOKEN"]
    url = f"{base}/crm/objects/2026-03/{from_type}/{from_id}/associations/default/{to_type}/{to_id}"
    response = requests.put(url, headers={"Authorization": f"Bearer {token}"}, timeout=(3.05, 10))
    response.raise_for_status()
    return response.status_code
