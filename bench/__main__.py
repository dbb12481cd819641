"""``make bench`` / ``make bench-quick``: P1-P6 measured beside their baselines in one run, on real processes.

Starts a private Redis (AOF everysec, as ``make run``), the simulator, gunicorn with the Procfile's config and
workers; drives load with wrk (and a paced Python sender for the latency run); prints one table and rewrites
the results section of ``bench/README.md`` with plots. Every figure is a ratio against a baseline measured
in the same run, because absolute figures drift between machines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis as redis_lib
import requests

from bench import capacity, footprint, say
from bench.otlp_sink import OtlpSink
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
API_TOKEN = "bench-api-token"
HUBSPOT_TOKEN = "bench-hubspot-token"
CLIENT_SECRET = "bench-client-secret"
RULES = """\
rules:
  - name: deal-created
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "contactId"}
"""


@dataclass
class Bench:
    """One benchmark run: its processes, its durations, and what it measured."""

    quick: bool
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    redis: RedisServer | None = None
    sim_url: str = ""
    sim_process: Process | None = None

    # --- processes ---

    @property
    def env(self) -> dict[str, str]:
        """The environment of HubLink's processes."""
        assert self.redis is not None
        return {
            "REDIS_URL": self.redis.url,
            "HUBLINK_API_TOKEN": API_TOKEN,
            "HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN,
            "HUBSPOT_BASE_URL": self.sim_url,
            "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
            "HUBLINK_RULES_FILE": str(self.workdir / "rules.yaml"),
            "HUBLINK_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "HUBSPOT_RATE_LIMIT": "100000/10s",
        }

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        """Start a process and remember it."""
        process = Process(name, argv, env={**self.env, **(env or {})}, log_dir=self.workdir)
        self.processes.append(process)
        return process

    def stop(self, process: Process) -> None:
        """Stop one process."""
        process.stop(timeout=20)
        self.processes.remove(process)

    def gunicorn(self, app: str, **env: str) -> tuple[Process, str]:
        """gunicorn with the Procfile's config file serving ``app``."""
        port = free_port()
        process = self.start(
            f"gunicorn-{port}",
            [python(), "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", app],
            env,
        )
        wait_for(lambda: port_open(port) or not process.alive(), timeout=30, what="gunicorn")
        assert process.alive(), process.output()
        # Every worker listens on its own socket (reuse_port): measuring before all are up would load one.
        wait_for(lambda: listening_sockets(port) >= web_workers(), timeout=30, what="every gunicorn worker")
        return process, f"http://127.0.0.1:{port}"

    def workers(self, n: int, **env: str) -> list[Process]:
        """``python -m worker`` x n, registered with RQ."""
        started = [self.start(f"worker-{i}-{free_port()}", [python(), "-m", "worker"], env) for i in range(n)]
        client = self.client()
        wait_for(lambda: client.scard("rq:workers") >= n, timeout=30, what=f"{n} workers")
        return started

    def sim(self, *args: str) -> Process:
        """The simulator on a fresh port."""
        port = free_port()
        process = self.start(
            f"sim-{port}", [python(), "-m", "hubspot_sim", "--port", str(port), "--token", HUBSPOT_TOKEN, *args]
        )
        self.sim_url = f"http://127.0.0.1:{port}"
        self.sim_process = process
        wait_for(lambda: port_open(port), timeout=15, what="the simulator")
        return process

    def client(self) -> redis_lib.Redis:
        """A Redis client."""
        assert self.redis is not None
        return redis_lib.Redis.from_url(self.redis.url)

    def reset(self) -> None:
        """Empty Redis and the simulator between measurements (asynchronously: millions of keys take seconds)."""
        client = self.client()
        client.flushall(asynchronous=True)
        # Measured from an empty Redis: wait until the background thread has freed what was flushed.
        wait_for(
            lambda: int(client.info("memory").get("lazyfree_pending_objects", 0)) == 0,
            timeout=120,
            interval=0.1,
            what="the flushed keys to be freed",
        )
        requests.post(f"{self.sim_url}/_sim/reset", timeout=10)

    def sim_get(self, path: str) -> Any:
        """The simulator's control API."""
        return requests.get(f"{self.sim_url}{path}", timeout=30).json()

    def shutdown(self) -> None:
        """Stop everything."""
        for process in reversed(self.processes):
            process.stop(timeout=20)
        self.processes.clear()
        if self.redis:
            self.redis.stop()


