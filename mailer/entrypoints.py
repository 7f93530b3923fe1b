"""How each process starts: logging is configured once, then the app is built.

web:     gunicorn --config python:mailer.gunicorn_config 'mailer.entrypoints:web_app()'
command: mailer ...                       (mailer.entrypoints:main)
worker and beat: celery --app workers.app  (workers/app.py, which calls worker_app())
"""

from __future__ import annotations

import logging

from flask import Flask
from flask.cli import FlaskGroup

from mailer import create_app
from mailer.platform import stack_settings
from mailer.platform.logs import configure_logging
from mailer.platform.settings import ConfigError, load_settings


def _app_with_logging() -> Flask:
    settings = load_settings()
    configure_logging(settings.log_level)
    if settings.env == "production" and not settings.postal_address:
        logging.getLogger("mailer").warning(
            "MAILER_POSTAL_ADDRESS is empty: newsletters go out without the postal address "
            "the law asks for in commercial mail (CAN-SPAM) and readers expect"
        )
    return create_app(settings)


def web_app() -> Flask:
    """The WSGI app gunicorn serves."""
    return _app_with_logging()


def worker_app() -> Flask:
    """The app a Celery worker or beat runs its tasks in."""
    app = _app_with_logging()
    with app.app_context():
        stack_settings.publish()  # what `mailer send-digest` compares its own settings with
    return app


def main() -> None:
    """The `mailer` command. A setting that is missing or wrong is one line, not a traceback."""
    try:
        load_settings()  # checked first, or Flask would print its traceback while listing commands
    except ConfigError as exc:
        raise SystemExit(f"mailer: {exc}") from None
    FlaskGroup(create_app=_app_with_logging, add_default_commands=True, load_dotenv=False)()
