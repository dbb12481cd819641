"""The dashboard's rules page: the published rules, a draft to check and preview, publish and roll back.

The draft is a textarea carried in every form post (nothing is kept between pages). **Check** lists every
problem with its line (``hublink.config.rule_versions.check``, as ``hublink rules check`` finds them);
**Preview** runs the draft beside the published rules over the last events of the history
(``hublink.ops.rules_preview``); **Publish** (with a comment) and **Roll back** pass through a confirmation
page showing the diff, append a version (``hublink.intake.rule_versions``) and write the audit log. The
versions, each with its author, time, comment and diff, are the rules' own audit trail.

With ``HUBLINK_RULES_SOURCE=file`` the page is read-only: check and preview work, publishing does not.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hublink.config.rule_versions import (
    MAX_COMMENT_CHARS,
    Problem,
    RulesRejected,
    subscriptions_needed,
    unified_diff,
)
from hublink.domain.rules import RulesError
from hublink.ops.rules_preview import DEFAULT_LIMIT, MAX_LIMIT, Published, preview
from web.admin.blueprint import bp
from web.audit import actor, audit
from web.parts import parts
from web.rules_drafts import draft_problems, published_rules, rules_source, versions

log = logging.getLogger("hublink.web")

#: Versions listed on the page, newest first, each with its diff.
SHOWN_VERSIONS = 20
#: Longest filter value taken from the preview form.
MAX_FILTER_CHARS = 100


def _draft() -> str:
    """The draft as posted; browsers send a textarea's lines with CRLF, the rules are kept with LF."""
    return request.form.get("text", "").replace("\r\n", "\n").replace("\r", "\n")


