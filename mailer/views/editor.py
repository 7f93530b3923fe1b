"""The editor's console: log in, see what will go out, send it, watch it go."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.sessions import SessionMixin
from flask.typing import ResponseReturnValue
from flask_limiter.util import get_remote_address

from mailer import (
    articles,
    charts,
    digest_controls,
    digests,
    editors,
    emails,
    jobs,
    readers,
    scheduler,
    subscriber_csv,
    subscriptions,
)
from mailer.errors import InvalidInput, UserError
from mailer.extensions import rate_limit
from mailer.models import SubscriberStatus
from mailer.views import framed_html
from mailer.views.inputs import page_number

bp = Blueprint("editor", __name__, url_prefix="/editor")

# Only failed attempts count.
LOGIN_LIMIT_PER_IP = "20 per minute;100 per hour"
LOGIN_LIMIT_PER_ADDRESS_AND_IP = "10 per minute;50 per hour"
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


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to another host."""
    if target and target.isprintable() and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/editor"):
            return target
    return url_for("editor.dashboard")


def _login_address_and_ip_key() -> str:
    """Failed logins count per address and IP: guessing from one place is slowed down,
    and nobody elsewhere can lock the real editor out by failing on purpose."""
    address = str(request.form.get("email", "")).strip().lower()
    return f"login:{address}:{get_remote_address()}"


def _failed(response: Response) -> bool:
    return response.status_code == 401


@bp.get("/login")
def login():
    if "editor" in g:
        return redirect(url_for("editor.dashboard"))
    return render_template("editor/login.html", next=request.args.get("next", ""))


@bp.post("/login")
@rate_limit(LOGIN_LIMIT_PER_IP, deduct_when=_failed)
@rate_limit(LOGIN_LIMIT_PER_ADDRESS_AND_IP, key_func=_login_address_and_ip_key, deduct_when=_failed)
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


@bp.get("/")
def dashboard():
    recent = digests.recent_digests(10)
    days, signups, leaving = readers.daily_activity(90)
    chart = charts.daily_lines_svg(
        days,
        {"signups": (signups, "#146c2e"), "unsubscribes": (leaving, "#b3261e")},
        "Signups and unsubscribes per day, last 90 days",
    )
    return render_template(
        "editor/dashboard.html",
        chart=chart,
        last_bounces=readers.last_digest_bounces(),
        counts=subscriptions.count_by_status(),
        waiting=articles.waiting_articles(),
        recent=[digests.progress(d.id) for d in recent],
    )


@bp.get("/articles")
def article_list():
    return render_template(
        "editor/articles.html",
        waiting=articles.waiting_articles(),
        sent=articles.recently_sent(),
    )


@bp.post("/articles")
def article_add():
    data = {k: request.form.get(k, "").strip() or None for k in ("title", "url", "summary")}
    try:
        _article, created = articles.accept_article(
            articles.parse_article(data), source=f"editor:{g.editor.email}"
        )
    except InvalidInput as error:
        flash(error.message, "error")
        return redirect(url_for("editor.article_list"))
    flash("Article added." if created else "That article was already there.", "ok")
    return redirect(url_for("editor.article_list"))


@bp.post("/articles/<int:article_id>/remove")
def article_remove(article_id: int):
    if articles.remove_article(article_id):
        flash("Removed from the next digest.", "ok")
    else:
        flash("That article was already sent or removed.", "error")
    return redirect(url_for("editor.article_list"))


@bp.get("/digest")
def next_digest():
    preview = digests.preview()
    return render_template(
        "editor/next_digest.html",
        preview=preview,
        waiting=articles.waiting_articles(current_app.config["MAILER"].digest_max_articles),
        readers=subscriptions.count_by_status()["active"],
    )


@bp.get("/digest/preview.html")
def preview_html():
    preview = digests.preview()
    if preview is None:
        abort(404)
    return framed_html(preview.html.replace(emails.UNSUBSCRIBE_SLOT, "#"))


@bp.post("/digest/test")
def send_test():
    try:
        address = subscriptions.normalize_address(request.form.get("email"))
    except InvalidInput as error:
        flash(error.message, "error")
        return redirect(url_for("editor.next_digest"))
    jobs.enqueue(jobs.SEND_TEST, address.email, g.editor.email)
    flash(f"A test of the next digest is on its way to {address.email}.", "ok")
    return redirect(url_for("editor.next_digest"))


@bp.post("/digest/send")
def send_digest():
    readers = subscriptions.count_by_status()["active"]
    if request.form.get("readers") != str(readers):
        flash(f"The number of readers changed: it is now {readers}. Check and send again.", "error")
        return redirect(url_for("editor.next_digest"))
    try:
        digest_id = digests.create_digest(trigger=f"editor:{g.editor.email}")
    except UserError as error:
        flash(error.message, "error")
        return redirect(url_for("editor.next_digest"))
    return redirect(url_for("editor.digest_page", digest_id=digest_id))


@bp.get("/digests")
def digest_history():
    recent = digests.recent_digests(100)
    return render_template("editor/digests.html", recent=[digests.progress(d.id) for d in recent])


