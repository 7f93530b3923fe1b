"""The worker entry point (`celery --app workers.app ...`): the one place that builds its app."""

from celery.signals import setup_logging

import workers.tasks  # noqa: F401 - shared tasks bind to the app built below
from mailer.entrypoints import worker_app


@setup_logging.connect
def _keep_mailers_logging(**_kwargs: object) -> None:
    """Connected, so Celery leaves the logging that worker_app() configured alone."""


flask_app = worker_app()
celery = flask_app.extensions["celery"]
