"""The record index's candidate forms, measured: Redis bytes per association and the time to look a record up.

``python -m bench.history_index --n 1000000`` indexes n associations (a deal and a contact each: 2n index
entries, 100 associations per history entry, as the direct API's requests of 100) in each form, on a
private Redis, and prints ``used_memory`` after - before per association and the p50/p99 of looking up
random deals (one round trip, as a trace does). The forms:

- ``zset per record``: ``evr:<type>/<id>``, entry ids scored by time (one key per record and side);
- ``hash buckets``: ``evr:<n>`` hashes, field the record, value its entry ids, n = a digest of the record
  modulo a bucket count fixed for the volume (64 records a bucket: listpack-encoded), which a deployment
  cannot know in advance;
- ``zset per day``: ``evr:<day>``, members ``<record> 0x1F <entry>`` at score 0, read by lex range (one
  entry per record and event in a large sorted set: skiplist-encoded);
- ``one hash``: ``evr``, field the record, value its entry ids (one entry per record, hashtable-encoded);
- ``linear-hashed buckets`` (what HubLink keeps, ``hublink.intake.history``): ``evr:<n>`` sorted sets of
  ``tag + packed entry`` members, split as they fill so each stays listpack-encoded.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis as redis_lib

from bench import say
from bench.footprint import fill_history
from hublink.intake.history import EventHistory
from hublink.store.keys import Keys
from tests.support.processes import RedisServer

PER_ENTRY = 100
TTL_S = 8 * 86400


def pairs(n: int, now: float) -> list[tuple[str, str, str]]:
    """(entry id, deal, contact) for n associations, 100 per entry, as ``fill_history`` writes them at ``now``."""
    rng = random.Random(13)
    now_ms = int(now * 1000)
    out = []
    for i in range(n):
        rng.getrandbits(128)  # the association id fill_history draws first, so the contacts match
        out.append(
            (
                f"{now_ms - n // PER_ENTRY + i // PER_ENTRY}-0",
                f"deals/{1_000_000_000 + i}",
                f"contacts/{rng.randrange(100_000_000, 99_999_999_999)}",
            )
        )
    return out


def bucket_of(record: str, buckets: int) -> int:
    """A record's hash bucket."""
    return int.from_bytes(hashlib.blake2b(record.encode(), digest_size=4).digest(), "big") % buckets


