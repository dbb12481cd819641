"""Request signatures: HubSpot's v1, v2 and v3, and the per-source HMAC and token checks for forms.

Pure functions over the raw body as received (never re-serialised JSON). Each ``verify_*`` raises one
:class:`InvalidSignatureError` whose ``reason`` says what failed (missing, unknown-version, stale, future,
mismatch, malformed), and compares in constant time. Each ``sign_*`` twin serves the tests, the
simulator-driven examples and the benchmarks.

Rotation: :func:`verify_either` checks a request against the current secret and, only when that one does
not match, against the previous one (``HUBSPOT_CLIENT_SECRET_PREVIOUS``, a source's ``secret_previous_env``),
and says which matched, so that a secret can change with no request refused while senders switch over.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Callable, Mapping
from typing import Literal

from hublink.domain.errors import InvalidSignatureError

#: HubSpot rejects v3 requests whose timestamp is more than 5 minutes old; the same bound applies to
#: timestamps in the future, so that a clock skewed ahead cannot mint long-lived replayable requests.
DEFAULT_TOLERANCE_S = 300

#: Which of a rotating pair of secrets verified a request.
Which = Literal["current", "previous"]

V3_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
LEGACY_HEADER = "X-HubSpot-Signature"
VERSION_HEADER = "X-HubSpot-Signature-Version"

# HubSpot decodes exactly these escapes before signing a v3 URI; every other escape stays as sent.
_V3_DECODE = {
    "3A": ":",
    "2F": "/",
    "3F": "?",
    "40": "@",
    "21": "!",
    "24": "$",
    "27": "'",
    "28": "(",
    "29": ")",
    "2A": "*",
    "2C": ",",
    "3B": ";",
}
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def decode_v3_uri(uri: str) -> str:
    """Percent-decode the twelve sequences HubSpot decodes for v3 (case-insensitive hex), and only those."""
    return _ESCAPE.sub(lambda m: _V3_DECODE.get(m.group(1).upper(), m.group(0)), uri)


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """HubSpot's v3 signature: base64 HMAC-SHA256 of method + decoded URI + body + timestamp."""
    # Bytes, not text: equal to HubSpot's UTF-8 string when the body is UTF-8, and still defined otherwise.
    message = method.upper().encode() + decode_v3_uri(uri).encode() + body + str(timestamp_ms).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_v3(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    now_s: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> None:
    """Check a v3 signature and its timestamp; raise InvalidSignatureError naming the reason."""
    signature = _header(headers, V3_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise InvalidSignatureError("missing", f"missing {V3_HEADER} or {TIMESTAMP_HEADER}")
    try:
        timestamp_ms = int(timestamp.strip())
    except ValueError:
        raise InvalidSignatureError("malformed", f"{TIMESTAMP_HEADER} is not an integer") from None
    age_s = now_s - timestamp_ms / 1000
    if age_s > tolerance_s:
        raise InvalidSignatureError("stale", f"timestamp is {age_s:.0f} s old (limit {tolerance_s:.0f} s)")
    if -age_s > tolerance_s:
        raise InvalidSignatureError("future", f"timestamp is {-age_s:.0f} s ahead (limit {tolerance_s:.0f} s)")
    expected = sign_v3(secret, method, uri, body, timestamp_ms)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise InvalidSignatureError("mismatch", "signature does not match")


def sign_v1(secret: str, body: bytes) -> str:
    """HubSpot's v1 signature: hex SHA-256 of client secret + body (a plain hash, not an HMAC)."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


def sign_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    """HubSpot's v2 signature: hex SHA-256 of client secret + method + URI (exactly as called) + body."""
    return hashlib.sha256(secret.encode() + method.upper().encode() + uri.encode() + body).hexdigest()


def verify_legacy(secret: str, method: str, uri: str, body: bytes, headers: Mapping[str, str]) -> str:
    """Check a v1 or v2 signature; return the version. Raises InvalidSignatureError.

    Legacy signatures carry no timestamp, so a captured request can be replayed for ever: that is why
    they are accepted on the app webhook only when HUBSPOT_ACCEPT_LEGACY_SIGNATURES is set.
    """
    signature = _header(headers, LEGACY_HEADER)
    if not signature:
        raise InvalidSignatureError("missing", f"missing {LEGACY_HEADER}")
    version = (_header(headers, VERSION_HEADER) or "v1").strip().lower()
    if version == "v1":
        expected = sign_v1(secret, body)
    elif version == "v2":
        expected = sign_v2(secret, method, uri, body)
    else:
        raise InvalidSignatureError("unknown-version", f"unknown signature version {version[:10]!r}")
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise InvalidSignatureError("mismatch", "signature does not match")
    return version


def verify_hubspot(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    now_s: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    accept_legacy: bool = False,
) -> str:
    """Verify whichever HubSpot signature the request carries; return "v3", "v1" or "v2".

    v3 is preferred whenever its header is present; legacy versions only when ``accept_legacy``.
    """
    if _header(headers, V3_HEADER) is not None or not accept_legacy:
        verify_v3(secret, method, uri, body, headers, now_s, tolerance_s)
        return "v3"
    return verify_legacy(secret, method, uri, body, headers)


def sign_hmac_sha256(secret: str, payload: bytes, encoding: Literal["hex", "base64"]) -> str:
    """HMAC-SHA256 of ``payload``, hex or base64."""
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def signed_form_payload(body: bytes, timestamp: str | None) -> bytes:
    """What a form source signs: the body, or ``<timestamp>.<body>`` when a timestamp header is used.

    The timestamp is bound into the signature (the Stripe / Standard Webhooks convention) so that a
    captured request cannot be replayed with a fresh timestamp.
    """
    return body if timestamp is None else timestamp.encode() + b"." + body


def verify_hmac(
    secret: str,
    body: bytes,
    signature_header_value: str | None,
    *,
    encoding: Literal["hex", "base64"],
    prefix: str = "",
    timestamp: str | None = None,
    now_s: float | None = None,
    tolerance_s: float | None = None,
) -> None:
    """Check a form source's HMAC-SHA256 signature (and timestamp, when one is configured)."""
    if not signature_header_value:
        raise InvalidSignatureError("missing", "missing signature header")
    presented = signature_header_value.strip()
    if prefix:
        if not presented.startswith(prefix):
            raise InvalidSignatureError("malformed", f"signature does not start with {prefix!r}")
        presented = presented[len(prefix) :]
    if timestamp is not None and now_s is not None:
        try:
            ts = float(timestamp)
        except ValueError:
            raise InvalidSignatureError("malformed", "timestamp is not a number") from None
        if not math.isfinite(ts):
            # float() takes "nan" and "inf": NaN compares false with everything, so it would pass both bounds.
            raise InvalidSignatureError("malformed", "timestamp is not a finite number")
        ts = ts / 1000 if ts > 1e12 else ts  # milliseconds are accepted too
        tolerance = DEFAULT_TOLERANCE_S if tolerance_s is None else tolerance_s
        if now_s - ts > tolerance:
            raise InvalidSignatureError("stale", "timestamp too old")
        if ts - now_s > tolerance:
            raise InvalidSignatureError("future", "timestamp in the future")
    expected = sign_hmac_sha256(secret, signed_form_payload(body, timestamp), encoding)
    if encoding == "hex":
        presented = presented.lower()
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        raise InvalidSignatureError("mismatch", "signature does not match")


def verify_static_token(expected: str, presented: str | None) -> None:
    """Check a static token in constant time; raise InvalidSignatureError (missing or mismatch)."""
    if not presented:
        raise InvalidSignatureError("missing", "missing token")
    if not hmac.compare_digest(expected.encode(), presented.strip().encode()):
        raise InvalidSignatureError("mismatch", "token does not match")


def verify_either(verify: Callable[[str], object], current: str, previous: str | None) -> Which:
    """Run ``verify`` with ``current``, then with ``previous`` when that is set and the first did not match.

    Only a ``mismatch`` tries the previous secret: a missing header, a stale timestamp or a malformed
    signature fail the same way under either. When both fail, the current secret's error is raised.
    """
    try:
        verify(current)
    except InvalidSignatureError as exc:
        if not previous or exc.reason != "mismatch":
            raise
        first = exc
    else:
        return "current"
    try:
        verify(previous)
    except InvalidSignatureError:
        raise first from None
    return "previous"
