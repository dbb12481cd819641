"""The error tree against HubSpot's status table: every row has a class, and no error shows a token."""

from __future__ import annotations

import pytest

from hublink.domain.errors import (
    AuthError,
    DeliveryError,
    ForbiddenError,
    InvalidSignatureError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServerError,
    TransientError,
    ValidationRejectedError,
)
from hublink.hubspot import error_for_status

#: hubspot-api.md §3.2 (plus 477), with the class each status must map to.
STATUS_TABLE: dict[int, type[DeliveryError]] = {
    400: ValidationRejectedError,
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ValidationRejectedError,
    414: ValidationRejectedError,
    423: ServerError,
    429: RateLimitedError,
    477: ServerError,
    500: ServerError,
    502: ServerError,
    503: ServerError,
    504: ServerError,
    521: ServerError,
    522: ServerError,
    523: ServerError,
    524: ServerError,
    525: PermanentError,
    526: PermanentError,
}


class TestStatusTable:
    """Exactly one place maps statuses to classes, and it covers the whole table."""

    @pytest.mark.parametrize(("status", "expected"), sorted(STATUS_TABLE.items()))
    def test_every_documented_status_has_its_class(self, status: int, expected: type[DeliveryError]) -> None:
        """Each status of HubSpot's table maps to the class the README's error table names."""
        error = error_for_status(status, {"message": "x", "correlationId": "c-1"}, {}, 0.0)
        assert type(error) is expected
        assert error.status == status

    def test_transient_and_permanent_are_disjoint(self) -> None:
        """No class is both worth retrying and permanent."""
        for cls in set(STATUS_TABLE.values()):
            assert not (issubclass(cls, TransientError) and issubclass(cls, PermanentError))

    def test_missing_scopes_are_parsed(self) -> None:
        """A 403's context.missingScopes is available on the error."""
        body = {"category": "MISSING_SCOPES", "context": {"missingScopes": ["crm.objects.deals.write"]}}
        error = error_for_status(403, body, {}, 0.0)
        assert error.detail.missing_scopes == ("crm.objects.deals.write",)


class TestRendering:
    """What errors show of themselves."""

    def test_str_shows_the_correlation_id_and_repr_the_status(self) -> None:
        """str() carries the correlationId (for support), repr() the status."""
        error = error_for_status(502, {"message": "Bad gateway", "correlationId": "abc-123"}, {}, 0.0)
        assert "abc-123" in str(error)
        assert "status=502" in repr(error)

    def test_no_token_leaks_even_from_an_odd_body(self) -> None:
        """An error built from any HubSpot body carries nothing the client did not get from HubSpot."""
        token = "pat-na1-secret-token"
        error = error_for_status(401, {"message": ["odd"], "category": {"x": 1}}, {"Authorization": token}, 0.0)
        assert token not in str(error)
        assert token not in repr(error)

    def test_signature_reasons_are_closed(self) -> None:
        """InvalidSignatureError accepts only the documented reasons."""
        with pytest.raises(ValueError, match="reason"):
            InvalidSignatureError("because")
