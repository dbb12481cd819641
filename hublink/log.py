"""Logging: one JSON object per line through stdlib logging, with secrets redacted.

structlog's ``ProcessorFormatter`` is the JSON formatter on the root handler, so HubLink's own records,
gunicorn's and RQ's all come out as JSON lines. Context (request id, job id, association id, ...) is
bound with ``structlog.contextvars`` and merged into every record. The redaction processor replaces
every configured secret, wherever it appears in a record, drops fields named like credentials, and
blanks the value of every credential-carrying query parameter (``hapikey=...`` and those the rules file
names) in any text, gunicorn's access lines included, whatever the value: a wrong key is a secret too.
With tracing on (``hublink.tracing``), a record made inside a span carries its ``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from hublink import tracing

REDACTED = "[REDACTED]"
#: Field names that never reach a log line, whatever their value.
SENSITIVE_FIELDS = frozenset(
    {
        "authorization",
        "token",
        "access_token",
        "refresh_token",
        "client_secret",
        "password",
        "secret",
        "api_key",
        "hapikey",
    }
)


#: Query parameters whose value is a credential whatever the configuration (HubSpot's legacy API key).
SENSITIVE_QUERY_PARAMS = ("hapikey",)
#: An API client's token (``hublink.ops.api_clients``): recognisable by its form, so removed wherever it shows.
API_CLIENT_TOKEN = re.compile(r"hl_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


def query_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching ``name=value`` of each query parameter in ``names`` (case-insensitive), or None."""
    unique = sorted({n for n in names if n}, key=len, reverse=True)
    if not unique:
        return None
    alternatives = "|".join(re.escape(n) for n in unique)
    # The name starts the query or follows a separator; the value runs to the next separator or quote.
    return re.compile(rf"(?i)((?:^|[?&;\s])(?:{alternatives})=)[^&;\s\"']*")


class Redactor:
    """A structlog processor that removes configured secrets, credential-named fields and query credentials."""

    def __init__(self, secrets: Iterable[str], query_params: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._query = query_pattern([*SENSITIVE_QUERY_PARAMS, *query_params])

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            if self._query is not None and "=" in value:
                value = self._query.sub(rf"\g<1>{REDACTED}", value)
            if "hl_" in value:
                value = API_CLIENT_TOKEN.sub(REDACTED, value)
            return value
        if isinstance(value, dict):
            return {k: REDACTED if str(k).lower() in SENSITIVE_FIELDS else self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """Clean one event dict in place."""
        for key in list(event_dict):
            if key.lower() in SENSITIVE_FIELDS:
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self._clean(event_dict[key])
        return event_dict


def add_trace_ids(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: the current span's ``trace_id`` and ``span_id`` (tracing on, inside a span)."""
    ids = tracing.log_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


def configure(level: str, secrets: Iterable[str], stream: Any = None, query_params: Iterable[str] = ()) -> None:
    """Send every log record to ``stream`` (stderr) as one JSON line; call once per process.

    ``secrets`` are replaced wherever they appear; the values of ``query_params`` (and ``hapikey``) are
    replaced in any ``name=value`` text, such as the request line of an access log.
    """
    redactor = Redactor(secrets, query_params)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redactor,
            structlog.processors.JSONRenderer(default=str),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.configure(
        processors=[*shared[:-1], structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
