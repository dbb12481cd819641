"""Blueprint: the operator's dashboard at ``/admin``: log in with HUBLINK_ADMIN_TOKEN, see, replay, purge.

Server-rendered pages, no JavaScript. The session cookie marks a logged-in operator; every POST carries the
session's CSRF token; replay and purge always pass through a confirmation page that shows what they will do.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from hublink import dashboard
from hublink.dead_letters import DeadLetterFilter, parse_time
from web.container import parts

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
SESSION_LIFETIME = timedelta(hours=8)
FILTERS = ("source", "status", "category", "since", "until")


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


@bp.before_request
def _guard() -> BaseResponse | None:
    """Every POST needs the session's CSRF token; every page but login needs a logged-in operator."""
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            abort(400, description="missing or wrong CSRF token; reload the page and try again")
    if request.endpoint != "admin.login" and not session.get("admin"):
        return redirect(url_for("admin.login", next=request.path))
    return None


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {"csrf_token": csrf_token}


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | str:
    """The login form; a correct admin token starts a session."""
    expected = parts().settings.admin_token
    if request.method == "POST":
        presented = request.form.get("token", "")
        if expected and presented and hmac.compare_digest(presented.encode(), expected.encode()):
            csrf = session.get("csrf")
            session.clear()
            session["admin"] = True
            session["csrf"] = csrf or secrets.token_urlsafe(32)
            session.permanent = True
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/admin") else url_for("admin.index"))
        flash("Wrong token." if expected else "HUBLINK_ADMIN_TOKEN is not set: the dashboard is disabled.")
    return render_template("admin/login.html")


@bp.post("/logout")
def logout() -> BaseResponse:
    """End the session."""
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("")
def index() -> str:
    """Queue depths, the last hour's charts, rate-limit headroom, recent failures."""
    p = parts()
    data = dashboard.overview(p.redis, p.keys, p.settings.queue_name, p.dead_letters)
    return render_template("admin/overview.html", o=data, charts=_charts(data))


def _filter_args(source: Any) -> tuple[DeadLetterFilter, dict[str, str]]:
    values = {k: str(source.get(k, "")).strip() for k in FILTERS}
    try:
        flt = DeadLetterFilter(
            source=values["source"] or None,
            status=int(values["status"]) if values["status"] else None,
            category=values["category"] or None,
            since_ms=parse_time(values["since"]) if values["since"] else None,
            until_ms=parse_time(values["until"]) if values["until"] else None,
        )
    except ValueError as exc:
        flash(f"Filter ignored: {exc}")
        return DeadLetterFilter(), {k: "" for k in FILTERS}
    return flt, values


@bp.get("/dead-letters")
def dead_letters() -> str:
    """Dead letters, newest first, with the API's filters and cursor paging."""
    flt, values = _filter_args(request.args)
    try:
        items, cursor = parts().dead_letters.page(flt, limit=50, cursor=request.args.get("cursor") or None)
    except ValueError:
        items, cursor = parts().dead_letters.page(flt, limit=50)
    return render_template(
        "admin/dead_letters.html", items=items, cursor=cursor, filters=values, total=parts().dead_letters.count()
    )


@bp.get("/dead-letters/<string(length=32):letter_id>")
def dead_letter(letter_id: str) -> str:
    """One dead letter with its attempt history and its actions."""
    letter = parts().dead_letters.get(letter_id)
    if letter is None:
        abort(404, description="no such dead letter (replayed, purged or expired)")
    return render_template("admin/dead_letter.html", letter=letter)


@bp.post("/dead-letters/<string(length=32):letter_id>/<any(replay, purge):action>")
def act_on_one(letter_id: str, action: str) -> BaseResponse | str:
    """Replay or purge one dead letter, after a confirmation page."""
    store = parts().dead_letters
    letter = store.get(letter_id)
    if letter is None:
        flash("That dead letter is gone (replayed, purged or expired).")
        return redirect(url_for("admin.dead_letters"))
    if request.form.get("confirmed") != "yes":
        return render_template(
            "admin/confirm.html",
            action=action,
            count=1,
            letter=letter,
            filters=None,
            target=url_for("admin.act_on_one", letter_id=letter_id, action=action),
        )
    done = store.replay(letter_id) if action == "replay" else store.delete(letter_id)
    flash(f"{'Replayed' if action == 'replay' else 'Purged'} {letter_id}." if done else "Nothing to do.")
    return redirect(url_for("admin.dead_letters"))


@bp.post("/dead-letters/bulk/<any(replay, purge):action>")
def act_on_many(action: str) -> BaseResponse | str:
    """Replay or purge every dead letter matching the filters, after a confirmation page with the count."""
    flt, values = _filter_args(request.form)
    store = parts().dead_letters
    if action == "purge" and flt == DeadLetterFilter() and request.form.get("all") != "yes":
        flash("Give a filter to purge by (purging everything is for the CLI or the API with all=true).")
        return redirect(url_for("admin.dead_letters"))
    if request.form.get("confirmed") != "yes":
        count = store.replay_matching(flt, dry_run=True)
        return render_template(
            "admin/confirm.html",
            action=action,
            count=count,
            letter=None,
            filters=values,
            target=url_for("admin.act_on_many", action=action),
        )
    done = store.replay_matching(flt) if action == "replay" else store.purge_matching(flt)
    flash(f"{'Replayed' if action == 'replay' else 'Purged'} {done} dead letter(s).")
    return redirect(url_for("admin.dead_letters"))


def _charts(o: dashboard.Overview) -> dict[str, str]:
    """Inline SVG charts (no JavaScript): throughput, error rate, headroom."""
    width, height = 600, 120
    n = max(len(o.series), 1)
    bar = width / n

    def bars(values: list[float], top: float, colour: str) -> str:
        top = top or 1.0
        shapes = [
            f'<rect x="{i * bar:.1f}" y="{height - v / top * (height - 10):.1f}" width="{max(bar - 1, 1):.1f}" '
            f'height="{v / top * (height - 10):.1f}" fill="{colour}"><title>{v:g}</title></rect>'
            for i, v in enumerate(values)
        ]
        return (
            f'<svg viewBox="0 0 {width} {height}" width="100%" height="{height}" role="img">'
            f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#999"/>{"".join(shapes)}</svg>'
        )

    linked = [float(row["linked"]) for row in o.series]
    rates = [
        row["failed"] / (row["failed"] + row["linked"]) if row["failed"] + row["linked"] else 0.0 for row in o.series
    ]
    headroom = "".join(
        f'<div class="hr"><span>{h.bucket}</span><svg viewBox="0 0 300 16" width="300" height="16">'
        f'<rect width="300" height="16" fill="#eee"/><rect width="{300 * h.share_free:.0f}" height="16" '
        f'fill="#3a7"/></svg> {h.remaining}/{h.max} free, {h.age_s:.0f}s ago</div>'
        for h in o.headroom
    )
    return {
        "throughput": bars(linked, max(linked, default=0.0), "#37a"),
        "errors": bars(rates, 1.0, "#c43"),
        "headroom": headroom or "<p>No HubSpot answers with rate-limit headers yet.</p>",
    }


def register(app: Any) -> None:
    """Install the blueprint and its session settings on ``app``."""
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", SESSION_LIFETIME)
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.register_blueprint(bp)


__all__ = ["Response", "bp", "register"]
