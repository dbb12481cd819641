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
