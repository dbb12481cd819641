"""The dashboard's trace page: a record's events and associations in one timeline (the search box's answer)."""

from __future__ import annotations

from flask import flash, render_template, request

from hublink.domain.associations import is_object_id
from hublink.ops.trace import trace as trace_of
from web.admin.blueprint import bp
from web.parts import parts


@bp.get("/trace")
def trace() -> str:
    """The search box's answer: a record's events and associations, in one timeline."""
    object_type = request.args.get("type", "").strip()[:40]
    # Never cut: the first 20 digits of a longer id name another record.
    object_id = request.args.get("id", "").strip()[:64]
    found = None
    if object_type or object_id:
        try:
            if not is_object_id(object_id):
                raise ValueError(f"id: expected 1-20 decimal digits, got {object_id[:30]!r}")
            p = parts()
            found = trace_of(p.redis, p.keys, p.history, object_type, object_id)
        except ValueError as exc:
            flash(f"Nothing to show: {exc}")
    return render_template("admin/trace.html", found=found, object_type=object_type, object_id=object_id)
