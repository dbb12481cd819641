"""The dashboard's overview page (``/admin``) and the backfills' cancel button on it."""

from __future__ import annotations

import logging

from flask import flash, redirect, render_template, url_for
from werkzeug.wrappers import Response

from hublink.delivery.circuit import read_circuits
from hublink.delivery.installs import uninstalled_portals
from hublink.ops.backfill import RedisBackfills
from web.admin import dashboard
from web.admin.blueprint import bp
from web.audit import audit
from web.parts import parts

log = logging.getLogger("hublink.web")


@bp.get("")
def index() -> str:
    """Queue depths, the last hour's charts, rate-limit headroom, recent failures."""
    p = parts()
    data = dashboard.overview(
        p.redis, p.keys, queue_name=p.settings.queue_name, dead_letters=p.dead_letters, metrics=p.metrics
    )
    return render_template(
        "admin/overview.html",
        o=data,
        pauses=p.pauses.list(),
        circuits=read_circuits(p.redis, p.keys),
        uninstalled=uninstalled_portals(p.redis, p.keys, hold_h=p.settings.uninstalled_hold_h),
    )


@bp.post("/backfills/<string(length=16):backfill_id>/cancel")
def cancel_backfill(backfill_id: str) -> Response:
    """Ask a running backfill to stop before its next page (it can be resumed from the command line)."""
    done = RedisBackfills(parts().redis, parts().keys).request_cancel(backfill_id)
    log.info("admin action", extra={"action": "cancel backfill", "backfill": backfill_id, "count": int(done)})
    audit("backfill.cancel", f"backfill {backfill_id}", "ok" if done else "refused: not found")
    flash(f"Backfill {backfill_id}: cancel requested." if done else f"No backfill {backfill_id}.")
    return redirect(url_for("admin.index"))
