"""P8 end to end: Redis bytes per association as a user pays them, by stage and by key family.

Associations go in as a user sends them: through ``POST /api/associations`` in requests of 100, or as signed
HubSpot batches of 100 ``deal.creation`` events that the bench's rule turns into one association each, on
gunicorn with the Procfile's config, with the event history and traces at their defaults. Every key counts:
``used_memory`` after a stage minus ``used_memory`` before it (an empty Redis), less what RQ's own keys hold
(a worker's registration, its drain jobs: their ``MEMORY USAGE``, a few kB whatever the volume; their counts
are reported), divided by the associations:

- **inbox**: everything accepted, no worker running yet (what Redis holds while the workers are behind);
- **pending**: expanded into the lanes by one worker held to a trickle (one association per minute), with
  each request kept in the history and indexed for traces;
- **drained**: every association linked (workers at full speed, then stopped): what the history window
  keeps, done records and the record index included.

Each stage prints its share by key family (``MEMORY USAGE`` of every key, grouped by prefix; the main
dictionary's and expiry table's own entries are in ``used_memory`` but not in any key's figure). The trace
of a record is then timed over the records indexed (``trace_latency``), where the target is 50 ms.

``python -m bench.footprint`` runs it alone: ``--sizes 50000,1000000 --ways api,webhook``; ``--trace N``
times traces over N associations written to the history directly (no lanes: faster).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from bench import say
from hublink.domain import signatures
from hublink.intake.history import EventHistory
from hublink.store.keys import Keys
from tests.support.processes import wait_for

if TYPE_CHECKING:
    import redis as redis_lib

    from bench.__main__ import Bench

PER_REQUEST = 100
#: Issue 22's target: Redis bytes per pending direct-API association, history and trace on.
TARGET_BYTES = 200
#: Requests in flight at once (each of 100 associations).
SENDERS = 4
#: ``INFO memory`` fields each snapshot keeps, to account for what no key's ``MEMORY USAGE`` holds.
INFO_FIELDS = (
    "used_memory_dataset",
    "used_memory_overhead",
    "mem_clients_normal",
    "mem_aof_buffer",
    "used_memory_scripts",
    "mem_replication_backlog",
)


def api_requests(n: int, seed: int = 13) -> Iterator[tuple[dict[str, str], bytes]]:
    """``POST /api/associations`` bodies of 100 new associations: 10-digit deal ids, 9-11-digit contact ids."""
    from bench.__main__ import API_TOKEN

    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    for start in range(0, n, PER_REQUEST):
        items = [
            {
                "fromObjectType": "deals",
                "fromObjectId": str(1_000_000_000 + i),
                "toObjectType": "contacts",
                "toObjectId": str(rng.randrange(100_000_000, 99_999_999_999)),
            }
            for i in range(start, min(start + PER_REQUEST, n))
        ]
        yield headers, json.dumps({"associations": items}, separators=(",", ":")).encode()


def webhook_requests(url: str, n: int, seed: int = 17) -> Iterator[tuple[dict[str, str], bytes]]:
    """Signed (v3) HubSpot batches of 100 new ``deal.creation`` events, each naming its contact."""
    from bench.__main__ import CLIENT_SECRET

    rng = random.Random(seed)
    for start in range(0, n, PER_REQUEST):
        ts = int(time.time() * 1000)
        events = [
            {
                "eventId": 4_000_000_000 + i,
                "subscriptionId": 1,
                "portalId": 62515,
                "appId": 1,
                "occurredAt": ts,
                "subscriptionType": "deal.creation",
                "attemptNumber": 0,
                "objectId": 1_000_000_000 + i,
                "changeSource": "CRM",
                "contactId": rng.randrange(100_000_000, 99_999_999_999),
            }
            for i in range(start, min(start + PER_REQUEST, n))
        ]
        body = json.dumps(events, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": signatures.sign_v3(CLIENT_SECRET, "POST", url, body, ts),
            "X-HubSpot-Request-Timestamp": str(ts),
        }
        yield headers, body


def send(url: str, bodies: Iterator[tuple[dict[str, str], bytes]]) -> int:
    """POST every body from a few threads (each 2xx or the bench stops); returns the requests sent."""
    lock = threading.Lock()
    failures: list[str] = []
    sent = [0]

    def run() -> None:
        with requests.Session() as session:
            while not failures:
                with lock:
                    item = next(bodies, None)
                if item is None:
                    return
                headers, body = item
                response = session.post(url, data=body, headers=headers, timeout=60)
                if response.status_code >= 300:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                with lock:
                    sent[0] += 1

    threads = [threading.Thread(target=run) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"P8: {len(failures)} requests refused, e.g. {failures[0]}")
    return sent[0]


def family(key: str, prefix: str = "hl:") -> str:
    """A key's family for the breakdown: ``hl:evr:123`` is ``evr:*``, ``rq:job:x`` is ``rq:job:*``."""
    if key.startswith("rq:"):
        parts = key.split(":")
        return ":".join(parts[:2]) + (":*" if len(parts) > 2 else "")
    name = key.removeprefix(prefix)
    head, separator, _ = name.partition(":")
    return head + (":*" if separator else "")


