"""Sources: who may send events, and how each proves it (the ``sources:`` section of the rules file).

::

    sources:
      workflow:
        auth: {type: signature}                        # X-HubSpot-Signature v2, keyed by HUBSPOT_CLIENT_SECRET
        # or: {type: api_key, name: X-HubLink-Key, in: header, key_env: HUBLINK_WORKFLOW_KEY}
      forms:
        demo-request:
          auth: {type: hmac, header: X-Signature, secret_env: DEMO_FORM_SECRET, encoding: hex,
                 prefix: "sha256=", timestamp_header: X-Timestamp, tolerance_s: 300}
          # or: {type: token, header: X-Form-Token, token_env: DEMO_FORM_TOKEN}
          id_field: submission_id                      # dedup on this field (or id_header: X-Submission-Id)

Secrets are named by environment variable (``*_env``) so that the rules file can be committed; the
composition root passes the environment in. Each secret may have a previous value during a rotation
(``secret_previous_env``, ``token_previous_env``, ``key_previous_env``): requests proven with either are
accepted (:func:`hublink.domain.signatures.verify_either`), so senders switch over with none refused. An
unset or empty previous variable means "no previous value": ending a rotation is removing the variable.
A source without ``auth`` is refused at load: every endpoint that enqueues work must authenticate its sender.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hublink.domain import signatures
from hublink.domain.errors import ConfigError, InvalidSignatureError

_NAME = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")


@dataclass(frozen=True, slots=True)
class HmacAuth:
    """HMAC-SHA256 of the raw body (optionally ``timestamp.`` + body) in a header."""

    header: str
    secret: str
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    tolerance_s: float = signatures.DEFAULT_TOLERANCE_S
    #: The secret before the current one, accepted too while a rotation lasts.
    secret_previous: str | None = None

    def __repr__(self) -> str:
        return f"HmacAuth(header={self.header!r}, encoding={self.encoding!r})"


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """A static token in a header."""

    header: str
    token: str
    #: The token before the current one, accepted too while a rotation lasts.
    token_previous: str | None = None

    def __repr__(self) -> str:
        return f"TokenAuth(header={self.header!r})"


@dataclass(frozen=True, slots=True)
class SignatureAuth:
    """HubSpot's request signature (v2 for workflows; v3 when present), keyed by the app's client secret."""


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    """An API key in a header or query parameter (HubSpot's workflow "API key" authentication)."""

    name: str
    location: Literal["header", "query"]
    key: str
    #: The key before the current one, accepted too while a rotation lasts.
    key_previous: str | None = None

    def __repr__(self) -> str:
        return f"ApiKeyAuth(name={self.name!r}, location={self.location!r})"


@dataclass(frozen=True, slots=True)
class FormSource:
    """A third-party form source: its auth and how its submissions are deduplicated."""

    name: str
    auth: HmacAuth | TokenAuth
    id_field: str | None = None
    id_header: str | None = None


@dataclass(frozen=True, slots=True)
class Sources:
    """Every configured source. ``workflow`` is None when workflow webhooks are not configured."""

    workflow: SignatureAuth | ApiKeyAuth | None
    forms: Mapping[str, FormSource]

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret the rules file names (HMAC secrets, tokens, API keys), for the log redactor."""
        found = [self.workflow.key, self.workflow.key_previous] if isinstance(self.workflow, ApiKeyAuth) else []
        for form in self.forms.values():
            auth = form.auth
            found += (
                [auth.secret, auth.secret_previous] if isinstance(auth, HmacAuth) else [auth.token, auth.token_previous]
            )
        return tuple(value for value in found if value)

    @property
    def query_params(self) -> tuple[str, ...]:
        """Query parameters that carry a credential (``api_key`` auth ``in: query``): redacted in every log line."""
        if isinstance(self.workflow, ApiKeyAuth) and self.workflow.location == "query":
            return (self.workflow.name,)
        return ()

    @classmethod
    def empty(cls) -> Sources:
        """No workflow and no form sources."""
        return cls(None, {})

    @classmethod
    def load(cls, doc: Any, environ: Mapping[str, str], filename: str = "<rules>") -> Sources:
        """Read the ``sources`` section (``doc`` is the parsed YAML document); raise ConfigError naming the place."""
        if not isinstance(doc, dict) or doc.get("sources") is None:
            return cls.empty()
        section = doc["sources"]
        if not isinstance(section, dict):
            raise ConfigError(f"{filename}: sources: expected a mapping")
        unknown = set(section) - {"workflow", "forms"}
        if unknown:
            raise ConfigError(f"{filename}: sources: unknown keys {sorted(unknown)} (expected workflow, forms)")
        workflow = None
        if section.get("workflow") is not None:
            workflow = _workflow_auth(section["workflow"], environ, f"{filename}: sources.workflow")
        forms: dict[str, FormSource] = {}
        raw_forms = section.get("forms") or {}
        if not isinstance(raw_forms, dict):
            raise ConfigError(f"{filename}: sources.forms: expected a mapping of source name to settings")
        for name, conf in raw_forms.items():
            where = f"{filename}: sources.forms.{name}"
            if not isinstance(name, str) or not _NAME.match(name):
                raise ConfigError(f"{where}: name must match [a-z0-9][a-z0-9_-]*")
            if not isinstance(conf, dict):
                raise ConfigError(f"{where}: expected a mapping")
            forms[name] = FormSource(
                name=name,
                auth=_form_auth(conf.get("auth"), environ, where),
                id_field=_opt_str(conf, "id_field", where),
                id_header=_opt_str(conf, "id_header", where),
            )
        return cls(workflow, forms)


def _opt_str(conf: Mapping[str, Any], key: str, where: str) -> str | None:
    value = conf.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: {key}: expected a string")
    return value


def secret_from(conf: Mapping[str, Any], key: str, environ: Mapping[str, str], where: str) -> str:
    """A secret named ``<key>_env`` (an environment variable) or given inline; ConfigError naming ``where``."""
    env_name = conf.get(f"{key}_env")
    if isinstance(env_name, str):
        value = environ.get(env_name, "")
        if not value:
            raise ConfigError(f"{where}: {key}_env: environment variable {env_name} is not set")
        return value
    inline = conf.get(key)
    if isinstance(inline, str) and inline:
        return inline
    raise ConfigError(f"{where}: give {key}_env (the name of an environment variable holding the {key})")


def previous_from(conf: Mapping[str, Any], key: str, environ: Mapping[str, str], where: str) -> str | None:
    """The previous value of a rotating secret, or None: ``<key>_previous_env`` (or inline ``<key>_previous``),
    else the variable ``<key>_env`` names with ``_PREVIOUS`` appended (``FORM_SECRET`` → ``FORM_SECRET_PREVIOUS``,
    as ``HUBSPOT_CLIENT_SECRET_PREVIOUS``), so that a rotation needs no change to the rules file.

    An unset or empty variable is None, not an error: a rotation ends when the variable is removed.
    """
    env_name = conf.get(f"{key}_previous_env")
    if env_name is not None:
        if not isinstance(env_name, str) or not env_name:
            raise ConfigError(f"{where}: {key}_previous_env: expected the name of an environment variable")
        return environ.get(env_name) or None
    inline = conf.get(f"{key}_previous")
    if inline is not None and not isinstance(inline, str):
        raise ConfigError(f"{where}: {key}_previous: expected a string")
    current_env = conf.get(f"{key}_env")
    if not inline and isinstance(current_env, str) and current_env:
        return environ.get(f"{current_env}_PREVIOUS") or None
    return inline or None


def _workflow_auth(conf: Any, environ: Mapping[str, str], where: str) -> SignatureAuth | ApiKeyAuth:
    auth = conf.get("auth") if isinstance(conf, dict) else None
    if not isinstance(auth, dict):
        raise ConfigError(f"{where}: auth: expected {{type: signature}} or {{type: api_key, ...}}")
    kind = auth.get("type")
    if kind == "signature":
        return SignatureAuth()
    if kind == "api_key":
        name = auth.get("name")
        location = auth.get("in", "header")
        if not isinstance(name, str) or not name or location not in ("header", "query"):
            raise ConfigError(f"{where}: auth: api_key needs name and in: header|query")
        return ApiKeyAuth(
            name,
            location,
            secret_from(auth, "key", environ, f"{where}.auth"),
            previous_from(auth, "key", environ, f"{where}.auth"),
        )
    raise ConfigError(f"{where}: auth.type: expected signature or api_key, got {kind!r}")


def _form_auth(auth: Any, environ: Mapping[str, str], where: str) -> HmacAuth | TokenAuth:
    if not isinstance(auth, dict):
        raise ConfigError(f"{where}: auth: required ({{type: hmac, ...}} or {{type: token, ...}})")
    kind = auth.get("type")
    header = auth.get("header")
    if not isinstance(header, str) or not header:
        raise ConfigError(f"{where}: auth.header: required")
    if kind == "token":
        return TokenAuth(
            header,
            secret_from(auth, "token", environ, f"{where}.auth"),
            previous_from(auth, "token", environ, f"{where}.auth"),
        )
    if kind == "hmac":
        encoding = auth.get("encoding", "hex")
        if encoding not in ("hex", "base64"):
            raise ConfigError(f"{where}: auth.encoding: expected hex or base64, got {encoding!r}")
        tolerance = auth.get("tolerance_s", signatures.DEFAULT_TOLERANCE_S)
        if not isinstance(tolerance, int | float) or tolerance <= 0:
            raise ConfigError(f"{where}: auth.tolerance_s: expected a positive number")
        timestamp_header = auth.get("timestamp_header")
        if timestamp_header is not None and not isinstance(timestamp_header, str):
            raise ConfigError(f"{where}: auth.timestamp_header: expected a header name")
        prefix = auth.get("prefix", "")
        if not isinstance(prefix, str):
            raise ConfigError(f"{where}: auth.prefix: expected a string")
        return HmacAuth(
            header,
            secret_from(auth, "secret", environ, f"{where}.auth"),
            encoding,
            prefix,
            timestamp_header,
            float(tolerance),
            previous_from(auth, "secret", environ, f"{where}.auth"),
        )
    raise ConfigError(f"{where}: auth.type: expected hmac or token, got {kind!r}")


def verify_form(source: FormSource, body: bytes, headers: Mapping[str, str], now_s: float) -> signatures.Which:
    """Check a form submission's proof of origin; say which secret matched, or raise InvalidSignatureError.

    Header names are matched case-insensitively (RFC 9110): the configured ``X-HubLink-Token`` is found
    whether the sender wrote ``x-hublink-token`` or ``X-HUBLINK-TOKEN``.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    auth = source.auth
    if isinstance(auth, TokenAuth):
        presented = lowered.get(auth.header.lower())
        return signatures.verify_either(
            lambda token: signatures.verify_static_token(token, presented), auth.token, auth.token_previous
        )
    timestamp = lowered.get(auth.timestamp_header.lower()) if auth.timestamp_header else None
    if auth.timestamp_header and timestamp is None:
        raise InvalidSignatureError("missing", f"missing {auth.timestamp_header} header")
    hmac_auth = auth

    def verify(secret: str) -> None:
        signatures.verify_hmac(
            secret,
            body,
            lowered.get(hmac_auth.header.lower()),
            encoding=hmac_auth.encoding,
            prefix=hmac_auth.prefix,
            timestamp=timestamp,
            now_s=now_s if timestamp is not None else None,
            tolerance_s=hmac_auth.tolerance_s if timestamp is not None else None,
        )

    return signatures.verify_either(verify, auth.secret, auth.secret_previous)
