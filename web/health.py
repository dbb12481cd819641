"""Blueprint: ``/healthz`` (alive), ``/readyz`` (Redis answers, configuration loaded) and ``/openapi.yaml``."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, jsonify, send_file

from hublink.store.connections import UNAVAILABLE
from web.container import parts

bp = Blueprint("health", __name__)
OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"


@bp.get("/healthz")
def healthz() -> Response:
    """Alive: answers without touching Redis."""
    return jsonify({"status": "ok"})


@bp.get("/openapi.yaml")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API (``openapi.yaml`` at the repository root)."""
    return send_file(OPENAPI_PATH, mimetype="application/yaml")


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
