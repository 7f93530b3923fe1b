"""In a real browser: the editor's send and the reader's journey, against a live stack.

Playwright drives the system's Chromium (/usr/bin/chromium); screenshots of each
page go to tests/artifacts/.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from werkzeug.serving import make_server

from mailer import create_app
from mailer.access.editors import create_editor
from mailer.mail.catcher import SaveToDirectory
from mailer.models import Article, Subscriber, SubscriberStatus, utcnow
from mailer.platform.db import db
from mailer.platform.settings import load_settings
from tests.conftest import Worker, free_port
from tests.helpers import add_article, add_readers, text_body, wait_until

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
PASSWORD = "browser test password"

# Skipped on a developer's machine without Chromium; in CI a missing browser is a failure,
# so that the pages are never silently left untested.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="chromium is not installed (`make test` installs it)",
    ),
]


@pytest.fixture(autouse=True)
def _chromium_is_there() -> None:
    if not CHROMIUM.exists():
        pytest.fail("CI runs the browser tests: /usr/bin/chromium is missing")


AXE = Path(__file__).parent / ".node" / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.2 AA where axe can tell: contrast of text, and every control and link named.
AXE_RULES = [
    "color-contrast",
    "label",
    "button-name",
    "link-name",
    "input-button-name",
    "select-name",
    "aria-input-field-name",
    "frame-title",
    "image-alt",
    "document-title",
    "html-has-lang",
]


class Site:
    """A news site on another origin, its article page holding mailer's signup form."""

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.page = b""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(site.page)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def show(self, snippet: str) -> None:
        self.page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>An article</title>'
            "</head><body><main><h1>Council approves the cycle lanes</h1><p>Article text.</p>"
            f"{snippet}</main></body></html>"
        ).encode()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sites():
    listed, unlisted = Site(), Site()
    yield listed, unlisted
    listed.close()
    unlisted.close()


@contextmanager
def running_stack(environment, redis_server, tmp_path, sites, **overrides: str):
    """The app on a real HTTP port with its own worker; mails link back to it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    own_db = 8 + int(environment["MAILER_REDIS_URL"].rsplit("/", 1)[1])
    env = {
        **environment,
        "MAILER_BASE_URL": base,
        "MAILER_REDIS_URL": redis_server.url_for(own_db),
        "MAILER_EMBED_ORIGINS": sites[0].origin,
        "MAILER_SITE_URL": sites[0].origin,
        "MAILER_POSTAL_ADDRESS": "Example News, 1 Main Street, Springfield",
        **overrides,
    }
    live_app = create_app(load_settings(environ=env))
    server = make_server("127.0.0.1", port, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    worker = Worker(env, tmp_path / "worker.log")
    worker.start(live_app)
    live_app.config["TEST_WORKER"] = worker  # for tests that hold the stack's work back
    try:
        yield base, live_app
    finally:
        worker.stop()
        server.shutdown()
        live_app.extensions["mailer.platform.db"]["engine"].dispose()


@pytest.fixture
def live(app, environment, redis_server, tmp_path, sites):
    with running_stack(environment, redis_server, tmp_path, sites) as stack:
        yield stack


@pytest.fixture
def dev_live(app, environment, redis_server, tmp_path, sites):
    """The stack as `make run` starts it: development mode, mails kept by the catcher."""
    mail = tmp_path / "mail"
    catcher = Controller(SaveToDirectory(mail), hostname="127.0.0.1", port=free_port())
    catcher.start()
    overrides = {
        "MAILER_ENV": "development",
        "MAILER_SMTP_PORT": str(catcher.port),
        "MAILER_MAIL_DIRECTORY": str(mail),
    }
    try:
        with running_stack(environment, redis_server, tmp_path, sites, **overrides) as stack:
            yield (*stack, mail)
    finally:
        catcher.stop()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


def shot(page, name: str) -> None:  # pages are opened with bypass_csp, for axe alone
    """A screenshot of the page for people, and axe-core's verdict on it for the test."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert AXE.exists(), "axe-core is missing; `make test` installs it"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "rules => axe.run(document, {runOnly: {type: 'rule', values: rules}})", AXE_RULES
    )
    problems = [
        f"{v['id']}: {v['help']} ({', '.join(n['target'][0] for n in v['nodes'][:3])})"
        for v in result["violations"]
    ]
    assert not problems, f"{name}: {problems}"
    assert any(rule["id"] == "color-contrast" for rule in result["passes"]), name  # it did look


