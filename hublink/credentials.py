"""Credentials: which HubSpot token serves which portal, and which rate-limit bucket it spends.

Single-portal mode uses ``HUBSPOT_ACCESS_TOKEN`` for every association. Tokens are held in objects whose
``repr`` hides them; buckets are named by a digest of the token, never the token itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from hublink.domain.errors import HubSpotErrorDetail, PermanentError
from hublink.keys import digest


class UnknownPortalError(PermanentError):
    """An association names a portal HubLink has no credentials for."""

    def __init__(self, portal_id: str | None) -> None:
        super().__init__(
            HubSpotErrorDetail(category="UNKNOWN_PORTAL", message=f"no credentials configured for portal {portal_id}")
        )


@dataclass(frozen=True, slots=True)
class Credential:
    """A bearer token and the rate-limit bucket its requests count against."""

    token: str = field(repr=False)
    bucket: str


class CredentialProvider(Protocol):
    """Finds the credential for a portal (None: single-portal mode)."""

    def for_portal(self, portal_id: str | None) -> Credential:
        """Return the credential, or raise UnknownPortalError."""
        ...


class StaticCredentials:
    """One private-app token for every portal (single-portal mode)."""

    def __init__(self, token: str) -> None:
        self._credential = Credential(token, f"app-{digest(token)[:16]}")

    def for_portal(self, portal_id: str | None) -> Credential:
        """The one configured credential, whatever the portal."""
        return self._credential
