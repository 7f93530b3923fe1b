"""Flask extensions created unbound, bound to each app by the factory."""

from __future__ import annotations

from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
