"""Blueprint: the operator's dashboard at ``/admin``: log in with HUBLINK_ADMIN_TOKEN, see, replay, purge.

Server-rendered pages without JavaScript; the charts are inline SVG drawn by the templates. A session
kept in Redis (``web.sessions``; the cookie, HttpOnly, SameSite=Lax and Secure behind HTTPS, holds only
its random id) marks a logged-in operator: logging out, or ``flask --app web admin sessions revoke
--all``, ends it everywhere. Failed logins are throttled per address and in total (``hublink.ops.throttle``).
Every POST carries the session's CSRF token, and replay and purge always pass through a confirmation page
that says what they will do. The data comes from :mod:`hublink.ops.dashboard` and the DeadLetterStore; no
Redis call is made here.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from hublink.delivery.circuit import read_circuits
from hublink.domain.errors import StoreUnavailableError
from hublink.ops import dashboard
from hublink.ops.backfill import RedisBackfills
from hublink.ops.dead_letters import DeadLetterFilter
from web import controls
from web.container import Parts, parts

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static")
log = logging.getLogger("hublink.web")

#: How long a login lasts, used or not (the cookie's lifetime is the same).
SESSION_LIFETIME = timedelta(hours=8)
#: The API's dead-letter filters, in the order the filter form shows them.
FILTERS = DeadLetterFilter.FIELDS
#: Dead letters per page of the list.
PAGE_SIZE = 50
#: Sent with every admin answer: nothing is framed (the buttons replay and purge) or loaded from
#: elsewhere, no script runs, and forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
#: Endpoints reachable without a session.
OPEN_ENDPOINTS = frozenset({"admin.login", "admin.static"})


def parts_of(app: Flask) -> Parts:
    """``app``'s parts outside a request (while registering)."""
    found: Parts = app.extensions["hublink"]
    return found


def register(app: Flask) -> None:
    """Install the blueprint on ``app`` with its session cookie settings."""
    # Assigned, not setdefault: Flask's defaults already hold these keys (31 days, SameSite unset).
    app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = parts_of(app).settings.is_cookie_secure
    app.register_blueprint(bp)


def csrf_token() -> str:
    """The session's CSRF token, created on first use; every form renders it as a hidden field."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


def _token_mark(token: str) -> str:
    """A keyed digest of the admin token: sessions started before a token change stop working.

    Keyed with the app's secret key because the session cookie is signed, not encrypted: a plain hash of a
    weak token could be guessed offline from a stolen cookie.
    """
    key = current_app.secret_key
    raw = key if isinstance(key, bytes) else str(key).encode()
    return hmac.new(raw, token.encode(), hashlib.sha256).hexdigest()[:32]


def _is_logged_in() -> bool:
    """True for a session started with the current admin token less than SESSION_LIFETIME ago."""
    expected = parts().settings.admin_token
    if not session.get("admin") or not expected:
        return False
    # The cookie's own expiry slides with every request; this bound does not.
    fresh = time.time() - float(session.get("since", 0)) < SESSION_LIFETIME.total_seconds()
    return fresh and hmac.compare_digest(str(session.get("mark", "")), _token_mark(expected))


@bp.before_request
def _guard() -> Response | None:
    """Every POST needs the session's CSRF token (400); every page but login needs a logged-in operator."""
    if request.endpoint != "admin.static" and getattr(session, "unavailable", False):
        raise StoreUnavailableError("the session could not be read")
    if request.method == "POST":
        sent, expected = request.form.get("csrf_token", ""), str(session.get("csrf", ""))
        if not (sent and expected and hmac.compare_digest(sent.encode(), expected.encode())):
            abort(400, description="Missing or wrong CSRF token: reload the page and try again.")
    if request.endpoint not in OPEN_ENDPOINTS and not _is_logged_in():
        if session.get("admin"):
            session.clear()
            flash("Your session has ended: log in again.")
        # Only a page can be gone back to: an action's URL answers nothing but POSTs.
        back = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("admin.login", next=back))
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    """Security headers on everything; pages are never cached (live data, and each holds a CSRF token)."""
    response.headers.update(SECURITY_HEADERS)
    if request.endpoint != "admin.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _inject() -> dict[str, Any]:
    """``csrf_token()`` in every admin template."""
    return {"csrf_token": csrf_token}


@bp.app_template_filter("admin_ms")
def _epoch_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_ms / 1000))


@bp.app_template_filter("admin_minute")
def _minute(epoch_minute: int) -> str:
    """An epoch minute as ``HH:MM`` UTC (the charts' tooltips)."""
    return time.strftime("%H:%M", time.gmtime(epoch_minute * 60))


@bp.errorhandler(HTTPException)
def _refused(exc: HTTPException) -> tuple[str, int]:
    """Admin refusals as pages (the API's are JSON), logged and counted as the API's are."""
    status = exc.code or 500
    _count_refusal(status)
    log.info("admin request refused", extra={"status": status, "path": request.path, "reason": exc.description})
    return render_template("admin/error.html", status=status, message=exc.description), status


@bp.errorhandler(StoreUnavailableError)
def _store_down(exc: StoreUnavailableError) -> tuple[str, int, dict[str, str]]:
    """Without Redis there is nothing to show: a 503 page."""
    log.warning("admin page without Redis", extra={"path": request.path, "reason": str(exc)})
    message = "Redis is not answering, so there is nothing to show. Try again shortly."
    return render_template("admin/error.html", status=503, message=message), 503, {"Retry-After": "5"}


