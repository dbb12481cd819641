"""Issue 12's pure parts: Redis failures typed at the boundary, query credentials redacted, form auth that
matches header names whatever their case and refuses non-finite timestamps, clean ``next`` paths, and the
idempotency record's wire form."""

from __future__ import annotations

import io
import json
import logging

import pytest
import redis
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from hublink import log
from hublink.domain import signatures
from hublink.domain.errors import InvalidSignatureError, StoreFullError, StoreUnavailableError
from hublink.domain.sources import ApiKeyAuth, FormSource, HmacAuth, Sources, TokenAuth, verify_form
from hublink.intake.inbox import HeldAnswer
from hublink.store.connections import store_error, store_errors
from web.admin.login import is_clean_local_path

NOW = 1_764_331_200.0


class TestStoreErrors:
    """Which Redis errors mean "the store cannot take this now", and which type each becomes."""

    @pytest.mark.parametrize(
        "exc",
        [
            OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
            ResponseError("OOM command not allowed when used memory > 'maxmemory'. script: abc, on @user_script:1."),
            ResponseError("Error running script: @user_script:3: -OOM command not allowed when used memory"),
        ],
    )
    def test_a_full_redis_is_store_full(self, exc: Exception) -> None:
        """OOM, as its own class or inside a script's ResponseError, becomes StoreFullError (a 503 store_full)."""
        assert isinstance(store_error(exc), StoreFullError)

    @pytest.mark.parametrize(
        "exc",
        [
            redis.ConnectionError("refused"),
            redis.TimeoutError("timed out"),
            redis.BusyLoadingError("loading"),
            ReadOnlyError("You can't write against a read only replica."),
            ResponseError("READONLY You can't write against a read only replica. script: x"),
            ResponseError("MASTERDOWN Link with MASTER is down"),
        ],
    )
    def test_no_answer_or_a_read_only_replica_is_store_unavailable(self, exc: Exception) -> None:
        """Lost connections, timeouts, loading and read-only replicas become StoreUnavailableError, not full."""
        typed = store_error(exc)
        assert isinstance(typed, StoreUnavailableError)
        assert not isinstance(typed, StoreFullError)

    @pytest.mark.parametrize("exc", [ResponseError("WRONGTYPE Operation against a key"), ValueError("x")])
    def test_other_errors_are_not_store_errors(self, exc: Exception) -> None:
        """A wrong type (a bug) is not typed as unavailability: it stays a 500 that someone will look at."""
        assert store_error(exc) is None

    def test_the_boundary_raises_the_typed_error(self) -> None:
        """``store_errors()`` raises StoreFullError from an OOM and lets other errors through unchanged."""
        with pytest.raises(StoreFullError), store_errors():
            raise OutOfMemoryError("command not allowed")
        with pytest.raises(ResponseError), store_errors():
            raise ResponseError("WRONGTYPE")

    def test_the_message_names_no_key_or_value(self) -> None:
        """The typed error says what happened, not the script or data it happened to."""
        typed = store_error(ResponseError("READONLY You can't write. script: secret-script-sha"))
        assert typed is not None
        assert "secret-script-sha" not in str(typed)


class TestQueryRedaction:
    """Credentials in query strings never reach a log line."""

    def _lines(self, query_params: tuple[str, ...], *messages: str) -> str:
        """Log ``messages`` as gunicorn's access logger through a redactor for ``query_params``; the output."""
        stream = io.StringIO()
        log.configure("INFO", [], stream=stream, query_params=query_params)
        for message in messages:
            logging.getLogger("gunicorn.access").info(message)
        return stream.getvalue()

    def test_a_configured_query_parameter_is_redacted_whatever_its_value(self) -> None:
        """``auth_key=<anything>`` (the source's api_key ``in: query``) is logged as ``auth_key=[REDACTED]``."""
        out = self._lines(("auth_key",), '127.0.0.1 "POST /webhooks/workflow?a=1&auth_key=guess-123&b=2 HTTP/1.1" 401')
        assert "guess-123" not in out
        assert "auth_key=[REDACTED]&b=2" in out
        assert "a=1" in out

    def test_hapikey_is_always_redacted_in_any_case(self) -> None:
        """HubSpot's legacy ``hapikey`` is redacted without configuration, and the name's case does not matter."""
        out = self._lines((), "GET /x?HAPIKEY=abcdef01 HTTP/1.1", "GET /x?hapikey=zz99 HTTP/1.1")
        assert "abcdef01" not in out
        assert "zz99" not in out

    def test_structured_values_are_redacted_too(self) -> None:
        """An extra field holding a URL is cleaned like the message."""
        stream = io.StringIO()
        log.configure("INFO", [], stream=stream, query_params=("auth_key",))
        logging.getLogger("t").info("call", extra={"url": "https://h/x?auth_key=v4lue"})
        assert json.loads(stream.getvalue())["url"] == "https://h/x?auth_key=[REDACTED]"

    def test_the_rules_file_names_its_secrets_and_query_parameters(self) -> None:
        """Sources hand every secret they hold, and the query parameter an api_key uses, to the redactor."""
        sources = Sources(
            ApiKeyAuth("auth_key", "query", "wf-key-value"),
            {
                "a": FormSource("a", HmacAuth("X-Signature", "hmac-secret-value")),
                "b": FormSource("b", TokenAuth("X-HubLink-Token", "form-token-value")),
            },
        )
        assert set(sources.secrets) == {"wf-key-value", "hmac-secret-value", "form-token-value"}
        assert sources.query_params == ("auth_key",)
        assert Sources(ApiKeyAuth("X-Key", "header", "k"), {}).query_params == ()


