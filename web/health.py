"""Blueprint: ``/healthz`` (alive), ``/readyz`` (Redis takes writes) and ``/openapi.yaml``."""

from __future__ import annotations

from pathlib import Path

import redis
from flask import Blueprint, Response, jsonify, send_file

from hublink import __version__
from hublink.store.connections import store_error
from hublink.store.keys import READY_PROBE_TTL_S
from web.parts import parts

bp = Blueprint("health", __name__)
OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"


@bp.get("/healthz")
def healthz() -> Response:
    """Alive: answers without touching Redis, with the version running (the image's label says the same)."""
    return jsonify({"status": "ok", "version": __version__})


@bp.get("/openapi.yaml")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API (``openapi.yaml`` at the repository root)."""
    return send_file(OPENAPI_PATH, mimetype="application/yaml")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready to accept work: Redis takes a tiny write (a PING passes on a full or read-only Redis); 503 otherwise."""
    problems = []
    p = parts()
    try:
        p.probe_redis.set(p.keys.ready_probe, b"1", ex=READY_PROBE_TTL_S)
    except redis.RedisError as exc:
        typed = store_error(exc)
        if typed is None:
            raise
        problems.append(f"redis: {type(typed).__name__} ({type(exc).__name__}): {typed}")
    if problems:
        return jsonify({"status": "unavailable", "problems": problems}), 503
    return jsonify({"status": "ready"}), 200