def _count_refusal(reason: int | str) -> None:
    """One metric per refusal reason; best effort (the refusal must be sent even without Redis)."""
    p = parts()
    with contextlib.suppress(StoreUnavailableError):
        p.metrics.apply([p.metrics.op("requests_refused", endpoint=request.endpoint or "none", reason=str(reason))])


def _throttled(retry_after_s: int, scope: str) -> tuple[str, int, dict[str, str]]:
    """The 429 page for an address (or everyone) that failed too often; logged and counted."""
    _count_refusal("too_many_attempts")
    log.warning(
        "admin login throttled",
        extra={"path": request.path, "client": request.remote_addr, "scope": scope, "retry_after_s": retry_after_s},
    )
    message = f"Too many failed logins. Try again in {retry_after_s} seconds."
    return render_template("admin/error.html", status=429, message=message), 429, {"Retry-After": str(retry_after_s)}


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int, dict[str, str]]:
    """The login form; the correct admin token starts a session and goes on to ``next`` (an admin page).

    An address that failed too often, or everyone once all addresses together did, gets a 429 whatever
    token it sends, until the window ends (``hublink.ops.throttle``).
    """
    p = parts()
    expected = p.settings.admin_token
    if not expected:
        flash("HUBLINK_ADMIN_TOKEN is not set, so the dashboard is disabled.")
    elif request.method == "POST":
        address = request.remote_addr or "unknown"
        verdict = p.login_throttle.check(address)
        if not verdict.allowed:
            return _throttled(verdict.retry_after_s, verdict.scope)
        presented = request.form.get("token", "")
        if hmac.compare_digest(presented.encode(), expected.encode()):
            # A fresh session (new id) and CSRF token at the change of privilege: nothing from before carries over.
            session.clear()
            regenerate = getattr(session, "regenerate", None)
            if regenerate is not None:
                regenerate()
            session.update(admin=True, since=time.time(), mark=_token_mark(expected))
            session.permanent = True
            csrf_token()
            return redirect(_safe_next(request.args.get("next", "")))
        by_address, in_total = p.login_throttle.fail(address)
        log.info(
            "admin login refused",
            extra={
                "path": request.path,
                "reason": "wrong token",
                "client": address,
                "failures": by_address,
                "failures_total": in_total,
            },
        )
        flash("Wrong token.")
    return render_template("admin/login.html")


def is_clean_local_path(target: str) -> bool:
    """True for a path on this site: one leading ``/``, no ``//``, no backslash, no control character.

    So no scheme or host (``https://x``, ``//x``, ``/\\x``), and nothing that could split a header (CR, LF).
    """
    return (
        target.startswith("/")
        and "//" not in target
        and "\\" not in target
        and all(0x20 <= ord(c) != 0x7F for c in target)
    )


def _safe_next(target: str) -> str:
    """``target`` if it is a clean local path under /admin, else the overview (no open redirect, no header split)."""
    path = target.split("?", 1)[0]
    if is_clean_local_path(target) and (path == "/admin" or path.startswith("/admin/")):
        return target
    return url_for("admin.index")


@bp.post("/logout")
def logout() -> Response:
    """End the session: deleted from Redis first, so a copied cookie opens nothing afterwards (or a 503)."""
    sid = getattr(session, "sid", None)
    if sid and not getattr(session, "new", True):
        parts().sessions.delete(sid)
    session.clear()
    regenerate = getattr(session, "regenerate", None)
    if regenerate is not None:
        regenerate()  # the "Logged out." message goes in a new anonymous session, never under the old id
    flash("Logged out.")
    return redirect(url_for("admin.login"))


@bp.get("")
def index() -> str:
    """Queue depths, the last hour's charts, rate-limit headroom, recent failures."""
    p = parts()
    data = dashboard.overview(
        p.redis, p.keys, queue_name=p.settings.queue_name, dead_letters=p.dead_letters, metrics=p.metrics
    )
    return render_template(
        "admin/overview.html", o=data, pauses=controls.pauses().list(), circuits=read_circuits(p.redis, p.keys)
    )


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
        flash(f"No dead letter {letter_id}: it was replayed, purged or has expired.")
        return redirect(url_for("admin.dead_letters"))
    if request.form.get("confirmed") != "yes":
        target = url_for("admin.act_on_one", letter_id=letter_id, action=action)
        return render_template("admin/confirm.html", action=action, count=1, letter=letter.to_wire(), target=target)
    try:
        done = store.replay(letter_id) if action == "replay" else store.delete(letter_id)
    except ValueError as exc:  # a letter whose work could not be read has nothing to replay
        flash(str(exc))
        return redirect(url_for("admin.dead_letters"))
    log.info("admin action", extra={"action": action, "association_id": letter_id, "count": int(done)})
    flash(f"{'Replayed' if action == 'replay' else 'Purged'} {letter_id}." if done else "Nothing to do.")
    return redirect(url_for("admin.dead_letters"))


@bp.post("/backfills/<string(length=16):backfill_id>/cancel")
def cancel_backfill(backfill_id: str) -> Response:
    """Ask a running backfill to stop before its next page (it can be resumed from the command line)."""
    done = RedisBackfills(parts().redis, parts().keys).request_cancel(backfill_id)
    log.info("admin action", extra={"action": "cancel backfill", "backfill": backfill_id, "count": int(done)})
    flash(f"Backfill {backfill_id}: cancel requested." if done else f"No backfill {backfill_id}.")
    return redirect(url_for("admin.index"))


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
    flash(f"{'Replayed' if action == 'replay' else 'Purged'} {done} dead letter(s).")
    query: dict[str, Any] = {name: value for name, value in values.items() if value}
    return redirect(url_for("admin.dead_letters", **query))
