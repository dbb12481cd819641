"""HubSpot's signatures v1/v2/v3 and the per-source checks: the reference vectors, and one test per refusal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hublink.domain import signatures as sig
from hublink.domain.errors import InvalidSignatureError
from tests.unit.strategies import bodies, uris

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
V1_BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    b'"changeFlag":"NEW","appId":54321}]'
)
V3_TS = 1693657560000
V3_URI = "https://www.example.com/webhook_uri"
V3_BODY = b"{'example_field':'example_value'}"
V3_SIG = "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="


def v3_headers(signature: str = V3_SIG, ts: int = V3_TS) -> dict[str, str]:
    """Headers HubSpot sends with a v3 signature."""
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": str(ts)}


def reason(call: object) -> str:
    """The reason of the InvalidSignatureError ``call`` raises."""
    with pytest.raises(InvalidSignatureError) as info:
        call()  # type: ignore[operator]
    return info.value.reason


class TestReferenceVectors:
    """The test vectors from HubSpot's documentation and SDK."""

    def test_v3_vector(self) -> None:
        """The v3 reference request signs to HubSpot's documented value."""
        assert sig.sign_v3(SECRET, "POST", V3_URI, V3_BODY, V3_TS) == V3_SIG

    def test_v3_vector_verifies_inside_the_window(self) -> None:
        """The v3 reference request verifies one minute after its timestamp."""
        sig.verify_v3(SECRET, "POST", V3_URI, V3_BODY, v3_headers(), now_s=V3_TS / 1000 + 60)

    def test_v1_vector(self) -> None:
        """The v1 reference body hashes to HubSpot's documented value."""
        assert sig.sign_v1(SECRET, V1_BODY) == "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"

    def test_v2_vector(self) -> None:
        """The v2 reference GET signs to HubSpot's documented value."""
        expected = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
        assert sig.sign_v2(SECRET, "GET", V3_URI, b"") == expected


class TestV3Refusals:
    """Each way a v3 check fails has its own reason."""

    def test_missing_signature_header(self) -> None:
        """No signature header is refused with reason 'missing'."""
        headers = {"X-HubSpot-Request-Timestamp": str(V3_TS)}
        assert reason(lambda: sig.verify_v3(SECRET, "POST", V3_URI, V3_BODY, headers, V3_TS / 1000)) == "missing"

    def test_missing_timestamp(self) -> None:
        """No timestamp header is refused with reason 'missing'."""
        headers = {"X-HubSpot-Signature-v3": V3_SIG}
        assert reason(lambda: sig.verify_v3(SECRET, "POST", V3_URI, V3_BODY, headers, V3_TS / 1000)) == "missing"

    def test_non_numeric_timestamp(self) -> None:
        """A timestamp that is not an integer is refused with reason 'malformed'."""
        headers = v3_headers() | {"X-HubSpot-Request-Timestamp": "soon"}
        assert reason(lambda: sig.verify_v3(SECRET, "POST", V3_URI, V3_BODY, headers, V3_TS / 1000)) == "malformed"

    def test_stale_timestamp(self) -> None:
        """A timestamp more than 5 minutes old is refused with reason 'stale', even with a good signature."""
        assert reason(lambda: sig.verify_v3(SECRET, "POST", V3_URI, V3_BODY, v3_headers(), V3_TS / 1000 + 301)) == (
            "stale"
        )

    def test_future_timestamp(self) -> None:
        """A timestamp more than 5 minutes ahead is refused with reason 'future'."""
        assert reason(lambda: sig.verify_v3(SECRET, "POST", V3_URI, V3_BODY, v3_headers(), V3_TS / 1000 - 301)) == (
            "future"
        )

    @pytest.mark.parametrize(
        ("secret", "method", "uri", "body", "ts_shift"),
        [
            ("other-secret", "POST", V3_URI, V3_BODY, 0),
            (SECRET, "PUT", V3_URI, V3_BODY, 0),
            (SECRET, "POST", V3_URI + "?x=1", V3_BODY, 0),
            (SECRET, "POST", V3_URI, V3_BODY + b" ", 0),
            (SECRET, "POST", V3_URI, V3_BODY, 1),
        ],
    )
    def test_any_change_is_a_mismatch(self, secret: str, method: str, uri: str, body: bytes, ts_shift: int) -> None:
        """Changing the secret, method, URI, body or timestamp is refused with reason 'mismatch'."""
        headers = v3_headers(ts=V3_TS + ts_shift)
        assert reason(lambda: sig.verify_v3(secret, method, uri, body, headers, V3_TS / 1000)) == "mismatch"

    @given(body=bodies, uri=uris, flip=st.integers(min_value=0))
    def test_sign_then_verify_and_any_flipped_byte_fails(self, body: bytes, uri: str, flip: int) -> None:
        """Any signed request verifies, and flipping one byte of its body makes it a mismatch."""
        signature = sig.sign_v3(SECRET, "POST", uri, body, V3_TS)
        sig.verify_v3(SECRET, "POST", uri, body, v3_headers(signature), V3_TS / 1000)
        if body:
            index = flip % len(body)
            tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
            assert (
                reason(lambda: sig.verify_v3(SECRET, "POST", uri, tampered, v3_headers(signature), V3_TS / 1000))
                == "mismatch"
            )


