"""The dashboard's dead-letter pages: the list with the API's filters, one letter, and replay and purge
(one or every match), each through a confirmation page that says what it will do.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hublink.ops.dead_letters import DeadLetterFilter
from web.admin.blueprint import bp
from web.audit import audit, done_count, matching
from web.parts import parts

log = logging.getLogger("hublink.web")

#: The API's dead-letter filters, in the order the filter form shows them.
FILTERS = DeadLetterFilter.FIELDS
#: Dead letters per page of the list.
PAGE_SIZE = 50


def read_filter(source: Any) -> tuple[DeadLetterFilter, dict[str, str]]:
    """The API's filters from a form or query string, and the values as typed (for re-rendering).

    Raises ValueError naming the field when one cannot be read.
    """
    values = {name: str(source.get(name, "")).strip() for name in FILTERS}
    return DeadLetterFilter.parse(values), values


@bp.get("/dead-letters")
def dead_letters() -> str:
    """Dead letters, newest first, with the API's filters and cursor paging."""
    store = parts().dead_letters
    items: list[dict[str, Any]] = []
    cursor = None
    try:
        flt, values = read_filter(request.args)
        letters, cursor = store.page(flt, limit=PAGE_SIZE, cursor=request.args.get("cursor") or None)
        items = [letter.to_wire() for letter in letters]
    except ValueError as exc:
        # Nothing rather than everything: the bulk buttons below act on the filters the form shows.
        values = {name: str(request.args.get(name, "")) for name in FILTERS}
        flash(f"Bad filter, nothing listed: {exc}")
    return render_template(
        "admin/dead_letters.html",
        items=items,
        cursor=cursor,
        filters=values,
        query={name: value for name, value in values.items() if value},
        is_first_page=not request.args.get("cursor"),
        total=store.count(),
    )


@bp.get("/dead-letters/<string(length=32):letter_id>")
def dead_letter(letter_id: str) -> str:
    """One dead letter with its attempt history and its actions."""
    letter = parts().dead_letters.get(letter_id)
    if letter is None:
        abort(404, description=f"No dead letter {letter_id}: it was replayed, purged or has expired.")
    return render_template("admin/dead_letter.html", letter=letter.to_wire())


@bp.post("/dead-letters/<string(length=32):letter_id>/<any(replay, purge):action>")
def act_on_one(letter_id: str, action: str) -> Response | str:
    """Replay or purge one dead letter: a confirmation page first, then the confirmed POST does it."""
    store = parts().dead_letters
    letter = store.get(letter_id)
    if letter is None:
        if request.form.get("confirmed") == "yes":  # gone between the confirmation page and its button
            audit(action, f"dead-letter {letter_id}", "refused: not found")
        flash(f"No dead letter {letter_id}: it was replayed, purged or has expired.")
        return redirect(url_for("admin.dead_letters"))
    if request.form.get("confirmed") != "yes":
        target = url_for("admin.act_on_one", letter_id=letter_id, action=action)
        return render_template("admin/confirm.html", action=action, count=1, letter=letter.to_wire(), target=target)
    try:
        done = store.replay(letter_id) if action == "replay" else store.delete(letter_id)
    except ValueError as exc:  # a letter whose work could not be read has nothing to replay
        audit(action, f"dead-letter {letter_id}", f"refused: {exc}")
        flash(str(exc))
        return redirect(url_for("admin.dead_letters"))
    log.info("admin action", extra={"action": action, "association_id": letter_id, "count": int(done)})
    audit(action, f"dead-letter {letter_id}", "ok" if done else "refused: not found")
    flash(f"{'Replayed' if action == 'replay' else 'Purged'} {letter_id}." if done else "Nothing to do.")
    return redirect(url_for("admin.dead_letters"))


@bp.post("/dead-letters/bulk/<any(replay, purge):action>")
def act_on_many(action: str) -> Response | str:
    """Replay or purge every dead letter matching the filters: the dry-run count first, then the confirmed POST.

    Purging needs a filter: purging everything is left to the API's and the CLI's explicit ``all``.
    """
    try:
        flt, values = read_filter(request.form)
    except ValueError as exc:
        flash(f"Bad filter, nothing done: {exc}")
        return redirect(url_for("admin.dead_letters"))
    if action == "purge" and flt == DeadLetterFilter():
        flash("Give a filter to purge by (purging every dead letter is for the API or the CLI, with all).")
        return redirect(url_for("admin.dead_letters"))
    store = parts().dead_letters
    run = store.replay_matching if action == "replay" else store.purge_matching
    if request.form.get("confirmed") != "yes":
        target = url_for("admin.act_on_many", action=action)
        count = run(flt, dry_run=True)
        return render_template("admin/confirm.html", action=action, count=count, filters=values, target=target)
    done = run(flt)
    log.info("admin action", extra={"action": f"bulk {action}", "count": done, "filters": values})
    audit(action, matching("dead-letters", values, FILTERS), done_count(action, done))
    flash(f"{'Replayed' if action == 'replay' else 'Purged'} {done} dead letter(s).")
    query: dict[str, Any] = {name: value for name, value in values.items() if value}
    return redirect(url_for("admin.dead_letters", **query))
