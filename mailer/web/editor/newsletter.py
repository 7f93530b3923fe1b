"""The console's newsletter pages: dashboard, articles, the next digest, digests sent."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import escape

from mailer import delivery, sections
from mailer import mail as emails
from mailer.bounces import refusals
from mailer.content import articles
from mailer.content import draft as editorial
from mailer.delivery import controls as digest_controls
from mailer.digests import archive, segments
from mailer.digests import runs as digests
from mailer.digests import schedule as scheduler
from mailer.mail import addresses
from mailer.models import ALL_SECTIONS_KEY, Frequency
from mailer.platform import jobs
from mailer.platform.errors import InvalidInput, UserError
from mailer.subscribers import confirmations as asking
from mailer.subscribers import records as readers
from mailer.subscribers import subscriptions
from mailer.web import charts, framed_html
from mailer.web.editor.blueprint import bp, change_and_go_back
from mailer.web.inputs import page_number


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
        budget_reached_at=asking.budget_reached_at(),
        choices=sections.reader_counts(),
        waiting=articles.waiting_articles(),
        recent=delivery.digests_progress(recent),
    )


@bp.get("/articles")
def article_list():
    return render_template(
        "editor/articles.html",
        waiting=articles.waiting_articles(),
        sent=articles.recently_sent(),
        sections=sections.labels(),
        offered=sections.offered(),
    )


@bp.post("/articles")
def article_add():
    fields = ("title", "url", "summary", "section")
    data = {k: request.form.get(k, "").strip() or None for k in fields}
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
    back = "editor.next_digest" if request.form.get("back") == "digest" else "editor.article_list"
    return redirect(url_for(back))


@bp.post("/digests/<int:digest_id>/archive")
def digest_archive(digest_id: int):
    hidden = request.form.get("hidden") == "1"
    archive.set_hidden(digest_id, hidden)
    flash("Hidden from the public archive." if hidden else "Shown in the public archive.", "ok")
    return redirect(url_for("editor.digest_page", digest_id=digest_id))


@bp.get("/digest")
def next_digest():
    waiting = articles.waiting_in_digest_order(current_app.config["MAILER"].digest_max_articles)
    preview = digests.preview()
    draft = editorial.draft()
    plan = segments.planned(Frequency.DAILY, waiting)
    return render_template(
        "editor/next_digest.html",
        preview=emails.example_copy(preview) if preview else None,
        draft=draft,
        subject_misses=segments.subject_misses(draft.subject, plan) if draft.subject else [],
        subject_template=editorial.subject_template(),
        waiting=waiting,
        readers=digests.active_readers(Frequency.DAILY),
        plan=plan,
        weekly_readers=digests.active_readers(Frequency.WEEKLY),
        weekly_waiting=digests.waiting_count(Frequency.WEEKLY),
    )


def _back_to_next_digest(change: Callable[[], object], success: str) -> ResponseReturnValue:
    return change_and_go_back(change, success, "editor.next_digest")


@bp.post("/digest/draft")
def save_draft():
    form = request.form
    return _back_to_next_digest(
        lambda: editorial.save_draft(
            form.get("subject", ""), form.get("intro", ""), changed_by=g.editor.email
        ),
        "Saved: the next digest goes out with this subject and introduction.",
    )


@bp.post("/digest/subject-template")
def save_subject_template():
    template = request.form.get("template", "")
    return _back_to_next_digest(
        lambda: editorial.set_subject_template(template, changed_by=g.editor.email),
        "Subject template saved.",
    )


@bp.post("/articles/<int:article_id>/edit")
def article_edit(article_id: int):
    form = request.form
    return _back_to_next_digest(
        lambda: editorial.edit_article(article_id, form.get("title"), form.get("summary", "")),
        "Article changed for the next digest.",
    )


@bp.post("/articles/<int:article_id>/move")
def article_move(article_id: int):
    step = {"up": -1, "down": 1}.get(request.form.get("direction", ""), 0)
    return _back_to_next_digest(lambda: editorial.move_article(article_id, step), "Moved.")


@bp.get("/digest/preview.html")
def preview_html():
    # One segment's mail: ?sections=politics,sport (none: the whole digest); and
    # ?frequency=weekly for the weekly digest.
    key = request.args.get("sections", ALL_SECTIONS_KEY)[:1000]
    weekly = request.args.get("frequency") == Frequency.WEEKLY
    preview = digests.preview(key, Frequency.WEEKLY if weekly else Frequency.DAILY)
    if preview is None:
        abort(404)
    return framed_html(emails.example_copy(preview).html)


@bp.post("/digest/test")
def send_test():
    try:
        address = addresses.normalize_address(request.form.get("email"))
    except InvalidInput as error:
        flash(error.message, "error")
        return redirect(url_for("editor.next_digest"))
    jobs.enqueue(jobs.SEND_TEST, address.email, g.editor.email)
    flash(f"A test of the next digest is on its way to {address.email}.", "ok")
    return redirect(url_for("editor.next_digest"))


@bp.post("/digest/send")
def send_digest():
    try:
        frequency = sections.parse_frequency(request.form.get("frequency"))
    except InvalidInput as error:
        flash(error.message, "error")
        return redirect(url_for("editor.next_digest"))
    readers = digests.active_readers(frequency)
    if request.form.get("readers") != str(readers):
        flash(f"The number of readers changed: it is now {readers}. Check and send again.", "error")
        return redirect(url_for("editor.next_digest"))
    try:
        digest_id = digests.create_digest(trigger=f"editor:{g.editor.email}", frequency=frequency)
    except UserError as error:
        flash(error.message, "error")
        return redirect(url_for("editor.next_digest"))
    return redirect(url_for("editor.digest_page", digest_id=digest_id))


@bp.get("/digests")
def digest_history():
    recent = digests.recent_digests(100)
    return render_template("editor/digests.html", recent=delivery.digests_progress(recent))


FAILED_PER_PAGE = 50


@bp.get("/digests/<int:digest_id>")
def digest_page(digest_id: int):
    search = request.args.get("q", "")[:320]
    page = page_number()
    failed, failed_total = digests.failed_deliveries(digest_id, search, page, FAILED_PER_PAGE)
    return render_template(
        "editor/digest.html",
        progress=delivery.digest_progress(digest_id),
        refusals=refusals.refusals_of(digest_id, current_app.config["MAILER"].refusal_alert_share),
        articles=digests.digest_articles(digest_id),
        segments=segments.summaries(digest_id),
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
        "Cancelled. Readers not yet reached will not get it; if no mail of it went out, "
        "its articles wait for the next digest.",
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
    return change_and_go_back(
        lambda: change(digest_id), message, "editor.digest_page", digest_id=digest_id
    )


@bp.post("/digests/<int:digest_id>/retry-refused")
def digest_retry_refused(digest_id: int):
    domain = str(request.form.get("domain", ""))[:253].strip().lower()
    return change_and_go_back(
        lambda: digest_controls.retry_refused(digest_id, domain),
        f"Sending again the mails {domain} refused.",
        "editor.digest_page",
        digest_id=digest_id,
    )


@bp.get("/digests/<int:digest_id>/progress.json")
def digest_progress(digest_id: int):
    return jsonify(delivery.digest_progress(digest_id))


SNIPPET = """<form method="post" action="{action}" class="newsletter-signup">
  <label for="newsletter-email">Sign up to {name}: the newest articles by email.
    Unsubscribe at any time.</label>
  <input id="newsletter-email" name="email" type="email" autocomplete="email" required
         placeholder="you@example.com">
  <input name="name" type="hidden" value="">
{choices}  <div style="position:absolute;left:-10000px" aria-hidden="true">
    <input name="website" type="text" tabindex="-1" autocomplete="off">
  </div>
  <button type="submit">Subscribe</button>