def wrk(url: str, script: str, seconds: int, *args: str) -> dict[str, float]:
    """Run wrk (2 threads, 16 connections) and return requests/s and the count of non-2xx answers."""
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "-s", str(BENCH / "wrk" / script), url, "--", *args],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rate, "requests": total, "non2xx": int(bad.group(1)) if bad else 0}


def ensure_wrk() -> None:
    """Install wrk through the system package manager when it is missing."""
    if shutil.which("wrk"):
        return
    say("wrk not found: installing it with apt-get")
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)


# --- the measurements ---


def p1_single_intake(b: Bench, seconds: int) -> None:
    """P1: single-association intake beside a bare Flask endpoint, same gunicorn config."""
    say(f"P1: bare Flask endpoint, {seconds}s of wrk")
    bare, bare_url = b.gunicorn("bench.bare_app:create_app()")
    bare_result = wrk(f"{bare_url}/api/associations", "single.lua", seconds)
    b.stop(bare)
    say(f"P1: calibration, bare Flask plus one raw RPUSH, {seconds}s of wrk")
    rpush, rpush_url = b.gunicorn("bench.bare_app:create_rpush_app()")
    rpush_result = wrk(f"{rpush_url}/api/associations", "single.lua", seconds)
    b.stop(rpush)
    say(f"P1: HubLink intake, {seconds}s of wrk")
    web, url = b.gunicorn("web:create_app()")
    ours = wrk(f"{url}/api/associations", "single.lua", seconds)
    b.stop(web)
    # Every 202 is an inbox entry (the workers, not running here, would put it in its lane).
    pending = b.client().xlen("hl:inbox")
    b.reset()
    # Context: the same with tracing on, every request's spans exported over OTLP/HTTP to a local sink.
    say(f"P1: HubLink intake, tracing on (OTLP/HTTP to a local sink), {seconds}s of wrk")
    sink = OtlpSink()
    web, url = b.gunicorn("web:create_app()", OTEL_EXPORTER_OTLP_ENDPOINT=sink.url)
    traced = wrk(f"{url}/api/associations", "single.lua", seconds)
    b.stop(web)
    sink.stop()
    b.results["P1"] = {
        "bare_rps": bare_result["rps"],
        "hublink_rps": ours["rps"],
        "rpush_rps": rpush_result["rps"],
        "ratio": ours["rps"] / bare_result["rps"],
        "non2xx": ours["non2xx"],
        "stored": pending,
        "requests": ours["requests"],
        "traced_rps": traced["rps"],
        "traced_non2xx": traced["non2xx"],
        "traced_exports": sink.requests,
    }
    b.reset()


