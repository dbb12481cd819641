"""The dashboard's trace page: a record's events and associations in one timeline (the search box's answer)."""

from __future__ import annotations

from flask import flash, render_template, request

from hublink.ops.trace import trace as trace_of
from web.admin.blueprint import bp
from web.parts import parts


@bp.get("/trace")
def trace() -> str:
    """The search box's answer: a record's events and associations, in one timeline."""
    object_type = request.args.get("type", "").strip()[:40]
    object_id = request.args.get("id", "").strip()[:20]
    found = None
    if object_type or object_id:
        try:
            if not object_id.isdigit():
                raise ValueError(f"id: expected decimal digits, got {object_id!r}")
            p = parts()
            found = trace_of(p.redis, p.keys, p.history, object_type, object_id)
        except ValueError as exc:
            flash(f"Nothing to show: {exc}")
    return render_template("admin/trace.html", found=found, object_type=object_type, object_id=object_id)
