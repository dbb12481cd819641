"""Logging: one JSON object per line through stdlib logging, with secrets redacted.

structlog's ``ProcessorFormatter`` is the JSON formatter on the root handler, so HubLink's own records,
gunicorn's and RQ's all come out as JSON lines. Context (request id, job id, association id, ...) is
bound with ``structlog.contextvars`` and merged into every record. The redaction processor replaces
every configured secret, wherever it appears in a record, and drops fields named like credentials.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

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


class Redactor:
    """A structlog processor that removes configured secrets and credential-named fields."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
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


def configure(level: str, secrets: Iterable[str], stream: Any = None) -> None:
    """Send every log record to ``stream`` (stderr) as one JSON line; call once per process."""
    redactor = Redactor(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
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
