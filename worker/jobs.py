"""The RQ job functions: thin, JSON arguments in, JSON result out.

Each is handed the worker's runtime by ``worker.runtime.HubLinkWorker``. Queued jobs outlive deploys, so
arguments are only ever added, with defaults, and never renamed; ``v`` is the arguments' schema version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from worker.runtime import Runtime


def drain_lane(runtime: Runtime, lane: str, v: int = 1) -> dict[str, Any]:
    """Drain one lane into HubSpot (see ``hublink.delivery.drain``); return what was done."""
    from rq import get_current_job

    job = get_current_job()
    structlog.contextvars.bind_contextvars(job_id=job.id if job else None, lane=lane)
    try:
        return runtime.drainer.drain(lane).as_dict()
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "lane")