def snapshot(client: redis_lib.Redis, *, breakdown: bool = True) -> dict[str, Any]:
    """``used_memory`` and, per key family, keys and ``MEMORY USAGE`` bytes.

    The slow log is emptied first: Redis keeps the arguments of its last 128 slow commands (up to about
    0.5 MB on a busy machine), which is no association's cost.
    """
    client.slowlog_reset()
    memory = client.info("memory")
    used = int(memory["used_memory"])
    out: dict[str, Any] = {
        "used": used,
        "families": {},
        # Redis's own accounts, beside the keys': buffers of clients and the AOF, the main dictionaries.
        "info": {k: memory.get(k) for k in INFO_FIELDS},
        "stats": {
            k.decode() if isinstance(k, bytes) else k: v
            for k, v in (client.memory_stats() or {}).items()
            if not isinstance(v, dict)
        },
    }
    if not breakdown:
        return out
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    batch: list[bytes] = []

    def flush() -> None:
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
        for key, size in zip(batch, pipe.execute(), strict=True):
            name = family(key.decode(errors="replace"))
            sizes[name] += int(size or 0)
            counts[name] += 1
        batch.clear()

    for key in client.scan_iter(count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            flush()
    if batch:
        flush()
    out["families"] = {name: {"keys": counts[name], "bytes": sizes[name]} for name in sizes}
    return out


def difference(before: dict[str, Any], after: dict[str, Any], n: int) -> dict[str, Any]:
    """Bytes per association between two snapshots, in all and per key family (largest first).

    RQ's own keys (a worker's registration, its drain jobs) are not HubLink's cost per association: their
    ``MEMORY USAGE`` is taken out of the ``used_memory`` difference, and their counts are reported.
    """
    names = set(before["families"]) | set(after["families"])
    rows = []
    for name in names:
        b = before["families"].get(name, {"keys": 0, "bytes": 0})
        a = after["families"].get(name, {"keys": 0, "bytes": 0})
        rows.append((name, a["keys"] - b["keys"], (a["bytes"] - b["bytes"]) / n, a["keys"]))
    rows.sort(key=lambda r: -abs(r[2]))
    rq = [sum(v["bytes"] for k, v in snap["families"].items() if k.startswith("rq:")) for snap in (before, after)]
    return {
        "per_assoc": (after["used"] - before["used"] - (rq[1] - rq[0])) / n,
        "rq_bytes": rq[1] - rq[0],
        "before": before["used"],
        "after": after["used"],
        "families": [
            {"family": name, "keys_added": added, "per_assoc": per, "keys": total}
            for name, added, per, total in rows
            if per or added
        ],
        "info": {k: (after["info"].get(k) or 0) - (before["info"].get(k) or 0) for k in INFO_FIELDS},
        "stats": {
            k: v - before["stats"].get(k, 0)
            for k, v in after["stats"].items()
            if isinstance(v, int | float) and isinstance(before["stats"].get(k, 0), int | float)
        },
        "rq_keys": (
            sum(v["keys"] for k, v in before["families"].items() if k.startswith("rq:")),
            sum(v["keys"] for k, v in after["families"].items() if k.startswith("rq:")),
        ),
    }


def lanes_settled(client: redis_lib.Redis, keys: Keys) -> bool:
    """Nothing waits: no lane with work, nothing leased."""
    return int(client.zcard(keys.lanes)) == 0 and int(client.zcard(keys.inflight)) == 0


def expanded(client: redis_lib.Redis, keys: Keys) -> bool:
    """The inbox is empty (every entry expanded, acknowledged and deleted)."""
    return int(client.xlen(keys.inbox)) == 0


def end_to_end(b: Bench, n: int, way: str) -> dict[str, Any]:
    """One row: n associations in through ``way`` (api or webhook); the three stages and their breakdowns."""
    b.reset()
    client = b.client()
    keys = Keys()
    web, base = b.gunicorn("web:create_app()")
    started = time.monotonic()
    zero = snapshot(client)
    say(f"P8 {way}: sending {n:,} associations in requests of {PER_REQUEST}")
    url = f"{base}/api/associations" if way == "api" else f"{base}/webhooks/hubspot"
    bodies = api_requests(n) if way == "api" else webhook_requests(url, n)
    send_started = time.monotonic()
    sent = send(url, bodies)
    send_s = time.monotonic() - send_started
    b.stop(web)
    inbox = snapshot(client)
    say(f"P8 {way}: {sent:,} requests in {send_s:.0f}s; inbox {(inbox['used'] - zero['used']) / n:,.0f} B/assoc")
    trickle = b.workers(1, HUBSPOT_RATE_LIMIT="1/60s", HUBSPOT_BATCH_SIZE="1")
    expand_started = time.monotonic()
    wait_for(lambda: expanded(client, keys), timeout=max(600, n / 500), interval=0.5, what="the inbox to empty")
    expand_s = time.monotonic() - expand_started
    for process in trickle:
        b.stop(process)
    pending = snapshot(client)
    say(f"P8 {way}: expanded in {expand_s:.0f}s; pending {difference(zero, pending, n)['per_assoc']:,.0f} B/assoc")
    drain_started = time.monotonic()
    drainers = b.workers(2)
    wait_for(
        lambda: lanes_settled(client, keys) and b.sim_get("/_sim/requests")["inputs_total"] >= n,
        timeout=max(600, n / 200),
        interval=0.5,
        what=f"{n:,} associations linked",
    )
    drain_s = time.monotonic() - drain_started
    for process in drainers:
        b.stop(process)
    drained = snapshot(client)
    say(f"P8 {way}: drained in {drain_s:.0f}s; kept {(drained['used'] - zero['used']) / n:,.0f} B/assoc")
    result = {
        "n": n,
        "way": way,
        "inbox": difference(zero, inbox, n),
        "pending": difference(zero, pending, n),
        "drained": difference(zero, drained, n),
        "seconds": {"send": send_s, "expand": expand_s, "drain": drain_s, "all": time.monotonic() - started},
        "history": EventHistory(client, keys).stats(),
    }
    if way == "api":
        result["trace"] = t = trace_latency(client, keys, n)
        say(f"P8 {way}: trace p50 {t['p50_ms']:.1f} ms, p99 {t['p99_ms']:.1f} ms over {t['records']:,} index members")
    return result


def trace_latency(client: redis_lib.Redis, keys: Keys, n: int, samples: int = 300) -> dict[str, Any]:
    """Milliseconds to trace a record (``hublink.ops.trace``) chosen at random among the n deals indexed.

    Each trace must find its event and its association: a trace that misses one fails the bench.
    """
    from hublink.ops.trace import trace

    history = EventHistory(client, keys)
    rng = random.Random(5)
    times = []
    for _ in range(samples):
        deal = str(1_000_000_000 + rng.randrange(n))
        started = time.perf_counter()
        found = trace(client, keys, history, "deals", deal)
        times.append((time.perf_counter() - started) * 1000)
        if not found["events"] or not found["associations"]:
            raise RuntimeError(f"P8: the trace of deals/{deal} found nothing")
    times.sort()
    return {
        "samples": samples,
        "records": int(client.hget(keys.history_index_meta, "n") or 0),
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(int(samples * 0.99), samples - 1)],
        "max_ms": times[-1],
    }


