"""GET /healthz: 200 only when the database and Redis both answer."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from mailer.platform.db import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    checks = {"database": "ok", "redis": "ok"}
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        client = redis.Redis.from_url(
            current_app.config["MAILER"].redis_url, socket_connect_timeout=2, socket_timeout=2
        )
        client.ping()
        client.close()
    except redis.RedisError as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", **checks), 200 if healthy else 503
