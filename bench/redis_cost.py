"""``make bench-redis``: what one association costs Redis, and so how far one Redis primary carries HubLink.

For each way work arrives (a direct-API request with 1 association, one with 100, a signed 100-event
HubSpot webhook whose rule makes one association per event), three stages are measured apart on real
processes: intake (gunicorn), expansion (the workers' expander code, run here in-process so that drains do
not mix in) and drain (two ``python -m worker`` processes against the simulator, from the moment they
start until the simulator holds every association). For each stage, Redis itself reports the cost as
deltas of ``INFO``: commands (``commandstats``), bytes in and out (``total_net_input_bytes`` /
``total_net_output_bytes``) and server CPU (``used_cpu_sys + used_cpu_user``). The INFO calls' own cost is
measured and subtracted. Then the capacity model: the associations per second one primary can serve from
its CPU per association, the portals that is at HubSpot's limits, and how many web and worker processes
it takes to get there (from ``bench/last-results.json``'s P1 and P3, the same machine's last ``make bench``).

``python -m bench.redis_cost [--quick] [--no-readme]`` prints the table and rewrites the section of
``bench/README.md`` between ``<!-- redis-cost -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis as redis_lib
import requests

from bench.__main__ import API_TOKEN, BENCH, CLIENT_SECRET, RULES, Bench, say
from hublink.config.rules_file import RulesFile
from hublink.domain import signatures
from hublink.intake.expansion import Expansion
from hublink.intake.inbox import Inbox
from hublink.lanes import LaneStore
from hublink.ops.metrics import Metrics
from hublink.store.keys import Keys
from tests.support.processes import RedisServer, wait_for
from worker.loops import Expander

#: Share of one core a Redis primary can spend before latency suffers (headroom for spikes, AOF, replicas).
USABLE_CPU = 0.8
#: HubSpot's limits per app and portal: requests per second (100 or 190 per 10 s) x associations per batch.
HUBSPOT_LIMITS = {"100/10s": 10.0, "190/10s": 19.0}
BATCH = 100
MARKER = "<!-- redis-cost -->"


@dataclass(frozen=True)
class Snapshot:
    """What Redis reported at one moment: commands by name, bytes in and out, CPU seconds."""

    commands: dict[str, int]
    bytes_in: int
    bytes_out: int
    cpu_s: float

    @classmethod
    def take(cls, client: redis_lib.Redis) -> Snapshot:
        """One INFO (everything) from ``client``."""
        info: dict[str, Any] = client.info("all")
        commands = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_")}
        return cls(
            commands,
            int(info["total_net_input_bytes"]),
            int(info["total_net_output_bytes"]),
            float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        )


@dataclass(frozen=True)
class Cost:
    """The difference between two snapshots, less the INFO calls that took them."""

    commands: dict[str, int]
    bytes_in: float
    bytes_out: float
    cpu_s: float

    @classmethod
    def between(cls, before: Snapshot, after: Snapshot, info_overhead: Cost | None = None) -> Cost:
        """``after - before`` (minus one INFO's own bytes and CPU when ``info_overhead`` is given)."""
        commands = {
            name: after.commands.get(name, 0) - before.commands.get(name, 0)
            for name in after.commands
            if name != "info" and after.commands.get(name, 0) - before.commands.get(name, 0) > 0
        }
        over = info_overhead or Cost({}, 0, 0, 0.0)
        return cls(
            commands,
            max(0.0, after.bytes_in - before.bytes_in - over.bytes_in),
            max(0.0, after.bytes_out - before.bytes_out - over.bytes_out),
            max(0.0, after.cpu_s - before.cpu_s - over.cpu_s),
        )

    @property
    def total_commands(self) -> int:
        """Every command counted (INFO excluded)."""
        return sum(self.commands.values())

    def per(self, n: int) -> dict[str, float]:
        """This cost divided over ``n`` units (requests or associations): commands, bytes, CPU microseconds."""
        return {
            "commands": self.total_commands / n,
            "bytes_in": self.bytes_in / n,
            "bytes_out": self.bytes_out / n,
            "cpu_us": self.cpu_s * 1e6 / n,
        }

    def top(self, k: int = 4) -> str:
        """The ``k`` most called commands, as ``name calls``."""
        ranked = sorted(self.commands.items(), key=lambda item: -item[1])[:k]
        return ", ".join(f"{name} {calls}" for name, calls in ranked)


def measure(client: redis_lib.Redis, overhead: Cost, action: Callable[[], None]) -> Cost:
    """The Redis cost of ``action``: less the INFO calls, and less what the idle server spends meanwhile."""
    before = Snapshot.take(client)
    started = time.monotonic()
    action()
    cost = Cost.between(before, Snapshot.take(client), overhead)
    idle_s = IDLE_CPU_PER_S[0] * (time.monotonic() - started)
    return Cost(cost.commands, cost.bytes_in, cost.bytes_out, max(0.0, cost.cpu_s - idle_s))


#: The idle server's own CPU per second (its cron, the AOF fsync thread), set by :func:`idle_cpu`.
IDLE_CPU_PER_S = [0.0]


def idle_cpu(client: redis_lib.Redis, seconds: float = 3.0) -> float:
    """CPU seconds per second the server spends with no client asking anything (measured, then subtracted)."""
    before = Snapshot.take(client)
    time.sleep(seconds)  # a bench measuring idleness, not a test waiting for a condition
    return (Snapshot.take(client).cpu_s - before.cpu_s) / seconds


def info_overhead(client: redis_lib.Redis) -> Cost:
    """What one INFO snapshot itself costs (median of a few back-to-back pairs)."""
    pairs = []
    for _ in range(7):
        first = Snapshot.take(client)
        pairs.append(Cost.between(first, Snapshot.take(client)))
    return Cost(
        {},
        statistics.median(c.bytes_in for c in pairs),
        statistics.median(c.bytes_out for c in pairs),
        statistics.median(c.cpu_s for c in pairs),
    )


def send(url: str, bodies: list[tuple[dict[str, str], bytes]], threads: int = 4) -> None:
    """POST every (headers, body) to ``url`` from a few threads; every answer must be 2xx."""
    failures: list[str] = []

    def run(part: list[tuple[dict[str, str], bytes]]) -> None:
        with requests.Session() as session:
            for headers, body in part:
                response = session.post(url, data=body, headers=headers, timeout=30)
                if response.status_code >= 300:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    workers = [threading.Thread(target=run, args=(bodies[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise SystemExit(f"bench-redis: {len(failures)} requests refused, e.g. {failures[0]}")


def api_bodies(requests_n: int, per_request: int, offset: int) -> list[tuple[dict[str, str], bytes]]:
    """Direct-API requests, each with ``per_request`` new associations."""
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    out = []
    for r in range(requests_n):
        items = [
            {
                "fromObjectType": "deals",
                "fromObjectId": str(offset + r * per_request + i),
                "toObjectType": "contacts",
                "toObjectId": str(9_000_000 + i),
            }
            for i in range(per_request)
        ]
        out.append((headers, json.dumps({"associations": items}).encode()))
    return out


def webhook_bodies(url: str, requests_n: int, offset: int) -> list[tuple[dict[str, str], bytes]]:
    """Signed HubSpot batches of 100 new deal.creation events (the rule makes one association each)."""
    ts = int(time.time() * 1000)
    out = []
    for r in range(requests_n):
        events = [
            {
                "eventId": offset + r * 100 + i,
                "subscriptionId": 1,
                "portalId": 62515,
                "appId": 1,
                "occurredAt": ts,
                "subscriptionType": "deal.creation",
                "attemptNumber": 0,
                "objectId": offset + r * 100 + i,
                "changeSource": "CRM",
                "contactId": 5_000_000 + i,
            }
            for i in range(100)
        ]
        body = json.dumps(events, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": signatures.sign_v3(CLIENT_SECRET, "POST", url, body, ts),
            "X-HubSpot-Request-Timestamp": str(ts),
        }
        out.append((headers, body))
    return out


def expand_everything(client: redis_lib.Redis, rules_path: Path) -> None:
    """Run the workers' expander code over the whole inbox, as a worker's thread would."""
    keys = Keys()
    rules_file = RulesFile.read(str(rules_path))
    inbox = Inbox(client, keys, claim_idle_s=30)
    lanes = LaneStore(client, keys, lease_s=30, dedup_window_s=86_400)
    expander = Expander(
        inbox, Expansion(inbox, rules_file.rules, lanes, Metrics(client, keys), rules_tag=rules_file.tag), consumer="b"
    )
    while expander.step(block_ms=1) or client.xlen(keys.inbox):
        pass


def drain_everything(b: Bench, expected: int) -> None:
    """Two workers drain every lane into the simulator; stopped once it holds ``expected`` associations."""
    workers = b.workers(2)
    wait_for(
        lambda: b.sim_get("/_sim/requests")["inputs_total"] >= expected,
        timeout=600,
        interval=0.1,
        what=f"{expected} associations in the simulator",
    )
    for worker in workers:
        b.stop(worker)


def scenario(
    b: Bench, base: str, overhead: Cost, name: str, bodies: list[tuple[dict[str, str], bytes]], path: str, assocs: int
) -> dict[str, Any]:
    """Intake, expansion and drain of ``bodies`` (``assocs`` associations in all), each measured apart."""
    client = b.client()
    say(f"{name}: intake of {len(bodies)} requests ({assocs} associations)")
    intake = measure(client, overhead, lambda: send(f"{base}{path}", bodies))
    say(f"{name}: expansion")
    expansion = measure(client, overhead, lambda: expand_everything(client, b.workdir / "rules.yaml"))
    say(f"{name}: drain with 2 workers")
    drain = measure(client, overhead, lambda: drain_everything(b, assocs))
    b.reset()
    requests_n = len(bodies)
    stages = {"intake": intake, "expansion": expansion, "drain": drain}
    total = Cost(
        {},
        sum(c.bytes_in for c in stages.values()),
        sum(c.bytes_out for c in stages.values()),
        sum(c.cpu_s for c in stages.values()),
    )
    return {
        "requests": requests_n,
        "associations": assocs,
        "stages": {
            stage: {"per_request": c.per(requests_n), "per_association": c.per(assocs), "top": c.top()}
            for stage, c in stages.items()
        },
        "total_per_association": {
            **total.per(assocs),
            "commands": sum(c.total_commands for c in stages.values()) / assocs,
        },
    }


def wait_latency(b: Bench, samples: int) -> dict[str, float]:
    """Median intake latency of a 1-association request without and with HUBLINK_REDIS_MIN_REPLICAS=1."""
    assert b.redis is not None
    replica = RedisServer(b.workdir / "replica", replicaof=b.redis.port).start()
    primary = b.client()
    wait_for(
        lambda: primary.info("replication").get("slave0", {}).get("state") == "online", timeout=30, what="the replica"
    )
    out: dict[str, float] = {}
    for replicas in (0, 1):
        web, base = b.gunicorn("web:create_app()", HUBLINK_REDIS_MIN_REPLICAS=str(replicas))
        bodies = api_bodies(samples, 1, 50_000_000 + replicas * samples)
        times = []
        with requests.Session() as session:
            for headers, body in bodies:
                started = time.perf_counter()
                response = session.post(f"{base}/api/associations", data=body, headers=headers, timeout=10)
                times.append(time.perf_counter() - started)
                assert response.status_code == 202, response.text
        out[f"p50_ms_min_replicas_{replicas}"] = statistics.median(times) * 1000
        b.stop(web)
    replica.stop()
    b.reset()
    return out


def capacity(results: dict[str, Any]) -> dict[str, Any]:
    """The ceiling of one primary, the portals it carries at HubSpot's limits, the processes that saturate it.

    Process counts come from this machine's last ``make bench`` (``bench/last-results.json``): web requests
    per core from P1 (single associations) and P2 (100-event webhooks), both on 4 gunicorn workers on 2
    cores; drain rate per worker from P3 at 100 ms HubSpot latency (2 workers).
    """
    last = json.loads((BENCH / "last-results.json").read_text()) if (BENCH / "last-results.json").exists() else {}
    web_rps_per_core = {
        "API, 1 per request": last.get("P1", {}).get("hublink_rps", 0.0) / 2,
        "webhook, 100 events": last.get("P2", {}).get("batches_rps", 0.0) / 2,
    }
    drain_per_worker = last.get("P3", {}).get("100", {}).get("hublink_per_s", 0.0) / 2
    out: dict[str, Any] = {}
    for name, scenario_result in results["scenarios"].items():
        cpu_us = scenario_result["total_per_association"]["cpu_us"]
        ceiling = USABLE_CPU * 1e6 / cpu_us if cpu_us else float("inf")
        per_request = scenario_result["associations"] / scenario_result["requests"]
        web_rate = web_rps_per_core.get(name, 0.0)
        out[name] = {
            "cpu_us_per_association": cpu_us,
            "ceiling_associations_per_s": ceiling,
            "ceiling_requests_per_s": ceiling / per_request,
            "portals_at": {limit: ceiling / (rps * BATCH) for limit, rps in HUBSPOT_LIMITS.items()},
            # What it takes to send the primary that much: web cores, and workers draining it.
            "web_cores_to_saturate": ceiling / per_request / web_rate if web_rate else None,
            "workers_to_saturate": ceiling / drain_per_worker if drain_per_worker else None,
        }
    out["inputs"] = {"web_rps_per_core": web_rps_per_core, "drain_per_worker_per_s": drain_per_worker}
    return out


def table(results: dict[str, Any]) -> str:
    """The markdown tables: cost per stage, then the capacity model."""
    lines = [
        "| way in | stage | commands / request | commands / assoc. | bytes in+out / assoc. | Redis CPU µs / assoc. | "
        "most called |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in results["scenarios"].items():
        for stage, c in s["stages"].items():
            pa, pr = c["per_association"], c["per_request"]
            lines.append(
                f"| {name} | {stage} | {pr['commands']:.2f} | {pa['commands']:.3f} | "
                f"{pa['bytes_in'] + pa['bytes_out']:.0f} | {pa['cpu_us']:.1f} | {c['top']} |"
            )
        t = s["total_per_association"]
        lines.append(
            f"| {name} | **all** | | **{t['commands']:.3f}** | **{t['bytes_in'] + t['bytes_out']:.0f}** | "
            f"**{t['cpu_us']:.1f}** | |"
        )
    cap = results["capacity"]
    lines += [
        "",
        f"| way in | associations/s one primary carries ({USABLE_CPU:.0%} of a core) | requests/s | "
        "portals at 100/10 s x 100 | portals at 190/10 s x 100 | web cores to saturate it | workers to saturate it |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, c in cap.items():
        if name == "inputs":
            continue
        web = f"{c['web_cores_to_saturate']:.1f}" if c["web_cores_to_saturate"] else "not measured"
        workers = f"{c['workers_to_saturate']:.0f}" if c["workers_to_saturate"] else "not measured"
        lines.append(
            f"| {name} | {c['ceiling_associations_per_s']:,.0f} | {c['ceiling_requests_per_s']:,.0f} | "
            f"{c['portals_at']['100/10s']:.0f} | {c['portals_at']['190/10s']:.0f} | {web} | {workers} |"
        )
    inputs = cap["inputs"]
    lines += [
        "",
        f"Commands include those run inside Lua scripts (`commandstats` counts them). The server's idle CPU "
        f"({results.get('idle_cpu_per_s', 0) * 1e3:.1f} ms/s: cron, AOF fsync) is subtracted. Web cores: requests/s "
        f"at the ceiling ÷ requests/s per core (P1 and P2 of the last `make bench`: "
        f"{', '.join(f'{k} {v:,.0f}' for k, v in inputs['web_rps_per_core'].items())}). Workers: associations/s at "
        f"the ceiling ÷ one worker's drain rate at 100 ms HubSpot latency "
        f"(P3: {inputs['drain_per_worker_per_s']:,.0f}/s).",
    ]
    wait = results.get("wait")
    if wait:
        lines += [
            "",
            f"Intake latency, 1 association, p50 over sequential requests on loopback: "
            f"{wait['p50_ms_min_replicas_0']:.2f} ms with `HUBLINK_REDIS_MIN_REPLICAS=0`, "
            f"{wait['p50_ms_min_replicas_1']:.2f} ms with `1` (XADD + WAIT in one round-trip, one replica).",
        ]
    return "\n".join(lines)


def write_readme(results: dict[str, Any]) -> None:
    """Replace the section between the redis-cost markers of bench/README.md (appended the first time)."""
    readme = BENCH / "README.md"
    text = readme.read_text()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"{MARKER}\n## Redis cost per association (`make bench-redis`, last run {stamp})\n\n"
        f"{table(results)}\n{MARKER}\n"
    )
    if MARKER in text:
        head, _, rest = text.partition(MARKER)
        _, _, tail = rest.partition(MARKER)
        text = head + section + tail.lstrip("\n")
    else:
        # Before the results section that `make bench` rewrites, so that neither run erases the other.
        head, sep, tail = text.partition("<!-- results -->")
        text = head.rstrip() + "\n\n" + section + "\n" + sep + tail if sep else text.rstrip() + "\n\n" + section
    readme.write_text(text)
    (BENCH / "redis-cost.json").write_text(json.dumps(results, indent=2))


def main(argv: list[str] | None = None) -> int:
    """Measure and print; rewrite bench/README.md's section unless --no-readme."""
    parser = argparse.ArgumentParser(prog="python -m bench.redis_cost")
    parser.add_argument("--quick", action="store_true", help="fewer requests (about a minute)")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    args = parser.parse_args(argv)
    scale = 1 if args.quick else 4
    workdir = Path(tempfile.mkdtemp(prefix="hublink-redis-cost-"))
    (workdir / "rules.yaml").write_text(RULES)
    b = Bench(args.quick, workdir)
    results: dict[str, Any] = {"scenarios": {}}
    try:
        b.redis = RedisServer(workdir / "redis", appendonly=True, appendfsync="everysec").start()
        b.sim()
        overhead = info_overhead(b.client())
        IDLE_CPU_PER_S[0] = idle_cpu(b.client())
        results["idle_cpu_per_s"] = IDLE_CPU_PER_S[0]
        web, base = b.gunicorn("web:create_app()")
        results["scenarios"]["API, 1 per request"] = scenario(
            b, base, overhead, "api-1", api_bodies(1000 * scale, 1, 10_000_000), "/api/associations", 1000 * scale
        )
        results["scenarios"]["API, 100 per request"] = scenario(
            b, base, overhead, "api-100", api_bodies(50 * scale, 100, 20_000_000), "/api/associations", 5000 * scale
        )
        hook = f"{base}/webhooks/hubspot"
        results["scenarios"]["webhook, 100 events"] = scenario(
            b,
            base,
            overhead,
            "webhook",
            webhook_bodies(hook, 50 * scale, 30_000_000),
            "/webhooks/hubspot",
            5000 * scale,
        )
        b.stop(web)
        say("intake latency with and without WAIT")
        results["wait"] = wait_latency(b, 300 * scale)
    finally:
        b.shutdown()
    results["capacity"] = capacity(results)
    print("\n" + table(results) + "\n", flush=True)
    if not args.no_readme:
        write_readme(results)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
