"""`make run` as a newcomer runs it: in a copy of the repository, from a clean environment, stopped by a signal.

The copy shares the repository's `.venv` (a symlink) and is used only while its requirements are installed
(the stamp `make venv` leaves), so `make run` finds nothing to install and never writes to the shared
virtualenv. Ports are the test's own (PORT, HUBSPOT_SIM_PORT, and REDIS_URL on a port where nothing answers,
so make run starts a private Redis and never touches one the machine runs). Every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import REPO, free_port, port_open, wait_for

#: What the clean environment's PATH holds (``env -i`` with PATH and HOME, as a fresh login shell has).
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
#: How long `make run` may take to print its banner when the virtualenv is already installed.
START_TIMEOUT_S = 120.0
#: How long everything it started may take to end after the signal.
STOP_TIMEOUT_S = 60.0


def requirements_installed() -> bool:
    """True when `make venv`'s stamp for today's requirements exists (the Makefile's own hash, of its own files)."""
    # The files are read off the Makefile's REQ_HASH line, so the two cannot disagree on what is hashed.
    hashed = re.search(r"^REQ_HASH := \$\(shell cat (.+?) \|", (REPO / "Makefile").read_text(), re.M)
    assert hashed, "the Makefile's REQ_HASH line is not where this test reads it"
    digest = hashlib.sha256(b"".join((REPO / name).read_bytes() for name in hashed.group(1).split()))
    return (REPO / ".venv" / f".installed-{digest.hexdigest()[:16]}").exists()


def repo_copy(dest: Path) -> Path:
    """Copy the repository's files (tracked, and new ones not ignored) to ``dest``, sharing its `.venv`."""
    if not requirements_installed():
        pytest.fail("the virtualenv is not installed for today's requirements: run `make venv` first")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = REPO / name
        if not source.is_file() or name.startswith(".venv") or name == ".env":  # a fresh clone has no .env
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        # copy2 keeps the times: a newer requirements file in the copy would make `make` reinstall into the
        # shared .venv and point its editable install at this temporary copy.
        shutil.copy2(source, target)
    (dest / ".venv").symlink_to((REPO / ".venv").resolve())
    return dest


def _default_sigint() -> None:
    """In the child before exec: SIGINT does what it does in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class DevRun:
    """One `make run` (or any command starting it) in a repository copy, with its own ports."""

    root: Path
    port: int = field(default_factory=free_port)
    sim_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """The clean environment: PATH and HOME, and this run's ports."""
        return {
            "PATH": CLEAN_PATH,
            "HOME": str(Path.home()),
            "PORT": str(self.port),
            "HUBSPOT_SIM_PORT": str(self.sim_port),
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
        }

    @property
    def log(self) -> Path:
        """Where the runner's output goes."""
        return self.root.parent / f"{self.root.name}-make-run.log"

    def output(self) -> str:
        """What the runner printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self, script: str) -> None:
        """Run ``script`` in bash in the background, in its own process group (the terminal's, for Ctrl-C)."""
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["bash", "-c", script],
                cwd=self.root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Ctrl-C's default, whatever this test inherited (SIGINT is ignored under nohup and some CI).
                preexec_fn=_default_sigint,
            )

        def up() -> bool:
            """The banner is out and the second shell's file written (an exited runner fails at once)."""
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"make run exited ({self.process.returncode}):\n{self.output()[-3000:]}")
            return "Ctrl-C stops everything" in self.output() and (self.root / "var" / "dev.env").exists()

        wait_for(up, timeout=START_TIMEOUT_S, interval=0.2, what=f"make run's banner and var/dev.env in {self.root}")

    def shell(self, script: str, timeout: float = 30.0) -> str:
        """Run ``script`` in a second shell (bash, the same clean environment); its output, checked."""
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=self.root,
            env={k: v for k, v in self.env.items() if k in ("PATH", "HOME")},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"{script}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def stop(self, signum: int = signal.SIGINT) -> None:
        """Send ``signum`` to the runner's process group, as Ctrl-C does; wait until everything it started ends."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        finally:
            left = self.leftovers()
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert not left, f"processes left running after make run stopped: {left}\n{self.output()[-3000:]}"
        ports = (self.port, self.sim_port, self.redis_port)
        wait_for(lambda: not any(port_open(p) for p in ports), timeout=10, what="the stack's ports to close")

    def leftovers(self) -> list[int]:
        """Processes still running from this copy (their working directory or command line names it)."""
        found = []
        root = str(self.root)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                cwd = os.readlink(entry / "cwd")
                state = (entry / "stat").read_text().split(") ", 1)[1][:1]
            except OSError:
                continue
            if state != "Z" and (cwd.startswith(root) or root in cmdline):
                found.append(int(entry.name))
        return found
