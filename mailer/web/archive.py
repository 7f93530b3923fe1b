"""The public archive: GET /archive, /archive/<id>, /archive/feed.xml."""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, render_template

from mailer.digests import archive
from mailer.mail.links import external_url
from mailer.models import utcnow
from mailer.web.inputs import page_number

bp = Blueprint("archive", __name__, url_prefix="/archive")


@bp.get("/")
def index():
    return render_template("pages/archive.html", found=archive.listing(page_number()))


@bp.get("/<int:digest_id>")
def show(digest_id: int):
    issue = archive.issue(archive.archived_digest(digest_id))
    return render_template("pages/archive_issue.html", issue=issue)


# Characters XML 1.0 does not allow, even escaped (U+FFFF, most C0 controls): one of them
# in a title or an introduction makes the whole feed not well-formed for every reader.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@bp.get("/feed.xml")
def feed():
    digests = archive.recent(20)
    issues = [archive.issue(d) for d in digests]
    # Each entry's content: the issue's introduction and articles, as its page shows them.
    entries = [(i, render_template("pages/_archive_issue.html", issue=i)) for i in issues]
    newest = digests[0].finished_at or digests[0].created_at if digests else utcnow()
    body = render_template(
        "pages/archive_feed.xml",
        entries=entries,
        updated=newest,
        feed_url=external_url("archive.feed"),
        archive_url=external_url("archive.index"),
        settings=current_app.config["MAILER"],
    )
    return Response(NOT_XML.sub("", body), mimetype="application/atom+xml")
