"""Secrets from files: every secret variable ``NAME`` may instead be given as ``NAME_FILE``, a file's path.

This is the convention of Docker secrets and Kubernetes Secret volumes: the secret never sits in the
process's environment (where ``ps e``, ``/proc/PID/environ`` and crash reports show it), only in a file
readable by the service. :func:`with_secret_files` runs on the environment before ``Settings.from_env``
reads it, so a value read from a file is parsed, validated and kept out of ``repr`` and of the logs
(``Settings.secrets`` feeds the log redactor) exactly like one given directly.
"""

from __future__ import annotations

from collections.abc import Mapping

from hublink.domain.errors import ConfigError

#: The variables that hold secrets: the Settings fields kept out of ``repr`` (a unit test holds the two
#: equal, so a new secret field cannot be left without its ``_FILE`` form).
SECRET_VARIABLES = (
    "REDIS_URL",
    "REDIS_SENTINEL_PASSWORD",
    "HUBLINK_API_TOKEN",
    "HUBLINK_ADMIN_TOKEN",
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_CLIENT_SECRET",
    "HUBSPOT_DEVELOPER_TOKEN",
    "HUBLINK_METRICS_TOKEN",
    "HUBLINK_ALERT_WEBHOOK_URL",
    "HUBLINK_ALERT_PAGERDUTY_KEY",
    "HUBLINK_SECRET_KEY",
    "HUBSPOT_CLIENT_SECRET_PREVIOUS",
)
FILE_SUFFIX = "_FILE"


def with_secret_files(environ: Mapping[str, str]) -> Mapping[str, str]:
    """``environ`` with each ``NAME_FILE`` of a secret variable replaced by the file's text as ``NAME``.

    One trailing newline is stripped (editors and ``echo`` add one; a secret never ends with it).
    An empty variable counts as unset, as ``Settings.from_env`` reads it. Raises ConfigError naming both
    variables when ``NAME`` and ``NAME_FILE`` are both set, and naming ``NAME_FILE`` when its file cannot
    be read. Returns ``environ`` itself when no ``_FILE`` variable is set.
    """
    given = [name for name in SECRET_VARIABLES if environ.get(name + FILE_SUFFIX, "").strip()]
    if not given:
        return environ
    resolved = dict(environ)
    for name in given:
        file_variable = name + FILE_SUFFIX
        if environ.get(name, "").strip():
            raise ConfigError(f"{name} and {file_variable} are both set: give the secret one way")
        path = environ[file_variable].strip()
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ConfigError(f"{file_variable}: cannot read {path}: {reason}") from None
        resolved[name] = text.removesuffix("\r\n") if text.endswith("\r\n") else text.removesuffix("\n")
    return resolved
