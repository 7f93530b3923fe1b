"""`make fuzz`: random and hostile requests against the stack as `make run` starts it.

python -m tools.fuzz --cases 10000 --seed 1

Starts redis, the mail catcher, gunicorn and a Celery worker from the Procfile,
sends the cases of tools/fuzzcases.py over HTTP, logged out and logged in, and
prints how many answers had each status. It fails on any answer of 500 or more,
any gunicorn worker timeout, and any request that took over two seconds.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import re
import sys
import time
import urllib.error
import urllib.request
from collections import Counter

from sqlalchemy import select

from mailer import create_app
from mailer.access.api_tokens import create_api_token
from mailer.access.editors import create_editor
from mailer.mail.tokens import make_confirm_token, make_preferences_token, make_unsubscribe_token
from mailer.models import Article, Subscriber, SubscriberStatus, utcnow
from mailer.platform.db import db
from mailer.platform.settings import load_settings
from tools.fuzzcases import CSRF, Case, Context, cases
from tools.stack import Stack

EDITOR, PASSWORD = "fuzz@example.org", "fuzz editor password"
SLOW_SECONDS = 2.0


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # a 302 is an answer to count, not to follow


class Visitor:
    """A browser: its own cookies, its own CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirects()
        )
        self.csrf = ""

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        request = urllib.request.Request(  # noqa: S310 - our own server
            self.base + path, data=body if method != "GET" else None, method=method
        )
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")

    def fetch_csrf(self, path: str) -> None:
        _status, page = self.send("GET", path, {}, b"")
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        self.csrf = found.group(1) if found else ""

    def log_in(self) -> None:
        self.fetch_csrf("/editor/login")
        body = urllib.parse.urlencode(
            {"csrf_token": self.csrf, "email": EDITOR, "password": PASSWORD}
        ).encode()
        status, _ = self.send(
            "POST", "/editor/login", {"Content-Type": "application/x-www-form-urlencoded"}, body
        )
        if status != 302:
            raise SystemExit(f"the fuzz editor could not log in ({status})")
        self.fetch_csrf("/editor/")


def seed(stack: Stack) -> tuple[Context, object]:
    app = create_app(load_settings(environ=stack.env))
    with app.app_context():
        create_editor(EDITOR, PASSWORD)
        api_token = create_api_token("fuzz")
        for n in range(3):
            email = f"fuzz{n}@example.org"
            db.session.add(Subscriber(email=email, email_key=email, status=SubscriberStatus.ACTIVE))
        db.session.add(
            Article(
                title="Fuzz", url="https://news.example.org/fuzz", source="fuzz", ready_at=utcnow()
            )
        )
        db.session.commit()
        readers = db.session.execute(select(Subscriber.id, Subscriber.link_key)).all()
        tokens = [
            make(*r)
            for r in readers
            for make in (make_confirm_token, make_unsubscribe_token, make_preferences_token)
        ]
        ids = [str(r[0]) for r in readers]
    return Context(tokens=tokens, ids=ids, csrf_token=CSRF, api_token=api_token), app


def run(count: int, seed_value: int) -> int:
    stack = Stack()
    try:
        stack.start("redis", "mail", "web", "worker")
        context, app = seed(stack)
        visitor, editor = Visitor(stack.base_url), Visitor(stack.base_url)
        visitor.fetch_csrf("/subscribe")
        editor.log_in()
        statuses: Counter[int] = Counter()
        failures: list[str] = []
        slow = 0
        slowest = 0.0
        began = time.monotonic()
        for case in cases(app, context, seed=seed_value, count=count):
            sender = editor if case.logged_in else visitor
            status, elapsed = _send(sender, case)
            statuses[status] += 1
            slowest = max(slowest, elapsed)
            slow += elapsed > SLOW_SECONDS
            if status >= 500 or elapsed > SLOW_SECONDS:
                failures.append(f"{status} in {elapsed:.2f} s: {case.describe()}")
            if case.logged_in and case.path.startswith("/editor/logout") and status == 302:
                editor.log_in()  # the case ended the session; the next ones need one again
        duration = time.monotonic() - began
        timeouts = stack.log("web").count("WORKER TIMEOUT")
    finally:
        stack.close()
    print(f"\n{count} requests in {duration:.0f} s (seed {seed_value}), slowest {slowest:.2f} s")
    print(f"{'status':>6} {'count':>7}")
    for status, n in sorted(statuses.items()):
        print(f"{status:>6} {n:>7}")
    print(f"server errors (5xx): {sum(n for s, n in statuses.items() if s >= 500)}")
    print(f"gunicorn worker timeouts: {timeouts}")
    print(f"requests over {SLOW_SECONDS:.0f} s: {slow}")
    for failure in failures[:20]:
        print("  ", failure)
    return 1 if failures or timeouts else 0


def _send(sender: Visitor, case: Case) -> tuple[int, float]:
    headers = {k: v.replace(CSRF, sender.csrf) for k, v in case.headers.items()}
    body = case.body.replace(CSRF.encode(), sender.csrf.encode())
    began = time.monotonic()
    status, _page = sender.send(case.method, case.path, headers, body)
    return status, time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(run(args.cases, args.seed))


if __name__ == "__main__":
    main()
