"""The one handler that turns any error a user can cause into a page or JSON."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, ServiceUnavailable, TooManyRequests

from mailer.platform.errors import UserError


def wants_json() -> bool:
    if request.is_json or request.blueprint == "api":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(
    status: int, title: str, message: str, *, page: dict[str, object] | None = None
) -> Response:
    """JSON `{"error": message}`, or the error page; `page` is what only the page shows."""
    if wants_json():
        response = jsonify(error=message)
    else:
        response = Response(
            render_template("pages/error.html", title=title, message=message, **(page or {}))
        )
    response.status_code = status
    return response


# Messages for the HTTP errors a reader can run into, in plain words.
HTTP_MESSAGES = {
    400: "The request could not be understood.",
    404: "There is nothing at this address.",
    405: "That action is not allowed here.",
    413: "That was far too much data for this form.",
    415: "Please send the form, or JSON with the Content-Type application/json.",
    429: "Too many attempts. Please wait a little and try again.",
    503: "We cannot take this request just now. Nothing was changed: please try again in a minute.",
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(UserError)
    def _user_error(error: UserError) -> Response:
        page: dict[str, object] = {"offer_signup": error.offer_signup}  # pages only, not JSON
        return error_response(error.status, error.title, error.message, page=page)

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError) -> Response:
        return error_response(
            400,
            "This form has expired",
            "The form was missing its security token or it had expired. "
            "Please reload the page and try again.",
        )

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = HTTP_MESSAGES.get(status, error.description or "")
        response = error_response(status, error.name, message)
        if isinstance(error, TooManyRequests | ServiceUnavailable) and error.retry_after:
            response.headers["Retry-After"] = str(error.retry_after)
        return response
