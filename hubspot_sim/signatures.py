"""HubSpot's webhook request signatures, as HubSpot computes them when it sends (docs/reference/hubspot.md §4.5).

Pure functions: v1 (SHA-256 of secret + body), v2 (SHA-256 of secret + method + URI + body) and v3
(base64 HMAC-SHA256 keyed with the client secret over method + URI + body + timestamp in milliseconds).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

# The escapes HubSpot decodes in the URI before checking a v3 signature (§4.5 step 2): it signs the URI in
# that decoded form, so the sender decodes them too. Other escapes (%20, %26, ...) stay as they are.
_V3_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


def v3_uri(uri: str) -> str:
    """``uri`` with the escapes of §4.5 step 2 decoded (either case of hex digits)."""
    out = []
    i = 0
    while i < len(uri):
        escape = uri[i : i + 3].upper()
        if escape in _V3_DECODED:
            out.append(_V3_DECODED[escape])
            i += 3
        else:
            out.append(uri[i])
            i += 1
    return "".join(out)


def sign_v1(client_secret: str, body: bytes) -> str:
    """The v1 signature: lowercase hex SHA-256 of the secret followed by the raw body."""
    return hashlib.sha256(client_secret.encode() + body).hexdigest()


def sign_v2(client_secret: str, method: str, uri: str, body: bytes) -> str:
    """The v2 signature: hex SHA-256 of secret + method + URI + raw body."""
    return hashlib.sha256(client_secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def sign_v3(client_secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """The v3 signature: base64 (standard, padded) HMAC-SHA256 over method + URI + body + timestamp."""
    message = method.encode() + v3_uri(uri).encode() + body + str(timestamp_ms).encode()
    digest = hmac.new(client_secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_headers(client_secret: str, uri: str, body: bytes, timestamp_ms: int, legacy: str = "v1") -> dict[str, str]:
    """Every signature header HubSpot puts on a webhook POST: v3 with its timestamp, and v1 (or v2)."""
    legacy_signature = sign_v1(client_secret, body) if legacy == "v1" else sign_v2(client_secret, "POST", uri, body)
    return {
        "X-HubSpot-Signature-v3": sign_v3(client_secret, "POST", uri, body, timestamp_ms),
        "X-HubSpot-Request-Timestamp": str(timestamp_ms),
        "X-HubSpot-Signature": legacy_signature,
        "X-HubSpot-Signature-Version": legacy,
    }