def test_an_editor_previews_tests_and_sends_a_digest_and_watches_it_go(live, browser, outbox):
    base, app = live
    with app.app_context():
        create_editor("desk@example.org", PASSWORD)
    readers = add_readers(app, "browser", 30)
    add_article(
        app,
        "Browser story — “quoted”",
        "https://news.example.org/b",
        summary="Seen in a real browser.",
    )

    page = browser.new_page(viewport={"width": 1100, "height": 900}, bypass_csp=True)
    page.goto(base + "/editor/")
    assert "/editor/login" in page.url
    shot(page, "editor-login")
    page.fill("#email", "desk@example.org")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/editor/")
    assert page.locator("text=active readers").is_visible()
    shot(page, "editor-dashboard")

    page.get_by_role("link", name="Articles").click()
    assert page.locator("text=Browser story").first.is_visible()
    shot(page, "editor-articles")

    page.get_by_role("link", name="Next digest").click()
    frame = page.frame_locator("iframe.preview")
    assert frame.locator("text=Seen in a real browser.").is_visible()
    shot(page, "editor-next-digest")

    page.fill("#test-email", "desk@example.org")
    page.get_by_role("button", name="Send a test").click()
    page.wait_for_selector("text=on its way to desk@example.org")
    [test_mail] = outbox.wait_for("desk@example.org")
    assert str(test_mail["Subject"]).startswith("[TEST]")

    page.on("dialog", lambda dialog: dialog.accept())  # "Send this digest to 30 readers now?"
    page.get_by_role("button", name="Send to 30 daily readers").click()
    page.wait_for_url(re.compile(r".*/editor/digests/\d+$"))
    page.wait_for_selector('.bar[aria-valuenow="100"]', timeout=30_000)
    page.wait_for_selector("#progress[data-status=sent]", timeout=30_000)
    assert page.locator('[data-field="sent"]').inner_text() == "30"
    shot(page, "editor-digest-sent")
    for email in readers:
        assert len(outbox.wait_for(email)) == 1

    page.get_by_role("link", name="History").click()
    assert page.locator("text=Browser story").first.is_visible()
    shot(page, "editor-history")

    page.get_by_role("link", name="Articles").click()
    assert page.get_by_role("link", name=re.compile(r"digest #\d+")).first.is_visible()
    page.get_by_role("link", name="Readers").click()
    page.fill("#q", "browser1")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="browser1@example.org").click()
    assert page.locator("text=digest #").is_visible()  # the reader's history lists the digest
    shot(page, "editor-reader")
    page.get_by_role("link", name="Readers").click()
    shot(page, "editor-readers")
    page.get_by_role("link", name="Import CSV").click()
    shot(page, "editor-import")
    page.get_by_role("link", name="Schedule").click()
    shot(page, "editor-schedule")


