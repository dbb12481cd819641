"""`make run` with a `.env` copied from `.env.example`: its own values win, the banner says where all is."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.dev_runner import DevRun, repo_copy
from tests.support.processes import wait_for
from tests.unit.test_dev_runner import dev

pytestmark = pytest.mark.integration


def test_make_run_keeps_its_own_values_over_dotenv_and_says_where_everything_is(tmp_path: Path) -> None:
    """HUBSPOT_BASE_URL=https://api.hubapi.com and a token in .env: the worker still calls the simulator."""
    root = repo_copy(tmp_path / "hublink")
    dotenv = (root / ".env.example").read_text()
    (root / ".env").write_text(dotenv + "HUBLINK_API_TOKEN=from-dotenv\nHUBLINK_REDIS_PREFIX=fromdotenv:\n")
    run = DevRun(root)
    try:
        run.start("make run")
        out = run.output()
        [notice] = [line for line in out.splitlines() if ".env" in line and line.startswith("make run:")]
        assert "HUBSPOT_BASE_URL" in notice and "HUBLINK_API_TOKEN" in notice and "from-dotenv" not in notice
        base, sim = f"http://127.0.0.1:{run.port}", f"http://127.0.0.1:{run.sim_port}"
        for shown in (
            f"{base}/admin",
            "admin token: dev-admin-token-",
            f"{base}/webhooks/hubspot",
            f"{base}/webhooks/workflow",
            f"{base}/webhooks/forms/<source>",
            f"{base}/api/associations",
            f"{sim}/_sim/associations",
            f"Rules:       {root}/scripts/dev-rules.yaml  (1 rule(s): deal-to-contact)",
            "export PATH=",
        ):
            assert shown in out, shown

        second = ". var/dev.env\n"
        settings = run.shell(
            second + "python -c 'import json, os, sys; from hublink.config.settings import Settings; "
            "s = Settings.from_env(os.environ); "
            "print(json.dumps([sys.prefix, s.redis_url, s.redis_prefix, s.hubspot_base_url, s.api_token]))'"
        )
        prefix, redis_url, redis_prefix, hubspot, token = json.loads(settings)
        assert Path(prefix).resolve() == (root / ".venv").resolve()
        assert (redis_url, redis_prefix, hubspot) == (run.env["REDIS_URL"], "fromdotenv:", sim)
        assert token.startswith("dev-api-token-")

        pair = {"fromObjectType": "deals", "fromObjectId": "123", "toObjectType": "contacts", "toObjectId": "456"}
        body = json.dumps({"associations": [pair]})
        answer = run.shell(
            second + 'curl -sS -X POST "$HUBLINK_URL/api/associations" -H "Authorization: Bearer $HUBLINK_API_TOKEN" '
            f"-H 'Content-Type: application/json' -d '{body}'"
        )
        assert "ids" in answer or "accepted" in answer, answer
        wait_for(
            lambda: '"fromObjectId":"123"' in run.shell(second + 'curl -sS "$HUBSPOT_BASE_URL/_sim/associations"'),
            timeout=20,
            interval=0.2,
            what="the association in the simulator (not in the real HubSpot)",
        )
        assert "api.hubapi.com" not in run.output()
    finally:
        run.stop(signal.SIGTERM)


def test_the_export_line_gives_a_shell_the_values_quoted(tmp_path: Path) -> None:
    """Sourcing the export line in bash sets each value exactly, and puts the venv's bin first on PATH."""
    env = {"HUBLINK_API_TOKEN": "a b'c", "HUBLINK_URL": "http://127.0.0.1:8000", "OTHER": "not exported"}
    line = dev().export_line(env, {"HUBLINK_API_TOKEN", "HUBLINK_URL"}, tmp_path / "bin")
    script = f'{line}\nprintf "%s\\n" "$HUBLINK_API_TOKEN" "$HUBLINK_URL" "${{OTHER-unset}}" "${{PATH%%:*}}"'
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}
    ).stdout
    assert out.splitlines() == ["a b'c", "http://127.0.0.1:8000", "unset", str(tmp_path / "bin")]
    assert shlex.split(line)[0] == "export"
