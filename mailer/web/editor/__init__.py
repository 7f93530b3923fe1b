"""The editor's console: log in, see what will go out, send it, watch it go.

One blueprint (`blueprint.py`, which asks for a login on every page), its pages in
one module per part of the console.
"""

from mailer.web.editor import account, newsletter, readers, sections
from mailer.web.editor.account import open_session
from mailer.web.editor.blueprint import bp

__all__ = ["account", "bp", "newsletter", "open_session", "readers", "sections"]
