"""The image's HEALTHCHECK: the web answers ``/healthz``, a worker passes ``python -m worker --check``.

Which one runs is read from the container's first process (``hublink web`` becomes gunicorn, ``hublink
worker`` becomes ``python -m worker``), so one image-wide HEALTHCHECK serves every role. Any other
command (the simulator, an operator's one-off ``hublink`` command) is healthy while it runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path


def main() -> int:
    """Exit 0 when the container's process is healthy, 1 with one line saying why when not."""
    argv = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    if b"-m" in argv and b"worker" in argv:
        return subprocess.run([sys.executable, "-m", "worker", "--check"], check=False, timeout=10).returncode
    if any(b"gunicorn" in arg for arg in argv):
        url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=4) as answer:
                return 0 if answer.status == 200 else 1
        except OSError as exc:
            print(f"unhealthy: {url}: {exc}", file=sys.stderr)  # noqa: T201 - a probe's one line
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
