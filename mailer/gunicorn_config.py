"""gunicorn's settings for the Procfile's `web` (`gunicorn --config python:mailer.gunicorn_config`),
taken from mailer's own, so MAILER_WEB_BIND and MAILER_WEB_WORKERS are read (environment, then
.env) and checked like every other variable. Options on gunicorn's command line still win."""

from __future__ import annotations

from mailer.platform.settings import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as exc:
    # gunicorn would print a traceback for any Exception; SystemExit is one line.
    raise SystemExit(f"mailer: {exc}") from None

bind = [_settings.web_bind]
workers = _settings.web_workers
accesslog = "-"
logger_class = "mailer.web.access_log.RedactingLogger"  # reader tokens kept out of the log
