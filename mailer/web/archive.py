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
    digest = archive.archived_digest(digest_id)
    response = Response(archive.public_html(digest), mimetype="text/html")
    # The mail's own HTML: inline styles and remote images, never a script.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    return response


# Characters XML 1.0 does not allow, even escaped (U+FFFF, most C0 controls): one of them
# in a title or an introduction makes the whole feed not well-formed for every reader.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@bp.get("/feed.xml")
def feed():
    digests = archive.recent(20)
    entries = [(d, external_url("archive.show", digest_id=d.id)) for d in digests]
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
