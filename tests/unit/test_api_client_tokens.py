"""API client tokens' form: recognisable (``hl_<id>_<secret>``), random, stored as a digest, never logged."""

from __future__ import annotations

import hashlib
import re

from hublink.log import REDACTED, Redactor
from hublink.ops.api_clients import new_token, token_digest


def test_a_token_carries_its_id_and_256_random_bits() -> None:
    """``hl_`` + 16 hex digits (the id) + 43 URL-safe characters; no two alike."""
    tokens = [new_token() for _ in range(50)]
    for token_id, token in tokens:
        assert re.fullmatch(r"hl_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", token)
        assert token.split("_", 2)[1] == token_id
    assert len({token for _, token in tokens}) == 50


def test_the_stored_form_is_the_sha256_of_the_whole_token() -> None:
    """What Redis keeps is the hex SHA-256, from which the token cannot be read back."""
    _, token = new_token()
    assert token_digest(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in token_digest(token)


def test_a_token_in_a_log_line_is_redacted_by_its_form() -> None:
    """The redactor removes any API client token, configured or not, wherever it shows in a line."""
    _, token = new_token()
    cleaned = Redactor([])(None, "info", {"event": f"curl -H 'Authorization: Bearer {token}'", "args": [token]})
    assert token not in str(cleaned)
    assert cleaned["event"].endswith(f"Bearer {REDACTED}'") and cleaned["args"] == [REDACTED]
