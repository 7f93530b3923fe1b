"""mailer: a self-hosted newsletter service for independent news sites."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import ServiceUnavailable, UnsupportedMediaType
from werkzeug.middleware.proxy_fix import ProxyFix

from mailer.platform import words
from mailer.platform.db import db
from mailer.platform.jobs import init_celery
from mailer.platform.settings import PROJECT_ROOT, Settings, load_settings
from mailer.web.errors import register_error_handlers
from mailer.web.extensions import csrf
from mailer.web.inputs import init_inputs, refuse_nameless_form_fields
from mailer.web.rate_limits import init_rate_limits

log = logging.getLogger(__name__)

# Bodies a POST may carry; anything else is refused before any view reads it.
ACCEPTED_BODY_TYPES = {
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "application/json",
}


class MailerFlask(Flask):
    """Flask with every request one unit of work: committed when the answer is not an
    error, rolled back when it is, and jobs queued only after the commit."""

    def full_dispatch_request(self) -> Response:
        unit = db.unit_of_work()
        try:
            with unit:
                response = super().full_dispatch_request()
                if response.status_code >= 400:
                    unit.veto()  # bad input changes nothing, whatever ran before the error
        except SQLAlchemyError:
            # The commit itself failed (the database went away): nothing was written.
            log.exception("a request's unit of work could not be committed")
            return self.make_response(self.handle_user_exception(ServiceUnavailable()))
        return response


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    app = MailerFlask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder="static",  # mailer/static: the console's own CSS-free JavaScript
    )
    app.config.update(
        MAILER=settings,
        SECRET_KEY=settings.secret_keys[0],
        # Older keys still open sessions signed before a rotation.
        SECRET_KEY_FALLBACKS=list(settings.secret_keys[1:]),
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_request_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        SESSION_COOKIE_NAME="mailer_session",
        PERMANENT_SESSION_LIFETIME=12 * 3600,  # an editor logs in once a working day
        WTF_CSRF_TIME_LIMIT=None,  # a signup page left open overnight still works
    )
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops
        )

    app.jinja_env.filters["plural"] = words.plural  # {{ n|plural("reader") }}: "1 reader"
    init_inputs(app)
    # Registered before CSRFProtect (which reads the form) so they apply first.
    app.before_request(_refuse_unknown_body_types)
    app.before_request(_allow_large_bodies)
    app.before_request(refuse_nameless_form_fields)
    db.init_app(app)
    csrf.init_app(app)
    init_celery(app)
    register_error_handlers(app)
    app.after_request(_security_headers)

    from mailer.cli import register_commands
    from mailer.web import api, archive, editor, health, public

    app.register_blueprint(public.bp)
    app.register_blueprint(archive.bp)
    app.register_blueprint(editor.bp)
    app.register_blueprint(api.bp)
    # Bearer tokens, no cookies: cross-site requests cannot ride on a session here.
    csrf.exempt(api.bp)
    # The signup checks its CSRF token itself, except from the sites that may embed it.
    csrf.exempt(public.subscribe)
    app.register_blueprint(health.bp)
    if settings.development:
        from mailer.web import devmail

        app.register_blueprint(devmail.bp)
    init_rate_limits(app)  # after the views: it wraps those that declared limits
    register_commands(app)
    return app


# Routes that take more than MAILER_MAX_REQUEST_BYTES: article bodies and CSV uploads.
LARGE_BODY_ENDPOINTS = {
    "api.create_article": 2 * 1024 * 1024,
    "editor.import_upload": 21 * 1024 * 1024,
}


def _allow_large_bodies() -> None:
    if request.endpoint in LARGE_BODY_ENDPOINTS:
        request.max_content_length = LARGE_BODY_ENDPOINTS[request.endpoint]
        request.max_form_memory_size = LARGE_BODY_ENDPOINTS[request.endpoint]


def _refuse_unknown_body_types() -> None:
    body_type = request.mimetype
    if request.method in {"POST", "PUT", "PATCH"} and body_type not in ACCEPTED_BODY_TYPES | {""}:
        raise UnsupportedMediaType()


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # Pages live at URLs that hold tokens; never hand them to another site.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    headers.setdefault("X-Frame-Options", "DENY")
    return response