class TestUriDecoding:
    """HubSpot decodes exactly twelve escapes before signing."""

    @pytest.mark.parametrize(
        ("escape", "char"),
        [
            ("%3A", ":"),
            ("%2F", "/"),
            ("%3F", "?"),
            ("%40", "@"),
            ("%21", "!"),
            ("%24", "$"),
            ("%27", "'"),
            ("%28", "("),
            ("%29", ")"),
            ("%2A", "*"),
            ("%2C", ","),
            ("%3B", ";"),
        ],
    )
    def test_each_listed_escape_is_decoded_in_either_case(self, escape: str, char: str) -> None:
        """Each listed escape is decoded, upper- or lower-case."""
        assert sig.decode_v3_uri(f"https://x.com/a{escape}b") == f"https://x.com/a{char}b"
        assert sig.decode_v3_uri(f"https://x.com/a{escape.lower()}b") == f"https://x.com/a{char}b"

    def test_other_escapes_are_kept(self) -> None:
        """%20, %26 and %3D are not in the list and stay as sent, query order kept."""
        uri = "https://x.com/p%20q?b=%26&a=%3D"
        assert sig.decode_v3_uri(uri) == uri


class TestLegacy:
    """v1/v2 and the choice between versions."""

    def test_v1_verifies(self) -> None:
        """A v1 signature over the reference body verifies as v1."""
        headers = {"X-HubSpot-Signature": sig.sign_v1(SECRET, V1_BODY), "X-HubSpot-Signature-Version": "v1"}
        assert sig.verify_legacy(SECRET, "POST", V3_URI, V1_BODY, headers) == "v1"

    def test_unknown_version(self) -> None:
        """An unknown signature version is refused with reason 'unknown-version'."""
        headers = {"X-HubSpot-Signature": "abc", "X-HubSpot-Signature-Version": "v9"}
        assert reason(lambda: sig.verify_legacy(SECRET, "POST", V3_URI, b"", headers)) == "unknown-version"

    def test_legacy_needs_opt_in(self) -> None:
        """Without accept_legacy a v1-only request is refused as missing its v3 signature."""
        headers = {"X-HubSpot-Signature": sig.sign_v1(SECRET, V1_BODY), "X-HubSpot-Signature-Version": "v1"}
        assert reason(lambda: sig.verify_hubspot(SECRET, "POST", V3_URI, V1_BODY, headers, 0)) == "missing"
        assert sig.verify_hubspot(SECRET, "POST", V3_URI, V1_BODY, headers, 0, accept_legacy=True) == "v1"

    def test_v2_mismatch(self) -> None:
        """A v2 signature for another URI is a mismatch."""
        headers = {
            "X-HubSpot-Signature": sig.sign_v2(SECRET, "POST", "https://other", b"{}"),
            "X-HubSpot-Signature-Version": "v2",
        }
        assert reason(lambda: sig.verify_legacy(SECRET, "POST", V3_URI, b"{}", headers)) == "mismatch"


class TestFormChecks:
    """The per-source HMAC and token checks for third-party forms."""

    def test_hmac_with_prefix_verifies(self) -> None:
        """A hex HMAC with its sha256= prefix verifies."""
        value = "sha256=" + sig.sign_hmac_sha256("s3cret", b"a=1", "hex")
        sig.verify_hmac("s3cret", b"a=1", value, encoding="hex", prefix="sha256=")

    def test_hmac_wrong_prefix_is_malformed(self) -> None:
        """A signature without the configured prefix is refused with reason 'malformed'."""
        value = sig.sign_hmac_sha256("s3cret", b"a=1", "hex")
        assert reason(lambda: sig.verify_hmac("s3cret", b"a=1", value, encoding="hex", prefix="sha256=")) == (
            "malformed"
        )

    def test_hmac_timestamp_is_bound_and_checked(self) -> None:
        """With a timestamp the payload is 'ts.body': a fresh one verifies, an old one is 'stale'."""
        value = sig.sign_hmac_sha256("k", b"1000.body", "base64")
        sig.verify_hmac("k", b"body", value, encoding="base64", timestamp="1000", now_s=1010, tolerance_s=300)
        assert (
            reason(
                lambda: sig.verify_hmac(
                    "k", b"body", value, encoding="base64", timestamp="1000", now_s=2000, tolerance_s=300
                )
            )
            == "stale"
        )

    def test_missing_and_wrong_tokens(self) -> None:
        """A static token check refuses a missing token and a wrong one with their reasons."""
        assert reason(lambda: sig.verify_static_token("t0ken", None)) == "missing"
        assert reason(lambda: sig.verify_static_token("t0ken", "nope")) == "mismatch"
        sig.verify_static_token("t0ken", "t0ken")
