"""Templates to text: templates/email/<name>/{subject.txt,body.txt,body.html}."""

from __future__ import annotations

from dataclasses import dataclass, replace

import css_inline
from flask import current_app

from mailer.mail import slots

# Remote stylesheets are never fetched: article HTML is not ours to trust.
_inliner = css_inline.CSSInliner(load_remote_stylesheets=False)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    # The marker of this render's slots (mailer/slots.py); None: a mail without any.
    slot_marker: str | None = None


def render_email(template: str, **context: object) -> RenderedEmail:
    """Renders one mail's three templates; the HTML gets its CSS inlined."""
    env = current_app.jinja_env
    subject = env.get_template(f"email/{template}/subject.txt").render(**context)
    html = env.get_template(f"email/{template}/body.html").render(**context)
    return RenderedEmail(
        # A subject is one line whatever the template or its data hold.
        subject=" ".join(subject.split()),
        text=env.get_template(f"email/{template}/body.txt").render(**context),
        html=_inliner.inline(html),
    )


def render_newsletter(template: str, **context: object) -> RenderedEmail:
    """Renders a mail with a slot wherever its templates place a reader's own link."""
    marker = slots.new_marker()
    rendered = render_email(template, **context, **slots.template_context(marker))
    return replace(rendered, slot_marker=marker)
