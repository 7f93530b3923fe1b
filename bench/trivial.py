"""The signup baseline: the same durable work as a signup (one INSERT, one COMMIT on the
same database), in a Flask view behind the same gunicorn command line, and nothing else."""

import os

from flask import Flask, jsonify, request
from sqlalchemy import create_engine, text

from mailer.platform.settings import normalize_database_url

# The table is made by bench/signup.py before gunicorn starts (workers would race).
engine = create_engine(normalize_database_url(os.environ["MAILER_DATABASE_URL"]))

app = Flask(__name__)


@app.post("/subscribe")
def subscribe():
    data = request.get_json(silent=True) or {}
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO bench_signups (email) VALUES (:email)"),
            {"email": str(data.get("email", ""))},
        )
    return jsonify(status="ok"), 202


@app.get("/subscribe")
def form():
    return '<input type="hidden" name="csrf_token" value="none">'
