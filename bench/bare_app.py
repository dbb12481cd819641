"""The baseline web app: a bare Flask endpoint that parses JSON and answers 202, nothing else."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request


def create_app() -> Flask:
    """One route, the least a JSON intake can do."""
    app = Flask(__name__)

    @app.post("/api/associations")
    def accept() -> tuple[Response, int]:
        body = request.get_json(force=True)
        return jsonify({"accepted": len(body.get("associations", []))}), 202

    return app


def create_rpush_app() -> Flask:
    """Calibration: the bare endpoint plus one raw RPUSH of the body, the least any durable intake can do."""
    import os

    import redis

    app = Flask(__name__)
    client = redis.Redis.from_url(os.environ["REDIS_URL"])

    @app.post("/api/associations")
    def accept() -> tuple[Response, int]:
        body = request.get_json(force=True)
        client.rpush("bench:rpush", request.get_data())
        return jsonify({"accepted": len(body.get("associations", []))}), 202

    return app
