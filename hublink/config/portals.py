"""The portals file (``HUBLINK_PORTALS_FILE``): which credentials and budget serve each HubSpot portal.

Parsed once at start-up; secrets are named by environment variable (``token_env``, ``client_secret_env``,
``refresh_token_env``) or given inline, and kept out of ``repr``. How the credentials are used (token
cache, OAuth refresh) is ``hublink.delivery.credentials``'s business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from hublink.domain.associations import is_object_id
from hublink.domain.errors import ConfigError
from hublink.domain.limits import RateLimit
from hublink.domain.sources import secret_from
from hublink.domain.times import check_time_zone


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """An OAuth app installed in one portal."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class PortalEntry:
    """One portal of the portals file."""

    portal_id: str
    token: str | None = field(default=None, repr=False)
    oauth: OAuthApp | None = None
    rate_limit: RateLimit | None = None
    #: The HubSpot host that serves this account (EU-hosted accounts: ``https://api-eu1.hubapi.com``).
    base_url: str | None = None
    #: The account's time zone: its daily limit resets at midnight there.
    time_zone: str | None = None
    #: Read this portal's Webhooks Journal (``journal: true``): workers poll it and feed its events to the inbox.
    journal: bool = False


def load_portals(text: str, environ: Mapping[str, str], filename: str) -> dict[str, PortalEntry]:
    """Parse the portals file; raise ConfigError naming the file, the portal and the field."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: not valid YAML: {exc}") from None
    portals = doc.get("portals") if isinstance(doc, dict) else None
    if not isinstance(portals, dict) or not portals:
        raise ConfigError(f"{filename}: expected a 'portals' mapping of portal id to credentials")
    entries: dict[str, PortalEntry] = {}
    for raw_id, conf in portals.items():
        portal_id = str(raw_id)
        where = f"{filename}: portals.{portal_id}"
        if not is_object_id(portal_id) or not isinstance(conf, dict):
            raise ConfigError(f"{where}: expected a numeric portal id mapped to token or oauth settings")
        rate_limit = None
        if conf.get("rate_limit") is not None:
            try:
                rate_limit = RateLimit.parse(str(conf["rate_limit"]))
            except ValueError as exc:
                raise ConfigError(f"{where}: rate_limit: {exc}") from None
        base_url = conf.get("baseUrl")
        if base_url is not None and (not isinstance(base_url, str) or not base_url.startswith(("https://", "http://"))):
            raise ConfigError(f"{where}: baseUrl: expected an http(s) URL such as https://api-eu1.hubapi.com")
        time_zone = conf.get("timeZone")
        if time_zone is not None:
            try:
                time_zone = check_time_zone(str(time_zone))
            except ValueError as exc:
                raise ConfigError(f"{where}: timeZone: {exc}") from None
        host = base_url.rstrip("/") if base_url else None
        journal = conf.get("journal", False)
        if not isinstance(journal, bool):
            raise ConfigError(f"{where}: journal: expected true or false, got {journal!r}")
        if "oauth" in conf:
            oauth = conf["oauth"]
            if not isinstance(oauth, dict) or not isinstance(oauth.get("client_id"), str):
                raise ConfigError(f"{where}: oauth: needs client_id, client_secret(_env), refresh_token(_env)")
            app = OAuthApp(
                oauth["client_id"],
                secret_from(oauth, "client_secret", environ, f"{where}.oauth"),
                secret_from(oauth, "refresh_token", environ, f"{where}.oauth"),
            )
            entries[portal_id] = PortalEntry(
                portal_id, oauth=app, rate_limit=rate_limit, base_url=host, time_zone=time_zone, journal=journal
            )
        else:
            token = secret_from(conf, "token", environ, where)
            entries[portal_id] = PortalEntry(
                portal_id, token=token, rate_limit=rate_limit, base_url=host, time_zone=time_zone, journal=journal
            )
    return entries
