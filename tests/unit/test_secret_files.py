"""Secrets from files: each secret variable NAME may be given as NAME_FILE, a path, and is then read like NAME."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from pathlib import Path

import pytest

from hublink import log
from hublink.config.secret_files import FILE_SUFFIX, SECRET_VARIABLES, with_secret_files
from hublink.config.settings import ENVIRONMENT_VARIABLES, Settings
from hublink.domain.errors import ConfigError

PROBE = "redis://probe-secret-value-0123:6379/0"


def secret_variables_of_settings() -> set[str]:
    """The variables whose fields Settings keeps out of repr, found through from_env alone.

    Each variable is set to a probe value one at a time; the field that takes it is the variable's. This reads
    only the public form of Settings, so it holds however the fields are declared.
    """
    secret_fields = {f.name for f in dataclasses.fields(Settings) if not f.repr}
    default = Settings()
    found = set()
    for name in ENVIRONMENT_VARIABLES:
        try:
            settings = Settings.from_env({name: PROBE})
        except ConfigError:
            continue  # not a string setting: a number, a URL of another scheme, a list
        fields = dataclasses.fields(Settings)
        changed = {f.name for f in fields if getattr(settings, f.name) != getattr(default, f.name)}
        if changed & secret_fields:
            found.add(name)
    return found


def write(tmp_path: Path, name: str, text: str) -> str:
    """A file holding ``text``; its path."""
    path = tmp_path / name
    path.write_text(text, newline="")
    return str(path)


class TestSecretVariables:
    """The list of secret variables is the Settings fields kept out of repr, no more and no fewer."""

    def test_every_secret_field_reads_a_file(self) -> None:
        """A new secret field of Settings cannot be left without its _FILE form (and no variable is listed twice)."""
        assert set(SECRET_VARIABLES) == secret_variables_of_settings()
        assert len(SECRET_VARIABLES) == len(set(SECRET_VARIABLES))

    def test_every_listed_variable_is_read_by_settings(self) -> None:
        """Each listed variable is one Settings reads."""
        assert set(SECRET_VARIABLES) <= set(ENVIRONMENT_VARIABLES)


class TestWithSecretFiles:
    """with_secret_files puts each NAME_FILE's text in NAME before Settings reads the environment."""

    @pytest.mark.parametrize("name", SECRET_VARIABLES)
    def test_each_secret_variable_is_read_from_its_file(self, tmp_path: Path, name: str) -> None:
        """NAME_FILE pointing at a file gives NAME the file's text."""
        path = write(tmp_path, "secret", "redis://:pw-from-file-0123@redis:6379/0\n")
        assert with_secret_files({name + FILE_SUFFIX: path})[name] == "redis://:pw-from-file-0123@redis:6379/0"

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("tok-0123\n", "tok-0123"),
            ("tok-0123\r\n", "tok-0123"),
            ("tok-0123", "tok-0123"),
            ("tok-0123\n\n", "tok-0123\n"),
            (" tok-0123 \n", " tok-0123 "),
        ],
    )
    def test_one_trailing_newline_is_stripped(self, tmp_path: Path, text: str, expected: str) -> None:
        """One trailing newline (LF or CRLF) is dropped and nothing else."""
        path = write(tmp_path, "secret", text)
        assert with_secret_files({"HUBLINK_API_TOKEN_FILE": path})["HUBLINK_API_TOKEN"] == expected

    def test_both_set_is_an_error_naming_both(self, tmp_path: Path) -> None:
        """NAME and NAME_FILE together stop start-up with a message naming both."""
        path = write(tmp_path, "secret", "from-file-0123")
        with pytest.raises(ConfigError, match="HUBSPOT_ACCESS_TOKEN and HUBSPOT_ACCESS_TOKEN_FILE are both set"):
            with_secret_files({"HUBSPOT_ACCESS_TOKEN": "direct-0123", "HUBSPOT_ACCESS_TOKEN_FILE": path})

    def test_an_empty_variable_counts_as_unset(self, tmp_path: Path) -> None:
        """An empty NAME beside NAME_FILE is not a conflict, as from_env reads an empty variable as unset."""
        path = write(tmp_path, "secret", "from-file-0123")
        assert with_secret_files({"HUBLINK_API_TOKEN": "", "HUBLINK_API_TOKEN_FILE": path})["HUBLINK_API_TOKEN"] == (
            "from-file-0123"
        )

    def test_an_unreadable_file_is_an_error_naming_the_variable(self, tmp_path: Path) -> None:
        """A missing file stops start-up naming NAME_FILE and the path, never a secret."""
        missing = tmp_path / "nope"
        with pytest.raises(ConfigError, match=rf"HUBLINK_SECRET_KEY_FILE: cannot read {missing}: No such file"):
            with_secret_files({"HUBLINK_SECRET_KEY_FILE": str(missing)})

    def test_no_file_variables_leave_the_environment_as_it_is(self) -> None:
        """Without any _FILE variable the mapping is returned untouched."""
        environ = {"HUBLINK_API_TOKEN": "direct-0123"}
        assert with_secret_files(environ) is environ

    def test_other_file_variables_are_not_secrets(self, tmp_path: Path) -> None:
        """HUBLINK_RULES_FILE keeps its own meaning (a path), and a _FILE of a non-secret is not read."""
        path = write(tmp_path, "rules.yaml", "rules: []\n")
        environ = {"HUBLINK_RULES_FILE": path, "HUBLINK_QUEUE_FILE": path}
        assert with_secret_files(environ) == environ


