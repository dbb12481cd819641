"""The command line: ``python -m hubspot_sim --port 8090 [--token T]... [--rate-limit 100/10s] ...``.

Prints one line, ``hubspot_sim listening on http://HOST:PORT``, once it accepts connections, and stops
cleanly on SIGTERM or SIGINT. The flags are documented in README.md and by ``--help``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from hubspot_sim.config import BATCH_ERRORS, RECORDS_MODES
from hubspot_sim.daily_limits import DEFAULT_TIMEZONE
from hubspot_sim.object_types import canonical_type, is_object_id
from hubspot_sim.records import SeedRecord, parse_seed
from hubspot_sim.server import SimServer
from hubspot_sim.state import SimState
from hubspot_sim.synthetic_records import parse_synthetic

DEFAULT_PORT = 8090
DEFAULT_SEARCH_RATE_LIMIT = "5/1s"  # HubSpot's CRM search limit per account (docs/reference/hubspot.md §2.1)


def parser() -> argparse.ArgumentParser:
    """The command line's flags."""
    p = argparse.ArgumentParser(prog="python -m hubspot_sim", description="HubSpot API simulator")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0: any free port")
    p.add_argument(
        "--token",
        action="append",
        default=[],
        help="accepted Bearer token, repeatable (none given: any non-empty token is accepted)",
    )
    p.add_argument("--rate-limit", default=None, help="rolling limit per token, e.g. 100/10s (default: off)")
    p.add_argument(
        "--search-rate-limit",
        nargs="?",
        const=DEFAULT_SEARCH_RATE_LIMIT,
        default=None,
        help=f"search limit per token (the flag alone: {DEFAULT_SEARCH_RATE_LIMIT}; default: off)",
    )
    p.add_argument("--latency-ms", type=int, default=0, help="added to every API answer (default 0)")
    seed_help = 'records to load: a JSON file {"records": [{"objectType", "id", "properties"}]}'
    p.add_argument("--seed", type=Path, default=None, help=seed_help)
    p.add_argument(
        "--batch-errors",
        choices=BATCH_ERRORS,
        default="whole",
        help="a default batch naming an invalid id: 400 as a whole (default), or per-input errors[]",
    )
    p.add_argument(
        "--records",
        choices=RECORDS_MODES,
        default="any",
        help="which ids exist: any well-formed id (default), or only seeded records (strict)",
    )
    p.add_argument("--daily-limit", type=int, default=None, help="requests a day per account (default: off)")
    p.add_argument(
        "--timezone",
        default=DEFAULT_TIMEZONE,
        help=f"IANA time zone whose midnight resets the daily limit (default {DEFAULT_TIMEZONE})",
    )
    p.add_argument(
        "--synthetic-records",
        action="append",
        default=[],
        metavar="TYPE:COUNT",
        help="ids 1 to COUNT of TYPE exist, generated on demand (e.g. deals:1000000); repeatable",
    )
    p.add_argument(
        "--config",
        type=json.loads,
        default=None,
        metavar="JSON",
        help='start-up settings as PUT /_sim/config takes them, e.g. \'{"journal_auth": "app"}\' (reset keeps them)',
    )
    return p


def load_seed(path: Path) -> list[SeedRecord]:
    """The records of a seed file. Raises OSError if it is unreadable, ValueError if it is malformed."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    try:
        return parse_seed(raw, canonical_type, is_object_id)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT: 0 after a clean stop, 1 if the port cannot be bound, 2 for bad flags."""
    flags = parser()
    args = flags.parse_args(argv)
    if args.latency_ms < 0 or not 0 <= args.port <= 65535:
        flags.error("--latency-ms must be at least 0 and --port from 0 to 65535")
    try:
        records = load_seed(args.seed) if args.seed else []
        limits = (args.rate_limit, args.search_rate_limit)
        state = SimState(
            args.token,
            *limits,
            args.latency_ms,
            records=records,
            batch_errors=args.batch_errors,
            records_mode=args.records,
            daily_limit=args.daily_limit,
            timezone=args.timezone,
            synthetic=dict(parse_synthetic(text, canonical_type) for text in args.synthetic_records),
            config=args.config,
        )
    except (OSError, ValueError) as exc:
        flags.error(str(exc))
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = SimServer(state, host=args.host, port=args.port)
    try:
        url = server.start()
    except OSError as exc:
        sys.stderr.write(f"hubspot_sim: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    sys.stdout.write(f"hubspot_sim listening on {url}\n")
    sys.stdout.flush()
    stopping.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
