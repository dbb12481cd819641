"""Log redaction and the sources section: secrets never printed, sources refused with their place named."""

from __future__ import annotations

import io
import json
import logging

import pytest

from hublink import log
from hublink.domain.errors import ConfigError
from hublink.domain.sources import ApiKeyAuth, HmacAuth, SignatureAuth, Sources, TokenAuth


class TestRedaction:
    """The JSON log formatter's redaction."""

    def test_secrets_are_removed_wherever_they_appear(self) -> None:
        """A configured secret inside a message, an extra field or a nested value is replaced."""
        stream = io.StringIO()
        log.configure("INFO", ["s3cret-token-value"], stream=stream)
        logger = logging.getLogger("test.redaction")
        logger.info("calling with s3cret-token-value", extra={"detail": {"nested": ["x s3cret-token-value"]}})
        logger.info("header", extra={"authorization": "Bearer anything", "token": "t"})
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert "s3cret-token-value" not in stream.getvalue()
        assert lines[0]["event"] == "calling with [REDACTED]"
        assert lines[1]["authorization"] == "[REDACTED]"
        assert lines[1]["token"] == "[REDACTED]"

    def test_every_line_is_a_json_object_with_level_and_time(self) -> None:
        """Records come out as one JSON object per line with level, logger and timestamp."""
        stream = io.StringIO()
        log.configure("INFO", [], stream=stream)
        logging.getLogger("test.shape").warning("hello")
        record = json.loads(stream.getvalue().splitlines()[-1])
        assert {"event", "level", "logger", "timestamp"} <= set(record)
        assert record["level"] == "warning"


class TestSources:
    """The sources section of the rules file."""

    def test_every_kind_of_auth_loads(self) -> None:
        """Signature and API-key workflows, HMAC and token forms load with their secrets from the environment."""
        doc = {
            "sources": {
                "workflow": {"auth": {"type": "api_key", "name": "X-Key", "in": "query", "key_env": "K"}},
                "forms": {
                    "a": {"auth": {"type": "hmac", "header": "X-Sig", "secret_env": "S", "encoding": "base64"}},
                    "b": {"auth": {"type": "token", "header": "X-Token", "token_env": "T"}},
                },
            }
        }
        sources = Sources.load(doc, {"K": "key", "S": "secret", "T": "token"})
        assert isinstance(sources.workflow, ApiKeyAuth)
        assert isinstance(sources.forms["a"].auth, HmacAuth)
        assert isinstance(sources.forms["b"].auth, TokenAuth)
        assert "secret" not in repr(sources)
        assert isinstance(
            Sources.load({"sources": {"workflow": {"auth": {"type": "signature"}}}}, {}).workflow, SignatureAuth
        )

    @pytest.mark.parametrize(
        ("doc", "message"),
        [
            ({"sources": {"forms": {"a": {}}}}, "sources.forms.a: auth: required"),
            (
                {"sources": {"forms": {"a": {"auth": {"type": "hmac", "header": "X", "secret_env": "NOPE"}}}}},
                "environment variable NOPE is not set",
            ),
            ({"sources": {"forms": {"Bad Name": {"auth": {}}}}}, "name must match"),
            ({"sources": {"workflow": {"auth": {"type": "magic"}}}}, "auth.type: expected signature or api_key"),
            ({"sources": {"mail": {}}}, "unknown keys ['mail']"),
        ],
    )
    def test_refusals_name_the_place(self, doc: object, message: str) -> None:
        """Each misconfiguration is refused with a message naming where it is."""
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            Sources.load(doc, {}, "rules.yaml")