def test_a_reader_signs_up_confirms_and_unsubscribes_in_the_browser(live, browser, outbox):
    base, app = live
    page = browser.new_page(viewport={"width": 390, "height": 800}, bypass_csp=True)  # a phone
    page.goto(base + "/subscribe")
    shot(page, "reader-subscribe")
    page.fill("#email", "phone@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("text=Check your inbox")
    shot(page, "reader-check-your-inbox")

    [mail] = outbox.wait_for("phone@example.org")
    confirm = re.search(r"http://127\.0\.0\.1:\d+/confirm/\S+", text_body(mail)).group(0)
    page.goto(confirm)
    shot(page, "reader-confirm")
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.wait_for_selector("text=You're subscribed")
    shot(page, "reader-confirmed")
    assert page.get_by_role("link", name=re.compile("Back to")).is_visible()  # not a dead end

    with app.app_context():
        status = db.session.scalar(
            select(Subscriber.status).where(Subscriber.email == "phone@example.org")
        )
        assert status == SubscriberStatus.ACTIVE
        db.session.add(
            Article(
                title="For the phone",
                url="https://news.example.org/p",
                source="test",
                ready_at=utcnow(),
            )
        )
        db.session.commit()
        from mailer.digests.runs import create_digest

        create_digest(trigger="test")
    mails = outbox.wait_for("phone@example.org", count=3)  # confirmation, welcome, digest
    [welcome] = [m for m in mails if str(m["Subject"]).startswith("Welcome")]
    assert "Example News, 1 Main Street" in text_body(welcome)
    [digest] = [m for m in mails if "For the phone" in str(m["Subject"])]
    unsubscribe = re.search(r"http://127\.0\.0\.1:\d+/unsubscribe/\S+", text_body(digest)).group(0)
    page.goto(unsubscribe)
    shot(page, "reader-unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_selector("text=You are unsubscribed")
    shot(page, "reader-unsubscribed")
    page.goto(base + "/confirm/not-a-valid-link")
    page.wait_for_selector("text=This link does not work")
    shot(page, "reader-bad-link")
    page.goto(base + "/unsubscribe/test")
    page.wait_for_selector("text=This was a test copy")
    shot(page, "reader-test-copy-link")
    with app.app_context():
        status = db.session.scalar(
            select(Subscriber.status).where(Subscriber.email == "phone@example.org")
        )
    assert status == SubscriberStatus.UNSUBSCRIBED


def test_the_signup_box_on_a_listed_site_works_and_one_elsewhere_is_refused(
    live, browser, sites, outbox
):
    from mailer.models import Frequency
    from mailer.web.editor.newsletter import embed_snippet

    base, app = live
    listed, unlisted = sites
    snippet = embed_snippet(base + "/subscribe", "Example News", ())
    listed.show(snippet)
    unlisted.show(snippet)
    page = browser.new_page(viewport={"width": 390, "height": 800}, bypass_csp=True)

    page.goto(listed.origin + "/politics/cycle-lanes")
    page.fill("#newsletter-email", "from-the-site@example.org")
    page.get_by_label("Weekly").check()
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("text=Check your inbox")
    shot(page, "embed-check-your-inbox")
    back = page.get_by_role("link", name="Back to where you were")
    assert back.get_attribute("href").startswith(listed.origin)
    outbox.wait_for("from-the-site@example.org")

    page.goto(unlisted.origin + "/stolen-form")
    page.fill("#newsletter-email", "victim@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("text=may only be sent from")
    shot(page, "embed-refused")
    with app.app_context():
        readers = dict(db.session.execute(select(Subscriber.email, Subscriber.frequency)).all())
    assert readers == {"from-the-site@example.org": Frequency.WEEKLY}


def test_an_editor_shapes_the_digest_readers_get_the_archive_and_nobody_gets_an_empty_send(
    live, browser, outbox
):
    base, app = live
    with app.app_context():
        create_editor("desk@example.org", PASSWORD)
    add_article(app, "Waiting story", "https://news.example.org/w", summary="Waits.")
    page = browser.new_page(viewport={"width": 390, "height": 900}, bypass_csp=True)  # on a phone
    page.goto(base + "/editor/login")
    page.fill("#email", "desk@example.org")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/editor/")

    # No reader yet: the send is refused before anything is made.
    page.goto(base + "/editor/digest")
    assert page.get_by_role("button", name="Send to 0 readers").is_disabled()
    assert page.locator("text=nobody to send it to").is_visible()
    shot(page, "editor-no-readers")

    add_readers(app, "shaped", 2)
    page.reload()
    page.fill("#subject", "Our week")
    page.fill("#intro", "Hello from the **newsroom**.")
    page.get_by_role("button", name="Save for the next digest").click()
    page.wait_for_selector("text=Saved: the next digest")
    page.locator("summary", has_text="Edit the title and summary").first.click()
    page.locator("input[id^=title-]").first.fill("Waiting story, corrected")
    page.get_by_role("button", name="Save the article").first.click()
    page.wait_for_selector("text=Article changed")
    frame = page.frame_locator("iframe.preview")
    assert frame.locator("text=Waiting story, corrected").is_visible()
    assert frame.locator("strong", has_text="newsroom").is_visible()
    shot(page, "editor-next-digest-shaped")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Send to 2 daily readers").click()
    page.wait_for_selector("#progress[data-status=sent]", timeout=30_000)
    shot(page, "editor-digest-page")
    [mail] = outbox.wait_for("shaped0@example.org")
    assert str(mail["Subject"]) == "Our week"

    page.goto(base + "/editor/signup-form")
    shot(page, "editor-signup-form")
    for path, name in [("/editor/subscribers", "readers"), ("/editor/digests", "history")]:
        page.goto(base + path)  # tables on a phone scroll inside their card
        shot(page, f"phone-{name}")
        card = page.locator(".card", has=page.locator("table")).first
        assert card.bounding_box()["width"] <= 390
    page.goto(base + "/archive/")
    shot(page, "archive")
    page.get_by_role("link", name="Our week").click()
    assert page.locator("text=Waiting story, corrected").first.is_visible()
    assert "/unsubscribe/" not in page.content()
    shot(page, "archive-digest")


def test_the_confirmation_button_in_the_caught_mail_opens_the_confirm_page(dev_live, browser):
    """The README's first step: sign up, open the mail in /dev/mail/, press its button."""
    base, _app, mail = dev_live
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page.goto(base + "/subscribe")
    page.fill("#email", "newcomer@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("text=Check your inbox")
    wait_until(lambda: list(mail.glob("*.eml")), timeout=15, message="no mail was caught")
    page.goto(base + "/dev/mail/")
    page.get_by_role("link", name=re.compile("Confirm")).first.click()
    page.wait_for_load_state("load")  # the frame's document whole, its <base> included
    frame = page.frame_locator("iframe[title='HTML version']")
    button = frame.get_by_role("link", name="Confirm my subscription")
    button.wait_for(state="visible")
    # The tab itself goes there, not the frame (a page that forbids framing would break it).
    with page.expect_navigation(url=re.compile(r".*/confirm/[^/]+$"), timeout=30_000):
        button.click()
    assert page.get_by_role("button", name="Yes, subscribe me").is_visible()
    shot(page, "devmail-followed-to-confirm")


def test_the_digest_page_after_send_shows_its_controls_and_its_end_without_a_reload(
    live, browser, outbox
):
    base, app = live
    worker = app.config["TEST_WORKER"]
    with app.app_context():
        create_editor("desk@example.org", PASSWORD)
    add_readers(app, "live", 3)
    add_article(app, "Live story", "https://news.example.org/live", summary="Live.")
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page.goto(base + "/editor/login")
    page.fill("#email", "desk@example.org")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/editor/")
    worker.stop()  # the digest stays "preparing" until a worker takes it
    page.goto(base + "/editor/digest")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Send to 3 daily readers").click()
    page.wait_for_url(re.compile(r".*/editor/digests/\d+$"))
    page.evaluate("window.sameDocument = true")  # gone if the page is ever reloaded
    assert page.locator("#progress").get_attribute("data-status") == "preparing"
    assert page.get_by_role("button", name="Pause").is_visible()
    assert page.get_by_role("button", name="Cancel").is_visible()
    shot(page, "editor-digest-preparing")

    worker.start(app)
    page.wait_for_selector("#digest-state[data-status=sent]", timeout=30_000)
    assert page.evaluate("window.sameDocument") is True
    assert page.get_by_role("heading", name="Public archive").is_visible()
    assert page.locator("text=finished").is_visible()
    assert page.get_by_role("button", name="Pause").count() == 0
    shot(page, "editor-digest-finished-live")
    assert len(outbox.wait_for("live0@example.org")) == 1


INSIDE = """el => { const r = el.getBoundingClientRect();
  return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth; }"""
# The size the chart's text comes out at on screen: its font size times the SVG's scale.
CHART_TEXT = """() => [...document.querySelectorAll('main svg[role=img]')]
  .filter(svg => svg.getBoundingClientRect().width > 0)
  .flatMap(svg => [...svg.querySelectorAll('text')].map(t =>
    parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a))"""
# Every legend label's box against every grid line's, in the chart that is shown.
LEGEND_CROSSED = """() => [...document.querySelectorAll('main svg[role=img]')]
  .filter(svg => svg.getBoundingClientRect().width > 0)
  .flatMap(svg => [...svg.querySelectorAll('text')]
    .filter(t => ['signups', 'unsubscribes'].includes(t.textContent)).flatMap(t => {
    const box = t.getBoundingClientRect();
    return [...svg.querySelectorAll('line[stroke="#e4e4e8"]')].filter(line => {
      const y = line.getBoundingClientRect().top;
      return y >= box.top && y <= box.bottom; }).map(() => t.textContent); }))"""


@pytest.mark.parametrize("width", [1280, 390])
def test_the_consoles_tables_and_chart_fit_the_screen(
    width, app, environment, redis_server, tmp_path, sites, browser
):
    sections = {"MAILER_SECTIONS": "politics:Politics,world:World news"}
    with running_stack(environment, redis_server, tmp_path, sites, **sections) as (base, live_app):
        with live_app.app_context():
            from mailer import sections as list_sections

            list_sections.store_configured()
            db.session.commit()
            create_editor("desk@example.org", PASSWORD)
        add_readers(live_app, "fit", 3)
        add_article(
            live_app,
            "A story with a rather long title that wraps on a phone",
            "https://news.example.org/fit",
            section="politics",
        )
        page = browser.new_page(viewport={"width": width, "height": 900}, bypass_csp=True)
        page.goto(base + "/editor/login")
        page.fill("#email", "desk@example.org")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/editor/")

        sizes = page.evaluate(CHART_TEXT)
        assert sizes and min(sizes) >= 11, sizes
        assert page.evaluate(LEGEND_CROSSED) == []
        shot(page, f"fit-{width}-dashboard")

        page.goto(base + "/editor/articles")
        assert page.locator("td.date").first.evaluate(INSIDE)
        assert page.get_by_role("button", name=re.compile("^Remove")).first.evaluate(INSIDE)
        shot(page, f"fit-{width}-articles")

        page.goto(base + "/editor/sections")
        for name in ("Rename", "Retire"):
            for button in page.get_by_role("button", name=name, exact=True).all():
                assert button.evaluate(INSIDE), name
        shot(page, f"fit-{width}-sections")
