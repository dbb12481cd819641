"""The dashboard's blueprint and its frame: every page needs a logged-in operator and every POST its CSRF token.

Security headers go on every answer, pages are never cached, and refusals are pages (counted and logged as
the API's are). The routes are in the modules beside this one.
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

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from hublink.domain.errors import StoreUnavailableError
from web.parts import parts

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static")
log = logging.getLogger("hublink.web")

#: How long a login lasts, used or not (the cookie's lifetime is the same).
SESSION_LIFETIME = timedelta(hours=8)
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


def csrf_token() -> str:
    """The session's CSRF token, created on first use; every form renders it as a hidden field."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


def token_mark(token: str) -> str:
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
    return fresh and hmac.compare_digest(str(session.get("mark", "")), token_mark(expected))


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
    count_refusal(status)
    log.info("admin request refused", extra={"status": status, "path": request.path, "reason": exc.description})
    return render_template("admin/error.html", status=status, message=exc.description), status


@bp.errorhandler(StoreUnavailableError)
def _store_down(exc: StoreUnavailableError) -> tuple[str, int, dict[str, str]]:
    """Without Redis there is nothing to show: a 503 page."""
    log.warning("admin page without Redis", extra={"path": request.path, "reason": str(exc)})
    message = "Redis is not answering, so there is nothing to show. Try again shortly."
    return render_template("admin/error.html", status=503, message=message), 503, {"Retry-After": "5"}


def count_refusal(reason: int | str) -> None:
    """One metric per refusal reason; best effort (the refusal must be sent even without Redis)."""
    p = parts()
    with contextlib.suppress(StoreUnavailableError):
        p.metrics.apply([p.metrics.op("requests_refused", endpoint=request.endpoint or "none", reason=str(reason))])


def throttled(retry_after_s: int, scope: str) -> tuple[str, int, dict[str, str]]:
    """The 429 page for an address (or everyone) that failed too often; logged and counted."""
    count_refusal("too_many_attempts")
    log.warning(
        "admin login throttled",
        extra={"path": request.path, "client": request.remote_addr, "scope": scope, "retry_after_s": retry_after_s},
    )
    message = f"Too many failed logins. Try again in {retry_after_s} seconds."
    return render_template("admin/error.html", status=429, message=message), 429, {"Retry-After": str(retry_after_s)}
