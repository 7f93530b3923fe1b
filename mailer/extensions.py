"""Flask extensions: CSRF created unbound; rate limits declared on views, bound per app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

View = TypeVar("View", bound=Callable[..., Any])
LimitValue = str | Callable[[], str]
RATE_LIMITS_ATTRIBUTE = "mailer_rate_limits"


def rate_limit(
    value: LimitValue, *, key_func: Callable[[], str] | None = None, **options: Any
) -> Callable:
    """Declares a rate limit on a view; init_limiter() binds it to each app's own storage.

    A Limiter holds one storage, and the factory builds several apps in one
    process (the CLI, the tests), each with its own Redis: so each app gets a
    Limiter of its own, and the views only say what their limits are.
    """

    def declare(view: View) -> View:
        limits = view.__dict__.setdefault(RATE_LIMITS_ATTRIBUTE, [])
        limits.insert(0, (value, key_func, options))  # decorators apply bottom-up
        return view

    return declare


def init_limiter(app: Flask) -> Limiter:
    """A Limiter for this app, wrapping every view that declared limits."""
    limiter = Limiter(key_func=get_remote_address, key_prefix="mailer-limits", app=app)
    for endpoint, view in list(app.view_functions.items()):
        limited: Callable[..., Any] = view
        for value, key_func, options in getattr(view, RATE_LIMITS_ATTRIBUTE, ()):
            limited = limiter.limit(value, key_func=key_func, **options)(limited)
        app.view_functions[endpoint] = limited
    app.extensions["mailer.limiter"] = limiter
    return limiter
