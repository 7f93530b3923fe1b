"""The worker entry point (`celery --app workers.app ...`): the one place that builds the app."""

import workers.tasks  # noqa: F401 - shared tasks bind to the app built below
from mailer import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
