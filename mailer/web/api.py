"""The JSON API for the site: push articles, trigger and watch digests. Bearer-token only."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from mailer import delivery, sections
from mailer.access import api_tokens
from mailer.content import articles
from mailer.content import draft as editorial
from mailer.digests import runs as digests
from mailer.platform.errors import InvalidInput, UnsupportedContentType, UserError

bp = Blueprint("api", __name__, url_prefix="/api")


class Unauthorized(UserError):
    status = 401
    title = "Unauthorized"


@bp.before_request
def _authenticate() -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    api_token = api_tokens.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if api_token is None:
        raise Unauthorized("A valid API token is required: 'Authorization: Bearer <token>'.")
    g.api_token_name = api_token.name


@bp.after_request
def _challenge(response):
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="mailer"'
    return response


@bp.post("/articles")
def create_article():
    if not request.is_json:
        raise UnsupportedContentType("Send the article as JSON (Content-Type: application/json).")
    data = articles.parse_article(request.get_json(silent=True))
    article, created = articles.accept_article(data, source=f"api:{g.api_token_name}")
    body = {"id": article.id, "url": article.url, "created": created}
    return jsonify(body), 201 if created else 200


@bp.post("/digests")
def create_digest():
    options = request.get_json(silent=True) if request.data else {}
    if not isinstance(options, dict):
        raise InvalidInput(
            "Send nothing, or a JSON object with 'subject', 'intro' and 'frequency'."
        )
    unknown = sorted(set(options) - {"subject", "intro", "frequency"})
    if unknown:
        raise InvalidInput(
            f"Unknown fields: {', '.join(unknown)}. Allowed: frequency, intro, subject."
        )
    digest_id = digests.create_digest(
        trigger=f"api:{g.api_token_name}",
        subject=editorial.clean_subject(options.get("subject")),
        intro=editorial.clean_intro(options.get("intro")),
        frequency=sections.parse_frequency(options.get("frequency")),
    )
    return jsonify(delivery.digest_progress(digest_id)), 202


@bp.get("/digests/<int:digest_id>")
def show_digest(digest_id: int):
    return jsonify(delivery.digest_progress(digest_id))
