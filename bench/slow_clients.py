"""``make bench-slow``: does the web tier keep answering while many clients trickle headers or bodies?

For each candidate server model, on real processes (a private Redis, gunicorn with the Procfile's
``gunicorn.conf.py`` and the candidate's overrides): ``--connections`` clients trickle request headers
(``GET /healthz``, one header line every 2 s, never finishing) and as many trickle bodies (a
``POST /webhooks/hubspot`` without credentials announcing 10 kB and sending 10 bytes every 2 s); a client
the server cuts off reconnects at once, as an attacker would. Meanwhile two probes measure, one request
at a time on fresh connections, the latency of ``GET /healthz`` and of correctly signed
``POST /webhooks/hubspot`` requests. Target: each p99 within 1 s, no probe failing.

With ``--p1 SECONDS`` each candidate also runs P1 of ``make bench`` (single-association intake against a
bare Flask endpoint on the same candidate config, wrk with 16 connections): a server model that survives
slow clients must not cost the intake its throughput.

``python -m bench.slow_clients [--seconds 30] [--connections 100] [--candidates sync,gthread-64,gevent]
[--p1 10]`` prints the table and rewrites the slow-client section of ``bench/README.md``; it exits 1 when
the shipped model (gevent) misses a target, whatever the candidates it is compared with do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from hublink.domain import signatures
from tests.support.processes import (
    Process,
    RedisServer,
    free_port,
    listening_sockets,
    port_open,
    python,
    wait_for,
    web_workers,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CLIENT_SECRET = "bench-client-secret"
API_TOKEN = "bench-api-token"
#: A probe slower than this counts as failed (and as this long in the percentiles).
PROBE_TIMEOUT_S = 10.0
#: The seconds between two lines (or two body pieces) of one trickling client.
TRICKLE_EVERY_S = 2.0
TARGET_P99_S = 1.0

#: The server model gunicorn.conf.py ships (its rows decide the exit status).
SHIPPED = "gevent"
#: Each candidate is gunicorn.conf.py followed by these lines.
CANDIDATES: dict[str, str] = {
    # The models before issue 12 shared one listening socket (reuse_port is for gevent's kept-alive connections).
    "sync": 'worker_class = "sync"\nreuse_port = False\n',
    "gthread-16": 'worker_class = "gthread"\nthreads = 16\nreuse_port = False\n',
    "gthread-64": 'worker_class = "gthread"\nthreads = 64\nreuse_port = False\n',
    "gevent": "",  # gunicorn.conf.py as it is: the Procfile's web process
}


def say(text: str) -> None:
    """Progress, as it happens."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class Probe:
    """Latencies of one kind of well-behaved request, measured one at a time."""

    name: str
    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    def pct(self, p: float) -> float:
        """The p-quantile of the latencies (failures count as the probe timeout)."""
        values = sorted(self.latencies)
        return values[min(int(len(values) * p), len(values) - 1)] if values else float("inf")

    def summary(self) -> dict[str, Any]:
        """JSON-safe figures."""
        return {
            "n": len(self.latencies),
            "failures": self.failures,
            "p50": self.pct(0.50),
            "p99": self.pct(0.99),
            "max": max(self.latencies, default=float("inf")),
        }


async def trickle(host: str, port: int, head: bytes, piece: bytes, stop: asyncio.Event, counts: dict[str, int]) -> None:
    """One slow client: send ``head`` then ``piece`` every TRICKLE_EVERY_S; reconnect when cut off."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        counts["connections"] += 1
        try:
            writer.write(head)
            await writer.drain()
            while not stop.is_set():
                try:
                    # An answer (a 408, a close) ends this connection; silence means it is still held.
                    data = await asyncio.wait_for(reader.read(65536), timeout=TRICKLE_EVERY_S)
                except TimeoutError:
                    writer.write(piece)
                    await writer.drain()
                    continue
                if data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.0 408"):
                    counts["answered_408"] += 1
                if not data:
                    counts["cut_off"] += 1
                break
        except OSError:
            counts["cut_off"] += 1
        finally:
            writer.close()


def attack(port: int, connections: int, stop: asyncio.Event, counts: dict[str, int]) -> asyncio.Future[Any]:
    """Header and body tricklers, ``connections`` of each."""
    header_head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    body_head = (
        b"POST /webhooks/hubspot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000\r\n\r\n["
    )
    tasks = [trickle("127.0.0.1", port, header_head, b"X-Slow: 1\r\n", stop, counts) for _ in range(connections)]
    tasks += [trickle("127.0.0.1", port, body_head, b"0" * 10, stop, counts) for _ in range(connections)]
    return asyncio.gather(*tasks)


def probe_loop(probe: Probe, send: Any, stop: threading.Event) -> None:
    """Send one request at a time until ``stop``; record each latency."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = send()
            ok = response.status_code == 200
        except requests.RequestException:
            ok = False
        elapsed = time.monotonic() - started
        probe.latencies.append(elapsed if ok else max(elapsed, PROBE_TIMEOUT_S))
        probe.failures += not ok
        stop.wait(0.05)