def p2_batches(b: Bench, seconds: int) -> None:
    """P2: events/s for signed 100-event HubSpot batches, against the bare endpoint's req/s.

    Intake stores each verified batch in the inbox; then two workers expand the inbox (the rules run there)
    and the time they take is reported beside it, so that the intake's figure is not a promise the workers
    cannot keep.
    """
    web, url = b.gunicorn("web:create_app()")
    # Every request must carry new events, so that the expansion does real work: enough distinct batches
    # for 4,000 a second (twice the fastest intake measured); a run that still wraps around is reported as
    # not met.
    count = 4000 * seconds
    say(f"P2: signing {count} distinct 100-event batches")
    path = b.workdir / "batches.tsv"
    ts = int(time.time() * 1000)
    uri = f"{url}/webhooks/hubspot"
    with path.open("w") as handle:
        for n in range(count):
            events = [
                {
                    "eventId": n * 100 + i,
                    "subscriptionId": 1,
                    "portalId": 62515,
                    "appId": 1,
                    "occurredAt": ts,
                    "subscriptionType": "deal.creation",
                    "attemptNumber": 0,
                    "objectId": 1_000_000 + n * 100 + i,
                    "changeSource": "CRM",
                    "contactId": 5_000_000 + i,
                }
                for i in range(100)
            ]
            body = json.dumps(events, separators=(",", ":")).encode()
            signature = signatures.sign_v3(CLIENT_SECRET, "POST", uri, body, ts)
            handle.write(f"{ts}\t{signature}\t{body.decode()}\n")
    say(f"P2: HubLink webhook intake, {seconds}s of wrk")
    ours = wrk(uri, "batches.lua", seconds, str(path))
    b.stop(web)
    path.unlink()
    client = b.client()
    accepted = int(client.xlen("hl:inbox"))
    say(f"P2: 2 workers expanding {accepted} inbox entries ({accepted * 100:,} events)")
    started = time.monotonic()
    workers = b.workers(2)
    wait_for(lambda: client.xlen("hl:inbox") == 0, timeout=600, interval=0.05, what="the inbox to empty")
    expand_s = time.monotonic() - started
    for worker in workers:
        b.stop(worker)
    counted = client.hget("hl:m:events_received", "source=hubspot,outcome=accepted")
    bare = b.results["P1"]["bare_rps"]
    events = ours["rps"] * 100
    b.results["P2"] = {
        "batches_rps": ours["rps"],
        "events_per_s": events,
        "bare_rps": bare,
        "ratio": events / bare,
        "non2xx": ours["non2xx"],
        "wrapped": ours["requests"] > count,
        "requests": ours["requests"],
        "inbox": accepted,
        # Every event of every request became work: none lost, none taken for a duplicate.
        "stored": int(counted or 0),
        "expand_events_per_s": accepted * 100 / expand_s if expand_s > 0 else 0.0,
    }
    b.reset()


def enqueue_backlog(b: Bench, n: int) -> None:
    """Put n associations in one lane the way intake does (100 per round-trip)."""
    from hublink.domain.associations import AssociationRequest
    from hublink.lanes import EventGroup, LaneStore
    from hublink.store.keys import Keys

    queueing = LaneStore(b.client(), Keys(), lease_s=30, dedup_window_s=60)
    now = time.time()
    for start in range(0, n, 100):
        batch = [
            AssociationRequest.create(
                from_object_type="deals",
                from_object_id=str(1_000_000 + i),
                to_object_type="contacts",
                to_object_id=str(2_000_000 + i),
                received_at=now,
            )
            for i in range(start, min(start + 100, n))
        ]
        queueing.enqueue([EventGroup(batch)])


def drain(b: Bench, n: int, workers: int, timeout: float, **env: str) -> tuple[float, list[tuple[float, int]]]:
    """Start workers, time until the simulator holds n associations; sample progress for the plot."""
    started = time.monotonic()
    procs = b.workers(workers, **env)
    samples: list[tuple[float, int]] = []

    def done() -> bool:
        count = (
            len(b.sim_get("/_sim/associations")["associations"])
            if n <= 5000
            else b.sim_get("/_sim/requests")["inputs_total"]
        )
        samples.append((time.monotonic() - started, count))
        return count >= n

    wait_for(done, timeout=timeout, interval=0.25, what=f"{n} associations in the simulator")
    elapsed = time.monotonic() - started
    for process in procs:
        b.stop(process)
    return elapsed, samples


