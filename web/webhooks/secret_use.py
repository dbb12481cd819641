"""Which secret verified each signed request: ``hublink_signature_secret_matched_total{source,which}``.

During a rotation the metric says when the previous secret is no longer used (its count stops growing), so
that ``…_PREVIOUS`` can be removed. Counting must not cost the intake path a Redis round trip per request:
each process tallies in memory and writes its tally at most once a second (one pipeline), within the
request that finds the second over. A process's first verification is written at once; what a process
counted in its last second of life may be lost, which a rotation's "is the old secret still used?" does
not notice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from flask import current_app

from hublink.domain.errors import StoreUnavailableError
from hublink.domain.signatures import Which
from hublink.ops.metrics import Metrics
from web.parts import parts

#: Seconds between two writes of a process's tally.
FLUSH_EVERY_S = 1.0
log = logging.getLogger("hublink.web")


class SecretUse:
    """An in-process tally of (source, which) verifications, written to the metric at most once a second."""

    def __init__(self, metrics: Metrics, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._tally: Counter[tuple[str, str]] = Counter()
        self._flushed_at = float("-inf")

    def count(self, source: str, which: Which) -> None:
        """Count one verified request; write the tally when the last write is a second old."""
        with self._lock:
            self._tally[(source, which)] += 1
            now = self._clock()
            if now - self._flushed_at < FLUSH_EVERY_S:
                return
            self._flushed_at = now
            tally, self._tally = self._tally, Counter()
        try:
            self._metrics.apply(
                [self._metrics.op("signature_secret_matched", n, source=s, which=w) for (s, w), n in tally.items()]
            )
        except StoreUnavailableError:
            # Kept for the next write: the request itself goes on (or is refused by the inbox write).
            with self._lock:
                self._tally.update(tally)
            log.debug("signature counts not written yet")


def secret_use() -> SecretUse:
    """This app's tally (one per process: built on first use, after gunicorn's fork)."""
    found = current_app.extensions.get("hublink.secret_use")
    if found is None:
        found = current_app.extensions["hublink.secret_use"] = SecretUse(parts().metrics)
    tally: SecretUse = found
    return tally