def measure(name: str, base_url: str, port: int, seconds: float, connections: int) -> dict[str, Any]:
    """Run the attack and both probes for ``seconds``; return the figures."""
    counts = {"connections": 0, "cut_off": 0, "answered_408": 0}
    loop = asyncio.new_event_loop()
    stop_attack = asyncio.Event()

    async def run_attack() -> None:
        await attack(port, connections, stop_attack, counts)

    attacker = threading.Thread(target=loop.run_until_complete, args=(run_attack(),), daemon=True)
    attacker.start()
    # Let every slow client connect and start holding what it can before measuring.
    wait_for(lambda: counts["connections"] >= 2 * connections, timeout=30, what="the slow clients to connect")
    time.sleep(TRICKLE_EVERY_S)
    uri = f"{base_url}/webhooks/hubspot"
    sequence = iter(range(10**9))

    def healthz() -> requests.Response:
        return requests.get(f"{base_url}/healthz", headers={"Connection": "close"}, timeout=PROBE_TIMEOUT_S)

    def webhook() -> requests.Response:
        n = next(sequence)
        ts = int(time.time() * 1000)
        body = json.dumps(
            [
                {
                    "eventId": 10_000_000 + n,
                    "subscriptionId": 1,
                    "portalId": 62515,
                    "appId": 1,
                    "occurredAt": ts,
                    "subscriptionType": "deal.creation",
                    "attemptNumber": 0,
                    "objectId": 1_000_000 + n,
                }
            ]
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Connection": "close",
            "X-HubSpot-Signature-v3": signatures.sign_v3(CLIENT_SECRET, "POST", uri, body, ts),
            "X-HubSpot-Request-Timestamp": str(ts),
        }
        return requests.post(uri, data=body, headers=headers, timeout=PROBE_TIMEOUT_S)

    probes = [Probe("healthz"), Probe("webhook")]
    stop_probes = threading.Event()
    threads = [
        threading.Thread(target=probe_loop, args=(probe, send, stop_probes), daemon=True)
        for probe, send in zip(probes, (healthz, webhook), strict=True)
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop_probes.set()
    for thread in threads:
        thread.join(PROBE_TIMEOUT_S + 5)
    loop.call_soon_threadsafe(stop_attack.set)
    attacker.join(TRICKLE_EVERY_S + 5)
    result = {probe.name: probe.summary() for probe in probes}
    result["slow_connections"] = counts
    met = all(result[p.name]["p99"] <= TARGET_P99_S and result[p.name]["failures"] == 0 for p in probes)
    result["met"] = met
    say(
        f"{name}: healthz p99 {result['healthz']['p99']:.3f}s ({result['healthz']['failures']} failed of "
        f"{result['healthz']['n']}), webhook p99 {result['webhook']['p99']:.3f}s ({result['webhook']['failures']} "
        f"failed of {result['webhook']['n']}); slow connections {counts}"
    )
    return result


def start_gunicorn(name: str, config: Path, app: str, env: dict[str, str], workdir: Path) -> tuple[Process, int]:
    """gunicorn serving ``app`` with ``config`` on a free port, once it accepts connections."""
    port = free_port()
    process = Process(
        f"gunicorn-{name}-{port}",
        [python(), "-m", "gunicorn", "-c", str(config), "--bind", f"127.0.0.1:{port}", app],
        env=env,
        log_dir=workdir,
    )
    wait_for(lambda: port_open(port) or not process.alive(), timeout=30, what="gunicorn")
    assert process.alive(), process.output()
    # With reuse_port every worker listens on its own socket: wait for all, or the first would take everything.
    text = config.read_text()
    expected = web_workers() if "reuse_port = True" in text and "reuse_port = False" not in text else 1
    wait_for(lambda: listening_sockets(port) >= expected, timeout=30, what="every gunicorn worker")
    return process, port


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid`` and its children (gunicorn's workers)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
    total = 0
    for p in [str(pid), *children]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def p1(name: str, config: Path, env: dict[str, str], workdir: Path, seconds: int) -> dict[str, float]:
    """P1 of ``make bench`` on this candidate: HubLink's single-association intake over a bare endpoint's.

    Beside the request rates, the server's CPU time per request: on a machine shared with other work the
    rates move with everybody else's load; the CPU a request costs moves less (but moves too).
    """
    from bench.__main__ import wrk

    rates, cpu_us = {}, {}
    for label, app in (("bare", "bench.bare_app:create_app()"), ("hublink", "web:create_app()")):
        process, port = start_gunicorn(name, config, app, env, workdir)
        try:
            before = cpu_seconds(process.pid)
            result = wrk(f"http://127.0.0.1:{port}/api/associations", "single.lua", seconds)
            cpu_us[label] = (cpu_seconds(process.pid) - before) / max(result["requests"], 1) * 1e6
            rates[label] = result["rps"]
        finally:
            process.stop(timeout=30)
    ratio = rates["hublink"] / rates["bare"]
    cpu_ratio = cpu_us["bare"] / cpu_us["hublink"]
    say(f"{name}: P1 {rates['hublink']:,.0f} req/s over bare {rates['bare']:,.0f} = {ratio:.2f}; CPU {cpu_ratio:.2f}")
    return {
        "bare_rps": rates["bare"],
        "hublink_rps": rates["hublink"],
        "ratio": ratio,
        "bare_cpu_us": cpu_us["bare"],
        "hublink_cpu_us": cpu_us["hublink"],
        "cpu_ratio": cpu_ratio,
    }


def run_candidate(
    name: str, workdir: Path, redis_url: str, seconds: float, connections: int, p1_seconds: int
) -> dict[str, Any]:
    """Start gunicorn as the candidate, measure, stop it."""
    config = workdir / f"{name}.conf.py"
    text = (REPO / "gunicorn.conf.py").read_text()
    if "gevent" not in name:
        # gunicorn.conf.py patches the standard library for gevent: the other models run unpatched.
        text = text.replace("\nmonkey.patch_all()\n", "\n")
    config.write_text(f"{text}\n{CANDIDATES[name]}")
    env = {
        "REDIS_URL": redis_url,
        "HUBLINK_API_TOKEN": API_TOKEN,
        "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
        "HUBLINK_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    process, port = start_gunicorn(name, config, "web:create_app()", env, workdir)
    try:
        say(f"{name}: {connections} header and {connections} body tricklers, {seconds:.0f}s of probes")
        result = measure(name, f"http://127.0.0.1:{port}", port, seconds, connections)
    finally:
        process.stop(timeout=30)
    if p1_seconds:
        result["P1"] = p1(name, config, env, workdir, p1_seconds)
    return result


def table(results: dict[str, dict[str, Any]], connections: int) -> str:
    """The results as one Markdown table."""
    rows = [
        f"| server model | `/healthz` p50 / p99 / max (s) | signed webhook p50 / p99 / max (s) | probes failed | "
        f"slow connections made ({2 * connections} held at once) | "
        "P1 req/s HubLink / bare = ratio; server CPU per request, HubLink / bare = bare's share | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        h, w = r["healthz"], r["webhook"]
        rows.append(
            f"| {name} | {h['p50']:.3f} / {h['p99']:.3f} / {h['max']:.3f} | {w['p50']:.3f} / {w['p99']:.3f} / "
            f"{w['max']:.3f} | {h['failures']} of {h['n']} / {w['failures']} of {w['n']} | "
            f"{r['slow_connections']['connections']} (408s: {r['slow_connections']['answered_408']}) | "
            + (
                f"{r['P1']['hublink_rps']:,.0f} / {r['P1']['bare_rps']:,.0f} = {r['P1']['ratio']:.2f}; CPU "
                f"{r['P1']['hublink_cpu_us']:.0f} / {r['P1']['bare_cpu_us']:.0f} us = {r['P1']['cpu_ratio']:.2f} | "
                if "P1" in r
                else "- | "
            )
            + f"{'yes' if r['met'] else 'NO'} |"
        )
    return "\n".join(rows)


def write_readme(results: dict[str, dict[str, Any]], seconds: float, connections: int) -> None:
    """Replace the slow-client section of bench/README.md (kept above ``make bench``'s results)."""
    readme = BENCH / "README.md"
    text = readme.read_text()
    start, end = "<!-- slow-clients -->", "<!-- /slow-clients -->"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"{start}\n### Slow clients: last run {stamp}, {connections} header + {connections} body tricklers, "
        f"{seconds:.0f}s\n\n{table(results, connections)}\n{end}"
    )
    if start in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        head, marker, tail = text.partition("<!-- results -->")
        text = head.rstrip() + "\n\n" + section + "\n\n" + marker + tail
    readme.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Measure each candidate in turn."""
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients", description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--connections", type=int, default=100, help="header tricklers, and as many body tricklers")
    parser.add_argument("--candidates", default="gevent", help=f"comma-separated, of {','.join(CANDIDATES)}")
    parser.add_argument("--p1", type=int, default=0, help="also run P1 for this many seconds per candidate")
    parser.add_argument("--no-readme", action="store_true", help="print only; keep bench/README.md")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="hublink-slow-"))
    redis = RedisServer(workdir / "redis").start()
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in args.candidates.split(","):
            results[name] = run_candidate(name, workdir, redis.url, args.seconds, args.connections, args.p1)
    finally:
        redis.stop()
    print("\n" + table(results, args.connections) + "\n", flush=True)
    if not args.no_readme:
        write_readme(results, args.seconds, args.connections)
    shutil.rmtree(workdir, ignore_errors=True)
    # The other candidates are there to be compared (sync and gthread fail by design): the exit status
    # says whether the model gunicorn.conf.py ships met the targets.
    shipped = results.get(SHIPPED)
    return 0 if shipped is None or shipped["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
