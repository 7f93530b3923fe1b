"""The editor's introduction: a little Markdown (markdown-it-py, HTML off), sanitized by nh3,
and the same words as plain text."""

from __future__ import annotations

import pytest

from mailer.content.draft import render_intro

pytestmark = pytest.mark.unit


def test_paragraphs_emphasis_and_links_render_in_html_and_in_text():
    intro = render_intro(
        "Good morning.\n\nA **big** week: read [the budget](https://news.example.org/b),\n"
        "*then* [write](mailto:desk@news.example.org)."
    )
    assert intro is not None
    assert intro.html == (
        "<p>Good morning.</p>\n<p>A <strong>big</strong> week: read "
        '<a href="https://news.example.org/b" rel="noopener noreferrer">the budget</a>,\n'
        '<em>then</em> <a href="mailto:desk@news.example.org" rel="noopener noreferrer">'
        "write</a>.</p>"
    )
    assert intro.text == (
        "Good morning.\n\nA big week: read the budget (https://news.example.org/b), then"
        " write (mailto:desk@news.example.org)."
    )


def test_lists_are_kept_a_line_an_item():
    intro = render_intro("Inside:\n\n- one\n- two\n\n3. three\n4. four\n\nBye.")
    assert intro is not None
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in intro.html
    assert '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>' in intro.html
    assert intro.text == "Inside:\n\n- one\n- two\n\n3. three\n4. four\n\nBye."


@pytest.mark.parametrize(
    "typed",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "[click](data:text/html,<script>alert(1)</script>)",
        "# A heading\n\n> a quote\n\n`code`\n\n![an image](https://x.example/i.png)",
    ],
)
def test_html_scripts_and_other_markdown_stay_the_characters_typed(typed):
    intro = render_intro(typed)
    assert intro is not None
    assert "<script" not in intro.html and "<img" not in intro.html
    assert 'href="javascript' not in intro.html and 'href="data' not in intro.html
    assert "<h1" not in intro.html and "<blockquote" not in intro.html
    assert "<code" not in intro.html
    if "https://" not in typed:  # an image's https URL may become a link, nothing else
        assert "<a " not in intro.html, intro.html


def test_nothing_typed_is_no_introduction():
    assert render_intro(None) is None
    assert render_intro("") is None
