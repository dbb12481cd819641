"""The dashboard's audit page (``/admin/audit``): every admin action, newest first, with the API's filters.

A GET form (no JavaScript) and cursor paging, as the dead-letter list. Reading the page is not recorded.
"""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request

from hublink.ops.audit import AuditFilter
from web.admin.blueprint import bp
from web.parts import parts

#: Entries per page.
PAGE_SIZE = 100


@bp.get("/audit")
def audit_log() -> str:
    """Admin actions, newest first, filtered by the form's fields, paged by cursor."""
    log = parts().audit
    values = {name: str(request.args.get(name, "")).strip() for name in AuditFilter.FIELDS}
    items: list[dict[str, Any]] = []
    cursor = None
    try:
        flt = AuditFilter.parse(values)
        entries, cursor = log.page(flt, limit=PAGE_SIZE, cursor=request.args.get("cursor") or None)
        items = [entry.to_wire() for entry in entries]
    except ValueError as exc:
        flash(f"Bad filter, nothing listed: {exc}")
    return render_template(
        "admin/audit.html",
        items=items,
        cursor=cursor,
        filters=values,
        query={name: value for name, value in values.items() if value},
        is_first_page=not request.args.get("cursor"),
        total=log.count(),
    )
