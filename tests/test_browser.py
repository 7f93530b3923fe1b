"""In a real browser: the editor's send and the reader's journey, against a live stack.

Playwright drives the system's Chromium (/usr/bin/chromium); screenshots of each
page go to tests/artifacts/.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from mailer import create_app
from mailer.config import load_settings
from mailer.db import db
from mailer.editors import create_editor
from mailer.models import Article, Subscriber, SubscriberStatus, utcnow
from tests.conftest import Worker, free_port
from tests.helpers import add_article, add_readers, text_body

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
PASSWORD = "browser test password"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="chromium is not installed (`make test` installs it)"
    ),
]


@pytest.fixture
def live(app, environment, redis_server, tmp_path):
    """The app on a real HTTP port with its own worker; mails link back to it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    own_db = 8 + int(environment["MAILER_REDIS_URL"].rsplit("/", 1)[1])
    env = {**environment, "MAILER_BASE_URL": base, "MAILER_REDIS_URL": redis_server.url_for(own_db)}
    live_app = create_app(load_settings(environ=env))
    server = make_server("127.0.0.1", port, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    worker = Worker(env, tmp_path / "worker.log")
    worker.start(live_app)
    yield base, live_app
    worker.stop()
    server.shutdown()
    live_app.extensions["mailer.db"]["engine"].dispose()


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


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


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

    page = browser.new_page(viewport={"width": 1100, "height": 900})
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
    page.get_by_role("button", name="Send to 30 readers").click()
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
    page = browser.new_page(viewport={"width": 390, "height": 800})  # a phone
    page.goto(base + "/subscribe")
    shot(page, "reader-subscribe")
    page.fill("#email", "phone@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("text=Check your inbox")

    [mail] = outbox.wait_for("phone@example.org")
    confirm = re.search(r"http://127\.0\.0\.1:\d+/confirm/\S+", text_body(mail)).group(0)
    page.goto(confirm)
    shot(page, "reader-confirm")
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.wait_for_selector("text=You're subscribed")

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
        from mailer.digests import create_digest

        create_digest(trigger="test")
    digest = outbox.wait_for("phone@example.org", count=2)[-1]
    unsubscribe = re.search(r"http://127\.0\.0\.1:\d+/unsubscribe/\S+", text_body(digest)).group(0)
    page.goto(unsubscribe)
    shot(page, "reader-unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_selector("text=You are unsubscribed")
    with app.app_context():
        status = db.session.scalar(
            select(Subscriber.status).where(Subscriber.email == "phone@example.org")
        )
    assert status == SubscriberStatus.UNSUBSCRIBED
