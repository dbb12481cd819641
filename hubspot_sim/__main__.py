"""``python -m hubspot_sim --port 8090 [--token T]... [--rate-limit 100/10s] [--latency-ms N]``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from hubspot_sim.object_types import normalise
from hubspot_sim.server import SimServer
from hubspot_sim.state import SimState, parse_rate


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m hubspot_sim", description="HubSpot API simulator")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        help="accepted Bearer token (repeatable; none given: any non-empty token)",
    )
    parser.add_argument("--rate-limit", default=None, help="rolling limit per token, e.g. 100/10s (off if absent)")
    parser.add_argument("--search-rate-limit", default=None, help="search limit per token, e.g. 5/1s")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every API answer")
    parser.add_argument("--seed", default=None, help='JSON file {"records": [{"objectType", "id", "properties"}]}')
    args = parser.parse_args(argv)
    for value in (args.rate_limit, args.search_rate_limit):
        try:
            parse_rate(value)
        except ValueError as exc:
            parser.error(str(exc))
    state = SimState(args.token, args.rate_limit, args.search_rate_limit, args.latency_ms)
    if args.seed:
        with open(args.seed, encoding="utf-8") as handle:
            state.seed_records(json.load(handle).get("records") or [], normalise)
    server = SimServer(args.host, args.port, state)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    print(f"hubspot_sim listening on {server.url}", flush=True)  # noqa: T201 - the CLI's one line
    stopping.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