def fill_history(client: redis_lib.Redis, keys: Keys, n: int, now: float | None = None) -> float:
    """Write n API associations (deals to contacts) to the history directly, 100 a request; the seconds taken.

    Request k's entry id is ``<now in ms - n/100 + k>-0``.
    """
    from hublink.domain.associations import AssociationRequest
    from hublink.domain.events import CrmEvent
    from hublink.intake.history import EventOutcome

    history = EventHistory(client, keys)
    rng = random.Random(13)
    now = time.time() if now is None else now
    started = time.monotonic()
    for request, start in enumerate(range(0, n, PER_REQUEST)):
        produced = tuple(
            (
                f"{rng.getrandbits(128):032x}",
                AssociationRequest(
                    from_object_type="deals",
                    from_object_id=str(1_000_000_000 + i),
                    to_object_type="contacts",
                    to_object_id=str(rng.randrange(100_000_000, 99_999_999_999)),
                    source="api",
                    received_at=now,
                ),
            )
            for i in range(start, min(start + PER_REQUEST, n))
        )
        entry_id = f"{int(now * 1000) - n // PER_REQUEST + request}-0"
        history.record(
            entry_id, now, "associations", [EventOutcome(0, "accepted", CrmEvent(source="api"), produced=produced)]
        )
    return time.monotonic() - started


