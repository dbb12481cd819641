"""Build HubLink's container image: ``python scripts/image.py [engine|base|build]`` (``make image``).

``engine`` installs podman and runc from the system's packages where no engine is found (Debian, as root).
``base`` builds ``localhost/hublink-base:bookworm`` with debootstrap from the mirror apt already uses, for
machines that reach no container registry (skipped when the image exists). ``build`` builds the
``Containerfile``: ``--base`` picks the base image (default: the official Python image), and with podman
the machine's pip configuration (certificate bundle, index URLs, find-links, constraints) is mounted
read-only into the build, so that ``pip install`` inside it reaches the same package index as the host.

With podman, runc is used where it is installed, under ``deploy/podman/containers.conf`` (cgroupfs, no
default ulimits): small VMs refuse crun's resource limits. See docs/how-to/deploy.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS_CONF = ROOT / "deploy" / "podman" / "containers.conf"
LOCAL_BASE = "localhost/hublink-base:bookworm"
DEFAULT_BASE = "python:3.11-slim-bookworm"
IMAGE = "localhost/hublink"


def version() -> str:
    """HubLink's version, read from its one place (``hublink/__init__.py``) without importing the package."""
    text = (ROOT / "hublink" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not found:
        raise SystemExit("hublink/__init__.py: no __version__ line")
    return found.group(1)


def engine() -> str | None:
    """The container engine on PATH: podman first (it needs no daemon), else docker; None when neither."""
    return shutil.which("podman") or shutil.which("docker")


def engine_command(name: str) -> list[str]:
    """The engine's argv prefix: podman with runc and the project's containers.conf where runc is installed."""
    if Path(name).name == "podman" and shutil.which("runc"):
        os.environ.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
        return [name, "--runtime", "runc"]
    return [name]


def install_engine() -> str | None:
    """Install podman, runc and debootstrap with apt where podman is missing; the engine found afterwards."""
    if shutil.which("podman") and shutil.which("runc") and shutil.which("debootstrap"):
        return shutil.which("podman")
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        packages = ["podman", "runc", "debootstrap"]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": False}
        if subprocess.run([apt, "install", "-y", "-q", *packages], **quiet).returncode != 0:  # type: ignore[call-overload]
            subprocess.run([apt, "update", "-q"], **quiet)  # type: ignore[call-overload]
            subprocess.run([apt, "install", "-y", "-q", *packages], **quiet)  # type: ignore[call-overload]
    return engine()


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 ``.sources`` or a ``sources.list`` line)."""
    apt = Path("/etc/apt")
    for path in sorted(apt.glob("sources.list.d/*.sources")):
        for stanza in path.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and "bookworm" in suites.group(1).split():
                return uris.group(1)
    for path in [apt / "sources.list", *sorted(apt.glob("sources.list.d/*.list"))]:
        if path.is_file():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[-2] == "bookworm":
                    return parts[-3]
    raise SystemExit("no Debian bookworm mirror in /etc/apt: cannot build the local base")


def image_exists(cmd: list[str], name: str) -> bool:
    """True when the engine holds the image ``name``."""
    result = subprocess.run([*cmd, "image", "exists", name], capture_output=True, check=False)
    return result.returncode == 0


def build_base(cmd: list[str]) -> None:
    """Build the local Debian base (python3 and venv, nothing else) unless it exists."""
    if image_exists(cmd, LOCAL_BASE):
        print(f"{LOCAL_BASE}: present")
        return
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hublink-base-") as rootfs:
        subprocess.run(
            [debootstrap, "--variant=minbase", "--include=python3,python3-venv", "bookworm", rootfs, debian_mirror()],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run([*cmd, "import", "-", LOCAL_BASE], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        tar.wait()
    print(f"{LOCAL_BASE}: built in {time.monotonic() - started:.0f} s")


def pip_mounts() -> list[str]:
    """``-v PATH:PATH:ro`` for each file or folder the machine's pip configuration names, and the CA folder."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    paths: set[str] = set()
    for line in listed.splitlines():
        _, _, value = line.partition("=")
        for item in value.strip().strip("'\"").split():
            path = item.removeprefix("file://")
            if path.startswith("/"):
                paths.add(path.rstrip("/"))
    for name in os.environ:
        if name.startswith("PIP_") and os.environ[name].startswith("/"):
            paths.add(os.environ[name].rstrip("/"))
    paths.add("/etc/ssl/certs")
    mounts: list[str] = []
    for path in sorted(p for p in paths if Path(p).exists()):
        mounts += ["-v", f"{path}:{path}:ro"]
    # pip inside the build reads the same configuration files the host's pip does.
    for config in ("/etc/pip.conf", "/etc/xdg/pip/pip.conf"):
        if Path(config).is_file() and config not in paths:
            mounts += ["-v", f"{config}:{config}:ro"]
    return mounts


def build_image(cmd: list[str], base: str, tag: str) -> float:
    """Build the Containerfile on ``base`` as ``tag`` (and ``latest``); return the seconds it took."""
    argv = [*cmd, "build", "-f", str(ROOT / "Containerfile"), "--build-arg", f"BASE={base}"]
    argv += ["--build-arg", f"VERSION={version()}", "-t", tag, "-t", f"{IMAGE}:latest"]
    if Path(cmd[0]).name == "podman":
        # Docker format: the OCI format has no HEALTHCHECK. Chroot isolation takes the -v mounts.
        argv += ["--format", "docker", "--isolation", "chroot", *pip_mounts()]
    started = time.monotonic()
    subprocess.run([*argv, str(ROOT)], check=True)
    return time.monotonic() - started


def image_size_mb(cmd: list[str], tag: str) -> float:
    """The image's size in MB (10^6 bytes), as the engine reports it."""
    out = subprocess.run(
        [*cmd, "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True, check=True
    ).stdout
    return int(out.strip()) / 1e6


def main(argv: list[str] | None = None) -> int:
    """Run one step: install the engine, build the local base, or build the image."""
    parser = argparse.ArgumentParser(prog="scripts/image.py", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["engine", "base", "build"])
    parser.add_argument("--base", default=DEFAULT_BASE, help=f"the base image (default {DEFAULT_BASE})")
    parser.add_argument("--tag", default=None, help=f"the image's name (default {IMAGE}:VERSION)")
    args = parser.parse_args(argv)
    found = install_engine() if args.step == "engine" else engine()
    if found is None:
        print("no container engine (podman or docker) is installed or installable here")
        return 1 if args.step != "engine" else 0
    cmd = engine_command(found)
    if args.step == "engine":
        print(f"engine: {' '.join(cmd)}")
    elif args.step == "base":
        build_base(cmd)
    else:
        tag = args.tag or f"{IMAGE}:{version()}"
        seconds = build_image(cmd, args.base, tag)
        print(f"{tag}: built in {seconds:.0f} s on {args.base}, {image_size_mb(cmd, tag):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
