"""Logging, configured once per process (web, worker, beat, the CLI) from MAILER_LOG_LEVEL."""

from __future__ import annotations

import logging.config

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """One format on standard error for mailer's own lines and every library's."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "line": {
                    "format": "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
                }
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "line",
                    "stream": "ext://sys.stderr",
                }
            },
            "root": {"level": level, "handlers": ["stderr"]},
            # Libraries speak at WARNING unless mailer's own level is quieter still.
            "loggers": {
                name: {"level": max(logging.getLevelName(level), logging.WARNING)}
                # flufl.bounce logs a line per detector per message at INFO.
                for name in ("urllib3", "amqp", "kombu", "flufl.bounce", "mail.log")
            },
        }
    )