def _comment() -> str:
    """The publish or rollback comment as posted."""
    return request.form.get("comment", "").strip()


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff as (css class, line) pairs, for the template to colour without inline styles."""
    shown = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        else:
            kind = {"+": "add", "-": "del"}.get(line[:1], "same")
        shown.append((kind, line))
    return shown


def _page(
    draft: str | None = None,
    *,
    problems: list[Problem] | None = None,
    checked: bool = False,
    result: dict[str, Any] | None = None,
    filters: dict[str, str] | None = None,
    comment: str = "",
    status: int = 200,
) -> tuple[str, int]:
    """The rules page: the published rules, the draft (default: the published text) and what was asked of it."""
    p = parts()
    source = rules_source(p)
    published = published_rules(p)
    listed = []
    current = None
    news: list[dict[str, Any]] = []
    if source == "redis":
        store = versions(p)
        current = store.published()
        for item in store.versions(SHOWN_VERSIONS):
            full = store.get(item.version) or item
            listed.append({**full.to_wire(), "diffLines": diff_lines(full.diff)})
        just = request.args.get("published", "")
        if just.isdigit() and (version := store.get(int(just))) is not None:
            before = store.get(version.version - 1)
            news = subscriptions_needed(version.text, before.text if before else None)
    return render_template(
        "admin/rules.html",
        source=source,
        published=published,
        current=current.to_wire() if current else None,
        draft=published.text or "" if draft is None else draft,
        problems=problems,
        checked=checked,
        result=result,
        filters=filters or {"limit": str(DEFAULT_LIMIT), "source": "", "subscriptionType": ""},
        comment=comment,
        versions=listed,
        news=news,
        rules_file=p.settings.rules_file,
        max_limit=MAX_LIMIT,
        max_comment=MAX_COMMENT_CHARS,
    ), status


@bp.get("/rules")
def rules() -> tuple[str, int]:
    """The published rules, the editor with the published text as its draft, and the versions."""
    return _page()


@bp.post("/rules/check")
def check_rules() -> tuple[str, int]:
    """Every problem of the draft, with its line."""
    draft = _draft()
    return _page(draft, problems=draft_problems(parts(), draft), checked=True, comment=_comment())


@bp.post("/rules/preview")
def preview_rules() -> tuple[str, int]:
    """The draft beside the published rules over the last N events (default 200), by source and type."""
    draft = _draft()
    filters = {name: request.form.get(name, "").strip() for name in ("limit", "source", "subscriptionType")}
    problems = draft_problems(parts(), draft)
    if problems:
        flash(f"Nothing previewed: the check finds {len(problems)} problem(s).")
        return _page(draft, problems=problems, checked=True, filters=filters, comment=_comment(), status=422)
    limit_text = filters["limit"] or str(DEFAULT_LIMIT)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        flash(f"Nothing previewed: events: expected a number from 1 to {MAX_LIMIT}, got {limit_text[:20]!r}.")
        return _page(draft, filters=filters, comment=_comment(), status=400)
    for name in ("source", "subscriptionType"):
        if len(filters[name]) > MAX_FILTER_CHARS:
            flash(f"Nothing previewed: {name}: at most {MAX_FILTER_CHARS} characters.")
            return _page(draft, filters=filters, comment=_comment(), status=400)
    p = parts()
    try:
        result = preview(
            draft,
            published_rules(p).text,
            p.history,
            limit=int(limit_text),
            source=filters["source"] or None,
            subscription_type=filters["subscriptionType"] or None,
            own_app_id=p.settings.hubspot_app_id,
        )
    except RulesError as exc:  # the published rules no longer check (a file edited in place)
        flash(f"Nothing previewed: the published rules do not check: {exc.problems[0]}")
        return _page(draft, filters=filters, comment=_comment(), status=409)
    return _page(draft, result=result, filters=filters, comment=_comment())


def _is_confirmed(published: Published) -> bool:
    """True for the confirmation page's POST, made against the version still published.

    The page showed the diff against one version; when another was published meanwhile, the diff is
    shown again against it rather than publishing over a change the operator has not seen.
    """
    if request.form.get("confirmed") != "yes":
        return False
    if request.form.get("base", "") != str(published.version or 0):
        flash(f"v{published.version} was published meanwhile: here is the diff against it.")
        return False
    return True


def _read_only() -> Response:
    """Publishing and rolling back need the rules in Redis: say how to get there."""
    flash("The rules come from HUBLINK_RULES_FILE: publish by deploying the file, or set HUBLINK_RULES_SOURCE=redis.")
    return redirect(url_for("admin.rules"))


@bp.post("/rules/publish")
def publish_rules() -> Response | tuple[str, int]:
    """Publish the draft as a new version: refused while it has problems; a confirmation page with the diff first."""
    p = parts()
    if rules_source(p) != "redis":
        return _read_only()
    draft, comment = _draft(), _comment()
    problems = draft_problems(parts(), draft)
    if problems:
        audit("rules.publish", "draft", outcome="refused")
        flash(f"Not published: the check finds {len(problems)} problem(s). Fix them and check again.")
        return _page(draft, problems=problems, checked=True, comment=comment, status=422)
    if not comment or len(comment) > MAX_COMMENT_CHARS:
        flash(f"Not published: give a comment (at most {MAX_COMMENT_CHARS} characters): it is kept with the version.")
        return _page(draft, comment=comment[:MAX_COMMENT_CHARS], status=400)
    published = published_rules(p)
    if draft == (published.text or ""):
        flash("Nothing to publish: the draft is the published version.")
        return _page(draft, comment=comment, status=409)
    if not _is_confirmed(published):
        after = (published.version or 0) + 1
        diff = unified_diff(published.text or "", draft, old_version=published.version or 0, new_version=after)
        return render_template(
            "admin/confirm_rules.html",
            action="publish",
            version=after,
            published=published,
            diff=diff_lines(diff),
            text=draft,
            comment=comment,
            target=url_for("admin.publish_rules"),
        ), 200
    try:
        version = versions(p).publish(draft, author=actor(), comment=comment, environ=p.live_rules.environ)
    except RulesRejected as exc:  # a secret the sources section names is not set in this process
        audit("rules.publish", "draft", outcome="refused")
        flash(f"Not published: {len(exc.problems)} problem(s).")
        return _page(draft, problems=list(exc.problems), checked=True, comment=comment, status=422)
    audit("rules.publish", f"v{version.version}")
    p.live_rules.refresh()  # this process at once; the others within a second
    log.info("admin action", extra={"action": "rules.publish", "version": version.version})
    flash(f"Published v{version.version}. Web and workers take it up within 2 seconds, without a restart.")
    return redirect(url_for("admin.rules", published=version.version))


@bp.post("/rules/rollback")
def rollback_rules() -> Response | tuple[str, int]:
    """Publish an old version's text again as a new version; a confirmation page with the diff first."""
    p = parts()
    if rules_source(p) != "redis":
        return _read_only()
    wanted = request.form.get("version", "")
    store = versions(p)
    old = store.get(int(wanted)) if wanted.isdigit() and len(wanted) < 19 else None
    if old is None:
        flash(f"Nothing rolled back: no version {wanted[:20]!r}.")
        return redirect(url_for("admin.rules"))
    comment = _comment()[:MAX_COMMENT_CHARS] or f"rollback to v{old.version}"
    published = published_rules(p)
    if not _is_confirmed(published):
        after = (published.version or 0) + 1
        diff = unified_diff(published.text or "", old.text, old_version=published.version or 0, new_version=after)
        return render_template(
            "admin/confirm_rules.html",
            action="rollback",
            version=after,
            rollback_to=old.version,
            published=published,
            diff=diff_lines(diff),
            comment=comment,
            target=url_for("admin.rollback_rules"),
        ), 200
    try:
        version = store.rollback(old.version, author=actor(), comment=comment, environ=p.live_rules.environ)
    except RulesRejected as exc:
        audit("rules.rollback", f"v{old.version}", outcome="refused")
        flash(f"Not rolled back: v{old.version} no longer checks: {exc.problems[0]}")
        return redirect(url_for("admin.rules"))
    audit("rules.rollback", f"v{version.version}")
    p.live_rules.refresh()
    log.info("admin action", extra={"action": "rules.rollback", "version": version.version, "to": old.version})
    flash(f"Rolled back: v{version.version} has the text of v{old.version}.")
    return redirect(url_for("admin.rules", published=version.version))
