"""Templates to text: templates/email/<name>/{subject.txt,body.txt,body.html}."""

from __future__ import annotations

from dataclasses import dataclass

import css_inline
from flask import current_app

# Remote stylesheets are never fetched: article HTML is not ours to trust.
_inliner = css_inline.CSSInliner(load_remote_stylesheets=False)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


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
