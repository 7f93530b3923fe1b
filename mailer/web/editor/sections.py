"""The sections page: add, rename, retire and bring back the sections readers choose from."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, render_template, request

from mailer import sections
from mailer.platform.setting_values import SECTION_SLUG
from mailer.web.editor.blueprint import bp, change_and_go_back


@bp.get("/sections")
def section_list():
    return render_template("editor/sections.html", rows=sections.overview())


def _back(change: Callable[[], object], success: str):
    return change_and_go_back(change, success, "editor.section_list")


@bp.post("/sections")
def section_add():
    slug, name = request.form.get("slug", "").strip(), request.form.get("name", "")
    return _back(
        lambda: sections.add_section(slug, name),
        "Section added: signup forms and the preference center offer it now.",
    )


CHANGES = {
    "rename": lambda slug: sections.rename_section(slug, request.form.get("name", "")),
    "retire": sections.retire_section,
    "restore": sections.restore_section,
}
DONE = {
    "rename": "Renamed.",
    "retire": "Retired: offered to nobody and no new article goes there. "
    "Readers who chose it keep it in their choice.",
    "restore": "Offered again.",
}


@bp.post("/sections/<slug>/<action>")
def section_change(slug: str, action: str):
    if action not in CHANGES or not SECTION_SLUG.fullmatch(slug):
        abort(404)
    return _back(lambda: CHANGES[action](slug), DONE[action])
