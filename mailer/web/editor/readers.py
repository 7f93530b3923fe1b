"""The console's reader pages: search, history, unsubscribe, erase, export, import."""

from __future__ import annotations

import csv
import io

from flask import (
    Response,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from mailer import sections
from mailer.mail.addresses import normalize_address
from mailer.models import SubscriberStatus
from mailer.platform.errors import InvalidInput
from mailer.subscribers import csv_files as subscriber_csv
from mailer.subscribers import records as readers
from mailer.subscribers import subscriptions
from mailer.web.editor.blueprint import bp
from mailer.web.inputs import page_number


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
    return render_template(
        "editor/subscriber.html",
        reader=reader,
        events=events,
        sections=sections.offered(),
        described=sections.describe(reader.sections),
        kept=sections.kept_names(reader.sections),
        values={
            "sections": sections.chosen_slugs(reader.sections),
            "frequency": reader.frequency.value,
        },
        choosing=reader.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING),
    )


@bp.post("/subscribers/<int:subscriber_id>/choice")
def subscriber_choice(subscriber_id: int):
    """An editor changes a reader's sections and frequency (say, asked by mail to)."""
    reader = subscriptions.get_subscriber(subscriber_id)
    form = request.form
    try:
        if sections.offered():
            shown = sections.form_of(form.get("sections_shown"), reader.sections)
            choice = sections.parse_choice(form.getlist("sections"), form.get("frequency"), shown)
        else:  # no section to choose: only the frequency
            choice = sections.Choice(
                reader.sections, sections.parse_frequency(form.get("frequency"))
            )
    except InvalidInput as error:
        flash(error.message, "error")
    else:
        if subscriptions.change_choice(subscriber_id, choice):
            flash("Saved: their next digest follows it.", "ok")
        else:
            flash("Only an active or pending reader's choice can be changed.", "error")
    return redirect(url_for("editor.subscriber_page", subscriber_id=subscriber_id))


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


@bp.post("/subscribers/suppression/lift")
def suppression_lift():
    # The one way back for a complainer or an erased reader: they asked the publisher.
    address = normalize_address(request.form.get("email", ""), check_deliverability=False)
    if readers.lift_suppression(address.key):
        flash(
            f"{address.email} may sign up again. Nothing was sent: they sign up and "
            "confirm like anyone else.",
            "ok",
        )
    else:
        flash(f"{address.email} was not suppressed.", "error")
    return redirect(url_for("editor.subscriber_list"))


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
