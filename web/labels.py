"""The direct API's label check: each item's ``label`` resolved to association types before it is accepted.

An unknown name is a 422 naming the labels HubSpot defines for that pair of object types; accepted items
carry the resolved types, so the workers need not resolve them again. The definitions come from the Redis
cache shared with the workers (``hublink.delivery.labels``); on a miss the web asks HubSpot once, within
the portal's rate limit. Without a HubSpot credential on the web (no ``HUBSPOT_ACCESS_TOKEN`` or portals
file), or when HubSpot does not answer, the answer is a 503: accepting a label that may not exist would
only turn the caller's mistake into a dead letter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis import Redis

from hublink.config.portals import load_portals
from hublink.config.settings import Settings
from hublink.delivery.credentials import CredentialProvider, PortalCredentials, StaticCredentials
from hublink.delivery.hubspot import HubSpotClient
from hublink.delivery.labels import UNKNOWN_LABEL_CATEGORY, LabelCatalog, LabelReader, unknown_label_message
from hublink.delivery.rate_limit import Limiter, RedisRateLimiter
from hublink.domain.associations import AssociationRequest
from hublink.domain.errors import (
    ConfigError,
    DeliveryError,
    FieldProblem,
    InvalidInputError,
    NotFoundError,
    ValidationRejectedError,
)
from hublink.domain.limits import RateLimit
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts
from web.errors import ApiError


@dataclass(frozen=True, slots=True)
class LabelCheck:
    """What the web needs to resolve labels: the catalog, credentials, and the shared limiter."""

    catalog: LabelReader
    credentials: CredentialProvider | None
    limiter: Limiter
    rate_limit: RateLimit


def resolve_labels(check: LabelCheck | None, requests: Sequence[AssociationRequest]) -> list[AssociationRequest]:
    """``requests`` with each label resolved to its types.

    Raises InvalidInputError (422) naming every unknown label and the known ones, ApiError 503 when the
    labels cannot be read now.
    """
    if not any(r.label is not None and not r.types for r in requests):
        return list(requests)
    if check is None or check.credentials is None:
        raise ApiError(
            503,
            "labels_unavailable",
            "labels need a HubSpot credential on the web (HUBSPOT_ACCESS_TOKEN or HUBLINK_PORTALS_FILE)",
        )
    resolved: list[AssociationRequest] = []
    problems: list[FieldProblem] = []
    for index, request in enumerate(requests):
        if request.label is None or request.types:
            resolved.append(request)
            continue
        try:
            credential = check.credentials.for_portal(request.portal_id)

            def take(
                bucket: str = credential.bucket, limit: RateLimit = credential.rate_limit or check.rate_limit
            ) -> None:
                wait_ms = check.limiter.acquire(bucket, limit)
                if wait_ms:
                    raise ApiError(
                        503,
                        "rate_limited",
                        "HubSpot's rate limit is spent: the label definitions cannot be read now",
                        headers={"Retry-After": str(max(1, -(-wait_ms // 1000)))},
                    )

            found = check.catalog.definitions(
                credential, request.portal_id, request.from_object_type, request.to_object_type, take
            )
        except (ValidationRejectedError, NotFoundError) as exc:
            # HubSpot refused the pair of object types itself: no label can exist for it (the caller's input).
            problems.append(
                FieldProblem(
                    f"/associations/{index}/label",
                    f"label: HubSpot has no label definitions for {request.from_object_type} -> "
                    f"{request.to_object_type}: {exc.detail.message[:200]}",
                )
            )
            continue
        except DeliveryError as exc:
            raise ApiError(
                503,
                "labels_unavailable",
                f"HubSpot's label definitions could not be read: {exc.detail.message}",
                headers={"Retry-After": "5"},
            ) from None
        types = found.types_for(request.label)
        if types is None:
            problems.append(
                FieldProblem(
                    f"/associations/{index}/label",
                    unknown_label_message(request.label, request.from_object_type, request.to_object_type, found.known),
                )
            )
            continue
        resolved.append(dataclasses.replace(request, types=types))
    if problems:
        raise InvalidInputError(f"{len(problems)} unknown label(s) ({UNKNOWN_LABEL_CATEGORY})", problems)
    return resolved


def build_label_check(
    settings: Settings, redis: Redis, keys: Keys, scripts: Scripts, environ: Mapping[str, str]
) -> LabelCheck:
    """The web's label check, with the same credentials a worker would use (none: labels answer 503)."""
    client, credentials = hubspot_access(settings, redis, keys, environ)
    return LabelCheck(
        LabelCatalog(redis, keys, client, cache_ttl_s=settings.label_cache_ttl_s),
        credentials,
        RedisRateLimiter(redis, keys, margin=settings.rate_limit_margin, scripts=scripts),
        settings.hubspot_rate_limit,
    )


def hubspot_access(
    settings: Settings, redis: Redis, keys: Keys, environ: Mapping[str, str]
) -> tuple[HubSpotClient, CredentialProvider | None]:
    """A HubSpot client and the credentials a worker would use (None without a token or portals file)."""
    client = HubSpotClient(
        settings.hubspot_base_url,
        connect_timeout_s=settings.hubspot_connect_timeout_s,
        read_timeout_s=settings.hubspot_read_timeout_s,
    )
    static = StaticCredentials(settings.hubspot_access_token) if settings.hubspot_access_token else None
    credentials: CredentialProvider | None = static
    if settings.portals_file:
        try:
            with open(settings.portals_file, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(f"HUBLINK_PORTALS_FILE: cannot read {settings.portals_file}: {exc.strerror}") from None
        portals = load_portals(text, environ, settings.portals_file)
        credentials = PortalCredentials(portals, redis, keys, client, fallback=static)
    return client, credentials
