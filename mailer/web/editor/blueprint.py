"""The console's blueprint: every page under /editor needs a logged-in editor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from mailer.access import editors
from mailer.platform.errors import UserError

bp = Blueprint("editor", __name__, url_prefix="/editor")

OPEN_ENDPOINTS = {"editor.login", "editor.login_post"}


@bp.before_request
def _require_login() -> ResponseReturnValue | None:
    editor = editors.editor_of_session(session.get("editor_id"), session.get("epoch"))
    if editor is not None:
        g.editor = editor
        return None
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if request.method == "GET" and not request.path.endswith(".json"):
        return redirect(url_for("editor.login", next=request.full_path.rstrip("?")))
    abort(401)


def change_and_go_back(
    change: Callable[[], object], success: str, page: str, **values: Any
) -> ResponseReturnValue:
    """Runs an editor's change; the page they go back to says how it went."""
    try:
        change()
    except UserError as error:
        flash(error.message, "error")
    else:
        flash(success, "ok")
    return redirect(url_for(page, **values))