class TestFormAuth:
    """Header names in any case; timestamps that are finite numbers."""

    @pytest.mark.parametrize("name", ["X-HubLink-Token", "x-hublink-token", "X-HUBLINK-TOKEN", "X-Hublink-Token"])
    def test_a_token_header_is_found_whatever_its_case(self, name: str) -> None:
        """The configured ``X-HubLink-Token`` matches the header as the sender wrote it."""
        source = FormSource("f", TokenAuth("X-HubLink-Token", "tok-123"))
        verify_form(source, b"{}", {name: "tok-123"}, NOW)

    @pytest.mark.parametrize(
        ("sig_name", "ts_name"), [("x-signature", "x-request-ts"), ("X-SIGNATURE", "X-Request-Ts")]
    )
    def test_hmac_and_timestamp_headers_are_found_whatever_their_case(self, sig_name: str, ts_name: str) -> None:
        """``X-Signature`` and ``X-Request-TS`` are found in lower, upper or Werkzeug's title case."""
        auth = HmacAuth("X-Signature", "s3cret", timestamp_header="X-Request-TS")
        ts = str(int(NOW))
        signature = signatures.sign_hmac_sha256("s3cret", signatures.signed_form_payload(b"{}", ts), "hex")
        verify_form(FormSource("f", auth), b"{}", {sig_name: signature, ts_name: ts}, NOW)

    @pytest.mark.parametrize("ts", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"])
    def test_a_non_finite_timestamp_is_malformed(self, ts: str) -> None:
        """``nan`` passed both age checks before (NaN compares false); it and infinities are now 'malformed'."""
        signature = signatures.sign_hmac_sha256("s3cret", signatures.signed_form_payload(b"{}", ts), "hex")
        with pytest.raises(InvalidSignatureError) as caught:
            signatures.verify_hmac("s3cret", b"{}", signature, encoding="hex", timestamp=ts, now_s=NOW, tolerance_s=300)
        assert caught.value.reason == "malformed"


class TestNext:
    """Where a login may send the operator on."""

    @pytest.mark.parametrize("target", ["/admin", "/admin/dead-letters?status=404", "/admin/dead-letters/abc"])
    def test_local_paths_are_clean(self, target: str) -> None:
        """A path with one leading slash and printable characters is clean."""
        assert is_clean_local_path(target)

    @pytest.mark.parametrize(
        "target",
        [
            "",
            "admin",
            "//evil.example/admin",
            "/\\\\evil.example",
            "https://evil.example/admin",
            "/admin/\r\nSet-Cookie: x=1",
            "/admin/\x00",
            "/admin\t",
            "/admin/\x7f",
            "/admin//x",
        ],
    )
    def test_anything_else_is_not(self, target: str) -> None:
        """Schemes, hosts, backslashes, doubled slashes and control characters (CR/LF above all) are refused."""
        assert not is_clean_local_path(target)


class TestHeldAnswer:
    """What an Idempotency-Key holds."""

    def test_it_round_trips(self) -> None:
        """The body digest, status and answer read back as written."""
        held = HeldAnswer("ab" * 32, 202, {"accepted": 1, "ids": ["x" * 32]})
        assert HeldAnswer.loads(held.dumps()) == held

    def test_anything_else_is_refused(self) -> None:
        """A record in another shape is a ValueError, not a wrong replay."""
        with pytest.raises(ValueError, match="idempotency"):
            HeldAnswer.loads(b'{"status": 202}')
