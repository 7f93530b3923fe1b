"""Logging in and out of the console."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, g, redirect, render_template, request, session, url_for
from flask.sessions import SessionMixin

from mailer.access import editors
from mailer.web.editor.blueprint import bp
from mailer.web.rate_limits import PER_NETWORK, Per, rate_limit, remote_address

# Only failed attempts count. Each costs an Argon2 check (0.15 s of a web worker), so a
# network's addresses share one budget, read before the check.
LOGIN_LIMIT_PER_NETWORK = "30 per minute;150 per hour"
LOGIN_LIMIT_PER_IP = "20 per minute;100 per hour"
LOGIN_LIMIT_PER_ADDRESS_AND_IP = "10 per minute;50 per hour"


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to another host."""
    if target and target.isprintable() and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/editor"):
            return target
    return url_for("editor.dashboard")


def _login_address_and_ip() -> str:
    """Failed logins count per address and IP: guessing from one place is slowed down,
    and nobody elsewhere can lock the real editor out by failing on purpose."""
    address = str(request.form.get("email", "")).strip().lower()
    return f"{address}\0{remote_address()}"


PER_ADDRESS_AND_IP = Per("address-ip", _login_address_and_ip)


def _failed(response: Response) -> bool:
    return response.status_code == 401


@bp.get("/login")
def login():
    if "editor" in g:
        return redirect(url_for("editor.dashboard"))
    return render_template("editor/login.html", next=request.args.get("next", ""))


@bp.post("/login")
@rate_limit(LOGIN_LIMIT_PER_NETWORK, per=PER_NETWORK, counts=_failed)
@rate_limit(LOGIN_LIMIT_PER_IP, counts=_failed)
@rate_limit(LOGIN_LIMIT_PER_ADDRESS_AND_IP, per=PER_ADDRESS_AND_IP, counts=_failed)
def login_post():
    editor = editors.authenticate(
        str(request.form.get("email", "")), str(request.form.get("password", ""))
    )
    if editor is None:
        # One message for an unknown address and a wrong password.
        error = "That email and password do not match an editor account."
        page = render_template("editor/login.html", error=error, next=request.form.get("next", ""))
        return page, 401
    open_session(session, editor.id, editor.session_epoch)
    return redirect(_safe_next(request.form.get("next")))


def open_session(store: SessionMixin, editor_id: int, epoch: int) -> None:
    """What a successful login keeps in the session cookie."""
    store.clear()  # no session fixation: a fresh session for the editor
    store["editor_id"] = editor_id
    store["epoch"] = epoch  # a logout moves the editor's epoch on: this cookie then dies
    store.permanent = True


@bp.post("/logout")
def logout():
    editors.end_sessions(g.editor.id)  # a copy of the cookie taken earlier dies too
    session.clear()
    return redirect(url_for("editor.login"))
