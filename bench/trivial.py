"""The signup baseline: a trivial Flask view behind the same gunicorn configuration."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/subscribe")
def subscribe():
    data = request.get_json(silent=True) or {}
    return jsonify(status="ok", email=str(data.get("email", ""))), 202


@app.get("/subscribe")
def form():
    return '<input type="hidden" name="csrf_token" value="none">'