def write_zset_per_record(r: redis_lib.Redis, rows: list[tuple[str, str, str]]) -> None:
    """One sorted set per record, as HubLink wrote its index before this form."""
    pipe = r.pipeline(transaction=False)
    for n, (entry, deal, contact) in enumerate(rows):
        at = int(entry.split("-")[0])
        for record in (deal, contact):
            pipe.zadd(f"hl:evr:{record}", {entry: at})
            pipe.expire(f"hl:evr:{record}", TTL_S)
        if n % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def write_hash_buckets(r: redis_lib.Redis, rows: list[tuple[str, str, str]]) -> None:
    """Hashes of about 64 records each (a bucket count fixed for this volume)."""
    buckets = max(len(rows) * 2 // 64, 1)
    pipe = r.pipeline(transaction=False)
    for n, (entry, deal, contact) in enumerate(rows):
        for record in (deal, contact):
            pipe.hset(f"hl:evr:{bucket_of(record, buckets)}", record, entry)
        if n % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    for b in range(buckets):
        pipe.expire(f"hl:evr:{b}", TTL_S)
    pipe.execute()


def write_zset_per_day(r: redis_lib.Redis, rows: list[tuple[str, str, str]]) -> None:
    """One sorted set for the day, members ``record 0x1F entry`` read by lex range."""
    pipe = r.pipeline(transaction=False)
    for n, (entry, deal, contact) in enumerate(rows):
        pipe.zadd("hl:evr:20261207", {f"{deal}\x1f{entry}": 0, f"{contact}\x1f{entry}": 0})
        if n % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def write_one_hash(r: redis_lib.Redis, rows: list[tuple[str, str, str]]) -> None:
    """One hash: field the record, value its entry ids."""
    pipe = r.pipeline(transaction=False)
    for n, (entry, deal, contact) in enumerate(rows):
        pipe.hset("hl:evr", mapping={deal: entry, contact: entry})
        if n % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def lookups(r: redis_lib.Redis, form: str, rows: list[tuple[str, str, str]], samples: int) -> list[float]:
    """Milliseconds to find the entries naming random deals, one round trip each (two for the chosen form)."""
    rng = random.Random(3)
    history = EventHistory(r, Keys())
    buckets = max(len(rows) * 2 // 64, 1)
    times = []
    for _ in range(samples):
        entry, deal, _contact = rows[rng.randrange(len(rows))]
        started = time.perf_counter()
        if form == "zset per record":
            found = [m.decode() for m in r.zrevrange(f"hl:evr:{deal}", 0, -1)]
        elif form == "hash buckets":
            found = [(r.hget(f"hl:evr:{bucket_of(deal, buckets)}", deal) or b"").decode()]
        elif form == "zset per day":
            found = [
                m.decode().split("\x1f")[1]
                for m in r.zrangebylex("hl:evr:20261207", f"[{deal}\x1f", f"[{deal}\x1f\xff")
            ]
        elif form == "one hash":
            found = [(r.hget("hl:evr", deal) or b"").decode()]
        else:
            found = [entry_id for _, entry_id in history.entries_naming(deal)]
        times.append((time.perf_counter() - started) * 1000)
        if entry not in found:
            raise RuntimeError(f"{form}: {deal} not found")
    return sorted(times)


def measure(
    r: redis_lib.Redis, form: str, write: Callable[[], None], rows: list[tuple[str, str, str]]
) -> dict[str, float]:
    """Bytes per association of one form (its index alone) and its lookup times."""
    r.flushall()
    before = int(r.info("memory")["used_memory"])
    started = time.monotonic()
    write()
    if form == "linear-hashed buckets":
        # The records themselves are the history, not the index: measured apart, removed here.
        records = int(r.info("memory")["used_memory"])
        keys = [k for k in r.scan_iter(match="hl:ev:*", count=1000)]
        for first in range(0, len(keys), 1000):
            r.delete(*keys[first : first + 1000])
        r.delete("hl:evs")
        after = int(r.info("memory")["used_memory"])
        say(f"{form}: records and evs took {(records - after) / len(rows):,.1f} B/assoc")
    else:
        after = int(r.info("memory")["used_memory"])
    seconds = time.monotonic() - started
    times = lookups(r, form, rows, 500) if form != "linear-hashed buckets" else []
    return {"bytes": (after - before) / len(rows), "write_s": seconds, **_latency(times)}


def _latency(times: list[float]) -> dict[str, float]:
    if not times:
        return {}
    return {"p50_ms": statistics.median(times), "p99_ms": times[int(len(times) * 0.99)]}


def main(argv: list[str] | None = None) -> int:
    """Measure every form and print one table."""
    parser = argparse.ArgumentParser(prog="python -m bench.history_index")
    parser.add_argument("--n", type=int, default=1_000_000, help="associations indexed (2 records each)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="hublink-index-"))
    server = RedisServer(workdir / "redis").start()
    r = redis_lib.Redis.from_url(server.url)
    now = time.time()
    rows = pairs(args.n, now)
    results: dict[str, dict[str, float]] = {}
    try:
        forms: dict[str, Callable[[], None]] = {
            "zset per record": lambda: write_zset_per_record(r, rows),
            "hash buckets": lambda: write_hash_buckets(r, rows),
            "zset per day": lambda: write_zset_per_day(r, rows),
            "one hash": lambda: write_one_hash(r, rows),
            "linear-hashed buckets": lambda: fill_history(r, Keys(), args.n, now),
        }
        for form, write in forms.items():
            say(f"{form}: indexing {args.n:,} associations")
            results[form] = measure(r, form, write, rows)
            if form == "linear-hashed buckets":
                # Looked up with the records in place (the trace reads both): fill again, then time.
                r.flushall()
                fill_history(r, Keys(), args.n, now)
                results[form].update(_latency(lookups(r, form, rows, 500)))
            say(f"{form}: {results[form]}")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n| form | index bytes per association ({args.n:,}) | lookup p50 / p99 (ms) |\n|---|---|---|")
    for form, p in results.items():
        print(f"| {form} | {p['bytes']:,.0f} | {p.get('p50_ms', 0):.2f} / {p.get('p99_ms', 0):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
