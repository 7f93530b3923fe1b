"""Development only: read the mails the local catcher kept, in the browser."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, render_template, request

from mailer.mail.catcher import list_messages, read_message
from mailer.web import framed_html

bp = Blueprint("devmail", __name__, url_prefix="/dev/mail")
NAME = re.compile(r"[0-9]+-[0-9a-f]{8}\.eml")
LOOPBACK = {"127.0.0.1", "::1"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


@bp.before_request
def _this_machine_only() -> None:
    # Every caught mail holds working links: never served beyond the machine itself.
    if request.remote_addr not in LOOPBACK:
        abort(404)
    # A page of another site can make the browser ask for its own name, resolved to
    # 127.0.0.1 (DNS rebinding), and read the answer: only loopback names are served.
    if urlsplit(f"//{request.host}").hostname not in LOOPBACK_NAMES:
        abort(404)


def _directory() -> Path:
    return Path(current_app.config["MAILER"].mail_directory)


def _message_path(name: str) -> Path:
    if not NAME.fullmatch(name) or not (_directory() / name).is_file():
        abort(404)
    return _directory() / name


@bp.get("/")
def inbox():
    return render_template(
        "pages/dev_mail.html", messages=list_messages(_directory()), directory=_directory()
    )


@bp.get("/<name>")
def show(name: str):
    message = read_message(_message_path(name))
    text = message.get_body(preferencelist=("plain",))
    return render_template(
        "pages/dev_mail_message.html",
        name=name,
        headers=list(message.items()),
        text=text.get_content() if text else "",
        has_html=message.get_body(preferencelist=("html",)) is not None,
    )


@bp.get("/<name>/html")
def show_html(name: str):
    html = read_message(_message_path(name)).get_body(preferencelist=("html",))
    if html is None:
        abort(404)
    # The reader follows a link in the mail as from a mail client: the whole tab goes there.
    return framed_html(html.get_content(), links_open="_top")


@bp.get("/<name>/raw")
def show_raw(name: str):
    return Response(_message_path(name).read_bytes(), mimetype="text/plain")
