"""docs/getting-started.md, followed literally: its shell blocks run as written, from a clean environment.

Each fenced ``sh`` block is preceded by a comment saying what the test does with it:
``<!-- test: start -->`` runs it in the background in the first shell (``make run``) and waits for the
banner; ``<!-- test: source -->`` is the second shell's set-up, run before each later block;
``<!-- test: run -->`` runs it there and needs it to succeed, ``<!-- test: run until "TEXT" -->`` until its
output holds TEXT (a deadline, no sleeps); ``<!-- test: open -->`` runs it and GETs the address it prints,
as a browser would, then logs in with the admin token as the page says; ``<!-- test: skip ... -->`` is not
run. Then the test presses Ctrl-C (SIGINT to the runner's process group) and checks that everything ends.
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.dev_runner import DevRun, repo_copy
from tests.support.processes import REPO, wait_for

pytestmark = pytest.mark.integration

DOC = REPO / "docs" / "getting-started.md"
_BLOCK = re.compile(
    r"<!-- test: (?P<how>[a-z]+)(?: until \"(?P<until>[^\"]+)\")?[^>]*-->\s*\n```sh\n(?P<body>.*?)```", re.S
)
_ANY_SH = re.compile(r"^```sh$", re.M)


@dataclass(frozen=True)
class Block:
    """One fenced shell block of the page and what the test does with it."""

    how: str
    body: str
    until: str | None = None


def blocks(text: str) -> list[Block]:
    """The page's marked shell blocks, in order."""
    return [Block(m["how"], m["body"], m["until"]) for m in _BLOCK.finditer(text)]


def test_every_shell_block_of_steps_one_to_six_is_marked() -> None:
    """Each ``sh`` block up to "Your own rules" says what the test does with it (none is silently skipped)."""
    steps = DOC.read_text().split("## Your own rules")[0]
    assert len(blocks(steps)) == len(_ANY_SH.findall(steps))
    assert [b.how for b in blocks(steps)] == ["skip", "start", "source", "run", "run", "open"]


def test_the_rule_shown_is_the_rule_loaded() -> None:
    """The page's YAML is the starter rules file make run loads (so the page cannot drift from it)."""
    [shown] = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert shown in (REPO / "scripts" / "dev-rules.yaml").read_text()


def test_the_page_runs_as_written(tmp_path: Path) -> None:
    """Start, send the event, see the link in the simulator, open the dashboard, stop: as the page says."""
    run = DevRun(repo_copy(tmp_path / "hublink"))
    setup = ""
    try:
        for block in blocks(DOC.read_text()):
            if block.how == "start":
                run.start(block.body)
            elif block.how == "source":
                setup += block.body
            elif block.how == "run" and block.until:
                until = block.until
                wait_for(
                    lambda script=setup + block.body, until=until: until in run.shell(script),
                    timeout=20,
                    interval=0.2,
                    what=f"{until!r} in the output of {block.body.strip()!r}",
                )
            elif block.how == "run":
                assert '"received":1' in run.shell(setup + block.body)
            elif block.how == "open":
                address = run.shell(setup + block.body).strip().splitlines()[-1]
                token = run.shell(setup + 'printf %s "$HUBLINK_ADMIN_TOKEN"')
                page = dashboard(address, token, "/admin/trace?type=deals&id=5001")
                assert "deals/5001" in page and "contacts/7001" in page and "what-done" in page
    finally:
        run.stop()
    assert not (run.root / "var" / "dev.env").exists()


def dashboard(address: str, token: str, then: str) -> str:
    """GET the dashboard at ``address`` (its login page), log in with ``token``, and GET ``then``."""
    assert address.startswith("http://127.0.0.1:"), address
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(address, timeout=10) as response:
        login = response.read().decode()
        assert response.status == 200 and "/admin/login" in response.url, response.url
    [csrf] = re.findall(r'name="csrf_token" value="([^"]+)"', login)
    form = urllib.parse.urlencode({"csrf_token": csrf, "token": token}).encode()
    with opener.open(response.url, data=form, timeout=10) as logged_in:
        assert logged_in.status == 200 and "/admin/login" not in logged_in.url
    base = address.removesuffix("/admin")
    with opener.open(base + then, timeout=10) as page:
        return str(page.read().decode())