def plain_rq_rate(b: Bench, n: int, workers: int) -> float:
    """The baseline: one plain RQ job per association on RQ's fork Worker; associations per second."""
    from rq import Queue

    queue = Queue("plain", connection=b.client(), serializer="json")
    jobs = [
        Queue.prepare_data(
            "bench.plain_jobs.associate_one",
            args=["deals", str(3_000_000 + i), "contacts", str(4_000_000 + i)],
            result_ttl=0,
        )
        for i in range(n)
    ]
    for start in range(0, n, 1000):
        queue.enqueue_many(jobs[start : start + 1000])
    started = time.monotonic()
    procs = [
        b.start(
            f"rq-{i}-{free_port()}",
            [python(), "-m", "rq.cli", "worker", "-S", "json", "--url", b.env["REDIS_URL"], "plain"],
        )
        for i in range(workers)
    ]
    wait_for(
        lambda: b.sim_get("/_sim/requests")["inputs_total"] >= n,
        timeout=600,
        interval=0.25,
        what="the plain RQ backlog",
    )
    elapsed = time.monotonic() - started
    for process in procs:
        b.stop(process)
    return n / elapsed


def p3_p4_drain(b: Bench, n: int, baseline_n: int) -> None:
    """P3: drain rate of an n-association backlog (0 and 100 ms HubSpot latency) beside plain RQ; P4 batch fill."""
    out: dict[str, Any] = {}
    for latency in (0, 100):
        requests.put(f"{b.sim_url}/_sim/config", json={"latency_ms": latency}, timeout=5)
        say(f"P3: baseline, {baseline_n} plain RQ jobs on 2 fork workers, {latency} ms latency")
        base = plain_rq_rate(b, baseline_n, 2)
        b.reset()
        requests.put(f"{b.sim_url}/_sim/config", json={"latency_ms": latency}, timeout=5)
        say(f"P3: HubLink, {n} associations, 2 workers, {latency} ms latency")
        enqueue_backlog(b, n)
        elapsed, samples = drain(b, n, 2, timeout=300)
        seen = b.sim_get("/_sim/requests")
        calls = seen["by_endpoint"].get("batch_associate_default", 0) + seen["by_endpoint"].get("associate_default", 0)
        out[str(latency)] = {
            "baseline_per_s": base,
            "hublink_per_s": n / elapsed,
            "ratio": (n / elapsed) / base,
            "seconds": elapsed,
            "calls": calls,
            "per_call": seen["inputs_total"] / max(calls, 1),
            "samples": samples,
        }
        b.reset()
    requests.put(f"{b.sim_url}/_sim/config", json={"latency_ms": 0}, timeout=5)
    b.results["P3"] = out
    b.results["P4"] = {"per_call": min(v["per_call"] for v in out.values())}


