"""Flask extensions, created unbound and initialised in create_app()."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, has_app_context
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect


def _per_app(name: str) -> property:
    def get(self: Limiter) -> Any:
        if has_app_context():
            state = current_app.extensions.get("mailer.limiter")
            if state is not None:
                return state[name]
        return self.__dict__.get(name)

    def set_(self: Limiter, value: Any) -> None:
        self.__dict__[name] = value

    return property(get, set_)


class PerAppLimiter(Limiter):
    """Flask-Limiter keeps one storage per Limiter; this keeps it per app.

    The factory can build several apps in one process (the CLI, the tests), each
    with its own Redis; without this the last one built would count for all.
    """

    _storage = _per_app("_storage")
    _limiter = _per_app("_limiter")

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        app.extensions["mailer.limiter"] = {
            "_storage": self.__dict__["_storage"],
            "_limiter": self.__dict__["_limiter"],
        }


csrf = CSRFProtect()
limiter = PerAppLimiter(key_func=get_remote_address, key_prefix="mailer-limits")