FAILED_PER_PAGE = 50


@bp.get("/digests/<int:digest_id>")
def digest_page(digest_id: int):
    search = request.args.get("q", "")[:320]
    page = page_number()
    failed, failed_total = digests.failed_deliveries(digest_id, search, page, FAILED_PER_PAGE)
    return render_template(
        "editor/digest.html",
        progress=digests.progress(digest_id),
        articles=digests.digest_articles(digest_id),
        failed=failed,
        failed_total=failed_total,
        search=search,
        page=page,
        pages=max(1, -(-failed_total // FAILED_PER_PAGE)),
    )


DIGEST_ACTIONS = {
    "pause": (digest_controls.pause_digest, "Paused. No new batch will start until you resume."),
    "resume": (digest_controls.resume_digest, "Resumed."),
    "cancel": (
        digest_controls.cancel_digest,
        "Cancelled. Readers not yet reached will not get it.",
    ),
    "retry": (
        digest_controls.retry_failed,
        "Retrying the deliveries that failed on temporary errors.",
    ),
}


@bp.post("/digests/<int:digest_id>/<action>")
def digest_action(digest_id: int, action: str):
    if action not in DIGEST_ACTIONS:
        abort(404)
    change, message = DIGEST_ACTIONS[action]
    try:
        change(digest_id)
    except UserError as error:
        flash(error.message, "error")
    else:
        flash(message, "ok")
    return redirect(url_for("editor.digest_page", digest_id=digest_id))


@bp.get("/digests/<int:digest_id>/progress.json")
def digest_progress(digest_id: int):
    return jsonify(digests.progress(digest_id))


@bp.get("/subscribers")
def subscriber_list():
    status = request.args.get("status", "")
    if status not in {"", *(s.value for s in SubscriberStatus)}:
        status = ""
    found = readers.search(request.args.get("q", "")[:320], status, page_number())
    return render_template(
        "editor/subscribers.html", found=found, q=request.args.get("q", ""), status=status
    )


@bp.get("/subscribers/<int:subscriber_id>")
def subscriber_page(subscriber_id: int):
    reader, events = readers.history(subscriber_id)
    return render_template("editor/subscriber.html", reader=reader, events=events)


@bp.post("/subscribers/<int:subscriber_id>/unsubscribe")
def subscriber_unsubscribe(subscriber_id: int):
    subscriptions.unsubscribe(subscriber_id)
    flash("Unsubscribed. They will get no more digests.", "ok")
    return redirect(url_for("editor.subscriber_page", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/reactivate")
def subscriber_reactivate(subscriber_id: int):
    if readers.reactivate(subscriber_id):
        flash("Active again: the next digest goes to this address.", "ok")
    else:
        flash("Only a bounced reader can be re-activated.", "error")
    return redirect(url_for("editor.subscriber_page", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/erase")
def subscriber_erase(subscriber_id: int):
    readers.erase(subscriber_id)
    flash("Erased: the reader and their data are gone. Imports cannot bring them back.", "ok")
    return redirect(url_for("editor.subscriber_list"))


@bp.get("/subscribers/export.csv")
def subscriber_export():
    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in readers.export_rows():
            writer.writerow(row)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    response = Response(stream_with_context(lines()), mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=subscribers.csv"
    return response


@bp.get("/subscribers/import")
def import_form():
    return render_template("editor/import.html")


@bp.post("/subscribers/import")
def import_upload():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a CSV file to import.", "error")
        return redirect(url_for("editor.import_form"))
    try:
        import_id = subscriber_csv.upload(upload.filename, upload.read(), g.editor.email)
    except InvalidInput as error:
        return render_template("editor/import.html", error=error.message), 400
    return redirect(url_for("editor.import_page", import_id=import_id))


@bp.get("/subscribers/imports/<int:import_id>")
def import_page(import_id: int):
    return render_template("editor/import_status.html", job=subscriber_csv.state(import_id))


@bp.get("/subscribers/imports/<int:import_id>/state.json")
def import_state(import_id: int):
    return jsonify(subscriber_csv.state(import_id))


@bp.post("/subscribers/imports/<int:import_id>/start")
def import_start(import_id: int):
    try:
        subscriber_csv.start(import_id)
    except InvalidInput as error:
        flash(error.message, "error")
    return redirect(url_for("editor.import_page", import_id=import_id))


@bp.get("/schedule")
def schedule_page():
    current, zone = scheduler.current_schedule()
    return render_template("editor/schedule.html", current=current, zone=zone)


@bp.post("/schedule")
def schedule_save():
    text = "" if request.form.get("off") else request.form.get("schedule", "")
    try:
        scheduler.set_schedule(
            text, request.form.get("timezone", "UTC").strip() or "UTC", changed_by=g.editor.email
        )
    except InvalidInput as error:
        flash(error.message, "error")
    else:
        flash("The schedule is off." if not text.strip() else "Schedule saved.", "ok")
    return redirect(url_for("editor.schedule_page"))