class TestSettingsFromFiles:
    """Settings.from_env reads secrets from files, keeps them out of repr and hands them to the log redactor."""

    def test_settings_take_secrets_from_files(self, tmp_path: Path) -> None:
        """Tokens and the Redis URL come from their files, parsed like the variables themselves."""
        settings = Settings.from_env(
            {
                "HUBLINK_API_TOKEN_FILE": write(tmp_path, "api", "api-token-from-file-0123\n"),
                "REDIS_URL_FILE": write(tmp_path, "redis", "redis://:pw-from-file-0123@redis:6379/2\n"),
            }
        )
        assert settings.api_token == "api-token-from-file-0123"
        assert settings.redis_url == "redis://:pw-from-file-0123@redis:6379/2"
        assert "api-token-from-file-0123" not in repr(settings)

    def test_both_set_stops_settings(self, tmp_path: Path) -> None:
        """from_env refuses NAME with NAME_FILE."""
        with pytest.raises(ConfigError, match="HUBLINK_ADMIN_TOKEN and HUBLINK_ADMIN_TOKEN_FILE"):
            Settings.from_env(
                {"HUBLINK_ADMIN_TOKEN": "a-0123", "HUBLINK_ADMIN_TOKEN_FILE": write(tmp_path, "admin", "b-0123")}
            )

    @pytest.mark.parametrize("name", SECRET_VARIABLES)
    def test_the_logs_redact_each_secret_read_from_a_file(self, tmp_path: Path, name: str) -> None:
        """A secret read from a file is replaced in log lines like one given directly."""
        secret = "redis://:from-file-pw-0123@redis:6379/0" if name == "REDIS_URL" else "from-file-secret-0123"
        sentinel = {"REDIS_SENTINELS": "s:26379", "REDIS_SENTINEL_MASTER": "m"}
        extra = sentinel if name == "REDIS_SENTINEL_PASSWORD" else {}
        settings = Settings.from_env({name + FILE_SUFFIX: write(tmp_path, "secret", secret + "\n"), **extra})
        stream = io.StringIO()
        log.configure("INFO", settings.secrets, stream=stream)
        logging.getLogger("test.secret_files").info("the value is %s", secret)
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert "from-file" not in line["event"]
        assert log.REDACTED in line["event"]