</form>"""
SCRIPT = """<p class="newsletter-answer" role="status"></p>
<script>
document.querySelectorAll("form.newsletter-signup").forEach(function (form) {{
  form.addEventListener("submit", function (event) {{
    event.preventDefault();
    var answer = form.nextElementSibling;
    fetch(form.action, {{
      method: "POST",
      headers: {{"Accept": "application/json"}},
      body: new URLSearchParams(new FormData(form))
    }}).then(function (response) {{ return response.json(); }})
      .then(function (data) {{ answer.textContent = data.message || data.error; }})
      .catch(function () {{ form.submit(); }});
  }});
}});
</script>"""


SECTION_BOX = """    <label><input type="checkbox" name="sections" value="{slug}" checked>
      {name}</label>
"""
FREQUENCY_BOXES = """  <fieldset><legend>How often</legend>
    <label><input type="radio" name="frequency" value="daily" checked> Daily</label>
    <label><input type="radio" name="frequency" value="weekly"> Weekly</label>
  </fieldset>
"""


def _snippet_choices(offered: tuple[tuple[str, str], ...]) -> str:
    """The section boxes (all ticked) and the frequency, in the snippet for the site."""
    if not offered:
        return FREQUENCY_BOXES
    boxes = "".join(SECTION_BOX.format(slug=slug, name=escape(name)) for slug, name in offered)
    return (
        '  <fieldset><legend>Sections</legend>\n    <input type="hidden" name="sections_shown"'
        f' value="{",".join(slug for slug, _name in offered)}">\n'
        + boxes
        + "  </fieldset>\n"
        + FREQUENCY_BOXES
    )


def embed_snippet(action: str, name: str, offered: tuple[tuple[str, str], ...]) -> str:
    """The signup form a site pastes under its articles."""
    return SNIPPET.format(action=action, name=name, choices=_snippet_choices(offered))


@bp.get("/signup-form")
def signup_form():
    settings = current_app.config["MAILER"]
    html_snippet = embed_snippet(
        settings.base_url.rstrip("/") + "/subscribe", settings.list_name, sections.offered()
    )
    return render_template(
        "editor/signup_form.html",
        origins=settings.embed_origins,
        html_snippet=html_snippet,
        js_snippet=html_snippet + "\n" + SCRIPT.format(),
    )


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