def p5_rate_limit(b: Bench, seconds: int) -> None:
    """P5: simulator limiting 100/10s, 4 workers, a backlog that outlasts the run: share used, 429s."""
    say(f"P5: 100/10s limit, 4 workers, batch size 1, {seconds}s")
    requests.put(f"{b.sim_url}/_sim/config", json={"rate_limit": "100/10s"}, timeout=5)
    # Several lanes so that all four workers really compete for the one budget.
    from hublink.domain.associations import AssociationRequest
    from hublink.lanes import EventGroup, LaneStore
    from hublink.store.keys import Keys

    queueing = LaneStore(b.client(), Keys(), lease_s=30, dedup_window_s=60)
    total = 100 * (seconds // 10 + 2)
    items = [
        AssociationRequest.create(
            from_object_type="deals",
            from_object_id=str(10_000 + i),
            to_object_type=("contacts", "companies", "tickets", "line_items")[i % 4],
            to_object_id="7",
            received_at=time.time(),
        )
        for i in range(total)
    ]
    for start in range(0, total, 100):
        queueing.enqueue([EventGroup(items[start : start + 100])])
    procs = b.workers(4, HUBSPOT_RATE_LIMIT="100/10s", HUBSPOT_BATCH_SIZE="1")
    wait_for(lambda: b.sim_get("/_sim/requests")["total"] > 0, timeout=30, what="the first request")
    first = b.sim_get("/_sim/requests")["first_at"]
    deadline = first + seconds
    while time.time() < deadline:
        time.sleep(0.5)
    recent = [r for r in b.sim_get("/_sim/requests")["recent"]]  # last 200 only: count from totals instead
    del recent
    seen = b.sim_get("/_sim/requests")
    for process in procs:
        b.stop(process)
    # Count the 200s inside [first, first + seconds): the sim's list of associations carries receive times.
    received = [a["received_at"] for a in b.sim_get("/_sim/associations")["associations"]]
    inside = sum(1 for t in received if first <= t < first + seconds)
    allowed = 100 * seconds / 10
    b.results["P5"] = {
        "used": inside,
        "allowed": allowed,
        "share": inside / allowed,
        "429": seen["by_status"].get("429", 0),
        "seconds": seconds,
    }
    requests.put(f"{b.sim_url}/_sim/config", json={"rate_limit": None}, timeout=5)
    b.reset()


def p6_latency(b: Bench, seconds: int, rate: float = 50.0) -> None:
    """P6: intake's 202 to the simulator receiving the association, at 50 events/s."""
    say(f"P6: latency at {rate:.0f} events/s for {seconds}s, 2 workers")
    procs = b.workers(2)
    web, url = b.gunicorn("web:create_app()")
    sent: dict[str, float] = {}
    session = requests.Session()
    interval = 1 / rate
    start = time.monotonic()
    n = int(seconds * rate)
    for i in range(n):
        target = start + i * interval
        while time.monotonic() < target:
            time.sleep(max(0.0, min(target - time.monotonic(), 0.005)))
        from_id = str(7_000_000 + i)
        response = session.post(
            f"{url}/api/associations",
            json={
                "associations": [
                    {"fromObjectType": "deals", "fromObjectId": from_id, "toObjectType": "contacts", "toObjectId": "1"}
                ]
            },
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        if response.status_code == 202:
            sent[from_id] = time.time()
    wait_for(
        lambda: len(b.sim_get("/_sim/associations")["associations"]) >= len(sent), timeout=60, what="every association"
    )
    received = {a["fromObjectId"]: a["received_at"] for a in b.sim_get("/_sim/associations")["associations"]}
    latencies = sorted(received[k] - t for k, t in sent.items() if k in received)
    b.stop(web)
    for process in procs:
        b.stop(process)

    def pct(p: float) -> float:
        return latencies[min(int(len(latencies) * p), len(latencies) - 1)]

    b.results["P6"] = {
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "n": len(latencies),
        "mean": statistics.fmean(latencies),
        "latencies": latencies,
    }
    b.reset()


def soak(b: Bench, seconds: int, rate: float = 50.0) -> None:
    """Memory: web and worker RSS over a soak at moderate load; growth must stay under 10 %."""
    say(f"soak: {seconds}s at {rate:.0f} associations/s")
    procs = b.workers(2)
    web, url = b.gunicorn("web:create_app()")

    def rss(pid: int) -> int:
        try:
            children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        except OSError:
            children = []
        total = 0
        for p in [str(pid), *children]:
            try:
                status = Path(f"/proc/{p}/status").read_text()
            except OSError:
                continue
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        return total

    session = requests.Session()
    samples: list[tuple[float, int, int]] = []
    start = time.monotonic()
    i = 0
    next_sample = start + 30
    while time.monotonic() - start < seconds:
        session.post(
            f"{url}/api/associations",
            json={
                "associations": [
                    {
                        "fromObjectType": "deals",
                        "fromObjectId": str(9_000_000 + i),
                        "toObjectType": "contacts",
                        "toObjectId": "1",
                    }
                ]
            },
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        i += 1
        if time.monotonic() >= next_sample:
            samples.append((time.monotonic() - start, rss(web.pid), sum(rss(p.pid) for p in procs)))
            say(
                f"soak: {samples[-1][0]:.0f}s web {samples[-1][1] / 1024:.1f} MiB, "
                f"workers {samples[-1][2] / 1024:.1f} MiB"
            )
            next_sample += 30
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
    b.stop(web)
    for process in procs:
        b.stop(process)
    # Growth is judged from the first sample (after warm-up) to the mean of the last three.
    first = samples[0]
    last = samples[-3:]
    b.results["soak"] = {
        "seconds": seconds,
        "sent": i,
        "web_first_kib": first[1],
        "web_last_kib": statistics.fmean(s[1] for s in last),
        "workers_first_kib": first[2],
        "workers_last_kib": statistics.fmean(s[2] for s in last),
    }
    b.results["soak"]["web_growth"] = b.results["soak"]["web_last_kib"] / first[1] - 1
    b.results["soak"]["workers_growth"] = b.results["soak"]["workers_last_kib"] / first[2] - 1
    b.reset()


# --- reporting ---


def table(r: dict[str, Any]) -> str:
    """The results as one Markdown table."""
    rows = ["| figure | HubLink | baseline | ratio / value | target | met |", "|---|---|---|---|---|---|"]

    def row(name: str, ours: str, base: str, value: str, target: str, ok: bool) -> None:
        rows.append(f"| {name} | {ours} | {base} | {value} | {target} | {'yes' if ok else 'NO'} |")

    if "P1" in r:
        p = r["P1"]
        row(
            "P1 single-association intake (req/s)",
            f"{p['hublink_rps']:,.0f}",
            f"{p['bare_rps']:,.0f} bare Flask",
            f"{p['ratio']:.2f}",
            ">= 0.6",
            p["ratio"] >= 0.6 and p["non2xx"] == 0 and p.get("stored", 0) >= p.get("requests", 0),
        )
        if "rpush_rps" in p:
            # Context, not a target: what one raw Redis round-trip per request costs on this machine.
            row(
                "P1 calibration: bare Flask + one raw RPUSH (req/s)",
                f"{p['hublink_rps']:,.0f}",
                f"{p['rpush_rps']:,.0f}",
                f"{p['hublink_rps'] / p['rpush_rps']:.2f} (RPUSH alone: {p['rpush_rps'] / p['bare_rps']:.2f} of bare)",
                "context",
                True,
            )
        if "traced_rps" in p:
            # Context: what tracing on costs (every request's spans exported over OTLP/HTTP to a local sink).
            row(
                "P1 with tracing on (req/s)",
                f"{p['traced_rps']:,.0f}",
                f"{p['hublink_rps']:,.0f} tracing off",
                f"{p['traced_rps'] / p['hublink_rps']:.2f} ({p['traced_exports']:,} exports)",
                "context",
                p["traced_non2xx"] == 0 and p["traced_exports"] > 0,
            )
    if "P2" in r:
        p = r["P2"]
        row(
            "P2 signed 100-event batches (events/s)",
            f"{p['events_per_s']:,.0f} ({p['batches_rps']:,.0f} req/s)",
            f"{p['bare_rps']:,.0f} bare req/s",
            f"{p['ratio']:.1f}",
            ">= 10",
            # Met only when every request was new work and every event of it became work in a lane.
            p["ratio"] >= 10
            and p["non2xx"] == 0
            and not p.get("wrapped")
            and p.get("stored", 0) >= 100 * p.get("requests", 0),
        )
        if "expand_events_per_s" in p:
            # Context: the rules run in the workers; this is how fast two of them turn the inbox into lane work.
            row(
                "P2 context: inbox expanded by 2 workers (events/s)",
                f"{p['expand_events_per_s']:,.0f}",
                f"{p['events_per_s']:,.0f} intake",
                f"{p['expand_events_per_s'] / p['events_per_s']:.2f} of intake" if p["events_per_s"] else "-",
                "context",
                p.get("stored", 0) >= 100 * p.get("requests", 0),
            )
    for latency, p in r.get("P3", {}).items():
        row(
            f"P3 drain, {latency} ms HubSpot latency (assoc/s)",
            f"{p['hublink_per_s']:,.0f}",
            f"{p['baseline_per_s']:,.1f} plain RQ fork",
            f"{p['ratio']:.0f}",
            ">= 25",
            p["ratio"] >= 25,
        )
    if "P4" in r:
        row(
            "P4 associations per HubSpot request",
            f"{r['P4']['per_call']:.1f}",
            "1 (one request each)",
            f"{r['P4']['per_call']:.1f}",
            ">= 50",
            r["P4"]["per_call"] >= 50,
        )
    if "P5" in r:
        p = r["P5"]
        row(
            "P5 share of 100/10s used, 4 workers",
            f"{p['used']:.0f} in {p['seconds']}s",
            f"{p['allowed']:.0f} allowed",
            f"{p['share']:.2f}; 429s: {p['429']}",
            ">= 0.9; 0",
            p["share"] >= 0.9 and p["429"] == 0,
        )
    if "P6" in r:
        p = r["P6"]
        row(
            "P6 e2e latency at 50 events/s (s)",
            f"p50 {p['p50']:.3f} / p95 {p['p95']:.3f} / p99 {p['p99']:.3f}",
            f"n = {p['n']}",
            f"p99 {p['p99']:.3f}",
            "p99 <= 1",
            p["p99"] <= 1.0,
        )
    for figure in capacity.rows(r):
        row(*figure)
    for figure in footprint.rows(r):
        row(*figure)
    if "soak" in r:
        p = r["soak"]
        row(
            f"Memory over a {p['seconds'] / 60:.0f}-minute soak (RSS growth)",
            f"web {p['web_growth']:+.1%}, workers {p['workers_growth']:+.1%}",
            f"web {p['web_first_kib'] / 1024:.0f} MiB, workers {p['workers_first_kib'] / 1024:.0f} MiB at start",
            "",
            "< 10 %",
            p["web_growth"] < 0.1 and p["workers_growth"] < 0.1,
        )
    return "\n".join(rows)


def plots(r: dict[str, Any], out: Path) -> list[str]:
    """PNG plots of the drain over time and of the latency distribution; returns the file names."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib not installed: no plots")
        return []
    names = []
    if "P3" in r:
        fig, ax = plt.subplots(figsize=(7, 4))
        for latency, p in r["P3"].items():
            xs, ys = zip(*p["samples"], strict=True)
            ax.plot(xs, ys, label=f"HubLink, {latency} ms latency")
        ax.set_xlabel("seconds since workers started")
        ax.set_ylabel("associations in the simulator")
        ax.set_title("P3: draining the backlog")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "drain.png", dpi=100)
        names.append("drain.png")
    if "P6" in r:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist([x * 1000 for x in r["P6"]["latencies"]], bins=40)
        for q in ("p50", "p95", "p99"):
            ax.axvline(r["P6"][q] * 1000, linestyle="--", label=f"{q} {r['P6'][q] * 1000:.0f} ms")
        ax.set_xlabel("ms from intake's 202 to the simulator receiving the association")
        ax.set_ylabel("associations")
        ax.set_title("P6: end-to-end latency at 50 events/s")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=100)
        names.append("latency.png")
    return names + capacity.plot(r, out, plt)


def write_readme(r: dict[str, Any], quick: bool, images: list[str], carried: list[str] | None = None) -> None:
    """Replace the results section of bench/README.md; ``carried`` names figures kept from earlier runs."""
    readme = BENCH / "README.md"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    marker = "<!-- results -->"
    head = text.split(marker)[0].rstrip() + "\n\n"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"{marker}\n## Last run: {stamp}, {os.cpu_count()} cores, {'quick' if quick else 'full'}\n\n"
        + (f"Not measured in this run, kept from earlier runs: {', '.join(carried)}.\n\n" if carried else "")
        + f"{table(r)}\n\n"
        + "".join(f"![{n}]({n})\n\n" for n in images)
    )
    readme.write_text(head + body)
    (BENCH / "last-results.json").write_text(
        json.dumps(
            {
                k: {kk: vv for kk, vv in v.items() if kk not in ("samples", "latencies")} if isinstance(v, dict) else v
                for k, v in r.items()
            },
            indent=2,
            default=str,
        )
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 3 minutes)")
    parser.add_argument(
        "--only", default="P1,P2,P3,P5,P6,P7,P8,P9", help="comma-separated subset, e.g. P1,P2 or P7,P8,P9"
    )
    parser.add_argument("--soak", type=int, default=0, help="run the memory soak for this many seconds instead")
    parser.add_argument("--no-readme", action="store_true", help="print only; keep bench/README.md")
    args = parser.parse_args(argv)
    ensure_wrk()
    only = set(args.only.split(","))
    quick = args.quick
    workdir = Path(tempfile.mkdtemp(prefix="hublink-bench-"))
    (workdir / "rules.yaml").write_text(RULES)
    b = Bench(quick, workdir)
    started = time.monotonic()
    try:
        b.redis = RedisServer(workdir / "redis", appendonly=True, appendfsync="everysec").start()
        b.sim()
        steps: list[tuple[str, Callable[[], None]]] = []
        if args.soak:
            steps.append(("soak", lambda: soak(b, args.soak)))
        else:
            if "P1" in only or "P2" in only:
                steps.append(("P1", lambda: p1_single_intake(b, 3 if quick else 10)))
            if "P2" in only:
                steps.append(("P2", lambda: p2_batches(b, 3 if quick else 5)))
            if "P3" in only:
                steps.append(("P3", lambda: p3_p4_drain(b, 5000 if quick else 20000, 200 if quick else 600)))
            if "P5" in only:
                steps.append(("P5", lambda: p5_rate_limit(b, 20 if quick else 60)))
            if "P6" in only:
                steps.append(("P6", lambda: p6_latency(b, 10 if quick else 30)))
            if "P7" in only:
                steps.append(
                    (
                        "P7",
                        lambda: capacity.p7_drain_at_limit(
                            b,
                            # Enough that 200,000 or more still wait when the window closes (the issue's
                            # "under a 200,000 backlog"); the warm-up outlasts the sliding log's first burst.
                            320_000 if quick else 800_000,
                            4,
                            4,
                            warmup_s=12,
                            limits=1 if quick else 2,
                        ),
                    )
                )
            if "P8" in only:
                sizes = [50_000] if quick else [50_000, 1_000_000]
                steps.append(("P8", lambda: capacity.p8_bytes_per_pending(b, sizes)))
                # As a user pays it: through the API and signed webhooks, history and traces on. The webhook
                # row at 1,000,000 takes about 20 minutes more: `make bench-footprint` runs every row.
                steps.append(
                    ("P8 e2e", lambda: footprint.p8_end_to_end(b, sizes, ["api", "webhook"], webhook_sizes=[50_000]))
                )
            if "P9" in only:
                steps.append(
                    ("P9", lambda: capacity.p9_backfill(b, 20_000 if quick else 100_000, 0 if quick else 10_000))
                )
        for name, step in steps:
            step()
            say(f"{name} done ({time.monotonic() - started:.0f}s elapsed)")
    finally:
        b.shutdown()
    print("\n" + table(b.results) + "\n", flush=True)
    if not args.no_readme:
        plots(b.results, BENCH)
        images = [name for name in ("drain.png", "latency.png", "limit.png") if (BENCH / name).exists()]
        # A run measures some figures (a soak, or --only a subset); the table keeps the others' last figures
        # and says which they are. "P9 margin 0" belongs to P9: a figure is its first word.
        last = BENCH / "last-results.json"
        previous = json.loads(last.read_text()) if last.exists() else {}
        measured = {k.split()[0] for k in b.results}
        carried = [k for k in previous if k.split()[0] not in measured]
        b.results = {**{k: previous[k] for k in carried}, **b.results}
        write_readme(b.results, quick, images, carried)
    shutil.rmtree(workdir, ignore_errors=True)
    say(f"finished in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
