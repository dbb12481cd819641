"""BackgroundLoop: a worker's helper thread (the dispatcher, the expander) that outlives any bad turn.

The worker's main thread belongs to RQ; each helper is a loop on a daemon thread. A turn that finds Redis
unavailable, or fails in any other way, is logged and retried a second later: these loops are the
worker's heartbeat, and a worker whose helper died would keep running jobs while silently doing none of
its other duties.
"""

from __future__ import annotations

import logging
import threading

from hublink.domain.errors import StoreUnavailableError

log = logging.getLogger("hublink.background")

#: How long a loop waits after a failed turn.
RETRY_AFTER_FAILURE_S = 1.0


class BackgroundLoop:
    """Calls :meth:`turn` until :meth:`stop`; subclasses name their thread and implement the turn."""

    thread_name = "hublink-loop"

    def __init__(self) -> None:
        self._stopping = threading.Event()

    def turn(self) -> None:
        """One unit of work; may block briefly (it is how the loop waits)."""
        raise NotImplementedError

    def on_store_unavailable(self) -> None:
        """Called after a turn found Redis unavailable (e.g. to redo set-up once it is back)."""

    def run(self) -> None:
        """Loop until :meth:`stop`; Redis outages are logged and waited out, never fatal."""
        while not self._stopping.is_set():
            try:
                self.turn()
            except StoreUnavailableError:
                log.warning("%s: Redis unavailable; retrying", self.thread_name)
                self.on_store_unavailable()
                self._stopping.wait(RETRY_AFTER_FAILURE_S)
            except Exception:
                log.exception("%s: turn failed", self.thread_name)
                self._stopping.wait(RETRY_AFTER_FAILURE_S)

    def stop(self) -> None:
        """Ask :meth:`run` to return after its current turn."""
        self._stopping.set()

    def start_thread(self) -> threading.Thread:
        """Run in a daemon thread."""
        thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        thread.start()
        return thread