def p8_end_to_end(b: Bench, sizes: list[int], ways: list[str], webhook_sizes: list[int] | None = None) -> None:
    """P8 end to end at each size and way in (webhooks at ``webhook_sizes`` when given); under ``P8 e2e``."""
    out: dict[str, Any] = {}
    for way in ways:
        for n in webhook_sizes if way == "webhook" and webhook_sizes is not None else sizes:
            out[f"{way} {n}"] = end_to_end(b, n, way)
    b.results["P8 e2e"] = out
    b.reset()


def breakdown(stage: dict[str, Any], top: int = 5) -> str:
    """The largest families of a stage, as ``q:* 102, ev:* 42``."""
    shown = [f"{f['family']} {f['per_assoc']:,.0f}" for f in stage["families"][:top] if abs(f["per_assoc"]) >= 0.5]
    return ", ".join(shown)


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str, bool]]:
    """Table rows: for each way and size, pending (the target), inbox and drained (context)."""
    out: list[tuple[str, str, str, str, str, bool]] = []
    for p in r.get("P8 e2e", {}).values():
        n, way = p["n"], "API, 100 per request" if p["way"] == "api" else "signed webhooks, 100 events, a rule"
        pending, inbox, drained = p["pending"], p["inbox"], p["drained"]
        worst = max(pending["per_assoc"], inbox["per_assoc"])
        target = p["way"] == "api"
        out.append(
            (
                f"P8 end to end, {way}, {n:,}: Redis bytes per pending association (inbox / lanes), history on",
                f"{inbox['per_assoc']:,.0f} / {pending['per_assoc']:,.0f}",
                f"lanes: {breakdown(pending)}; RQ's {pending['rq_keys'][1]} keys ({pending['rq_bytes']:,} B) left out",
                f"{worst:,.0f} bytes",
                f"<= {TARGET_BYTES}" if target else "context",
                worst <= TARGET_BYTES if target else True,
            )
        )
        out.append(
            (
                f"P8 end to end, {way}, {n:,}: bytes per association kept for the history window once drained",
                f"{drained['per_assoc']:,.0f}",
                breakdown(drained),
                f"{drained['per_assoc']:,.0f} bytes",
                "context",
                True,
            )
        )
        if "trace" in p:
            t = p["trace"]
            out.append(
                (
                    f"P8 trace of a record, {t['records']:,} index members (ms)",
                    f"p50 {t['p50_ms']:.1f} / p99 {t['p99_ms']:.1f} / max {t['max_ms']:.1f}",
                    f"{t['samples']} random deals, each found",
                    f"p99 {t['p99_ms']:.1f}",
                    "p99 <= 50",
                    t["p99_ms"] <= 50,
                )
            )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run P8 end to end alone and print the rows (no README change)."""
    from bench.__main__ import RULES, Bench
    from tests.support.processes import RedisServer

    parser = argparse.ArgumentParser(prog="python -m bench.footprint")
    parser.add_argument("--sizes", default="50000")
    parser.add_argument("--ways", default="api,webhook")
    parser.add_argument("--trace", type=int, default=0, help="only time traces over this many associations")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="hublink-footprint-"))
    (workdir / "rules.yaml").write_text(RULES)
    b = Bench(False, workdir)
    try:
        b.redis = RedisServer(workdir / "redis", appendonly=True, appendfsync="everysec").start()
        if args.trace:
            client, keys = b.client(), Keys()
            say(f"writing {args.trace:,} associations to the history")
            seconds = fill_history(client, keys, args.trace)
            say(f"written in {seconds:.0f}s; used_memory {int(client.info('memory')['used_memory']) / 2**20:,.0f} MiB")
            b.results["trace"] = trace_latency(client, keys, args.trace)
            print(json.dumps(b.results["trace"], indent=2))
        else:
            b.sim()
            p8_end_to_end(b, [int(s) for s in args.sizes.split(",")], args.ways.split(","))
            for row in rows(b.results):
                print(" | ".join(str(x) for x in row))
            for key, p in b.results["P8 e2e"].items():
                for stage in ("inbox", "pending", "drained"):
                    print(f"{key} {stage}: {p[stage]['per_assoc']:,.1f} B/assoc; " + breakdown(p[stage], top=12))
                    print(f"    info: {p[stage]['info']}")
                print(f"{key} seconds: {p['seconds']}")
        if args.json:
            Path(args.json).write_text(json.dumps(b.results, indent=2, default=str))
    finally:
        b.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
