"""Blueprint: ``/healthz`` (the process is alive) and ``/readyz`` (Redis answers, configuration loaded)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from hublink.connections import UNAVAILABLE
from web.container import parts

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Alive: answers without touching Redis."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready to accept work: 503 with the reasons otherwise."""
    problems = []
    try:
        parts().redis.ping()
    except UNAVAILABLE as exc:
        problems.append(f"redis: {type(exc).__name__}")
    if problems:
        return jsonify({"status": "unavailable", "problems": problems}), 503
    return jsonify({"status": "ready"}), 200
