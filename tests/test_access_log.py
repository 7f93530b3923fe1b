"""The web process as the Procfile starts it: its access log holds no reader's token."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from mailer.web.access_log import redact
from tests.conftest import ROOT, free_port
from tests.helpers import wait_until


def test_tokens_in_reader_links_are_redacted():
    line = 'GET /unsubscribe/WzEsImFiYyJd.Xyz-_1 HTTP/1.1 "https://news.example.org/confirm/a.b"'
    assert redact(line) == (
        'GET /unsubscribe/[token] HTTP/1.1 "https://news.example.org/confirm/[token]"'
    )
    assert redact("GET /editor/subscribers/5 HTTP/1.1") == "GET /editor/subscribers/5 HTTP/1.1"


@pytest.mark.parametrize(
    "path",
    [
        "/%70references/WzEsImFiYyJd.Xyz-_1",
        "/PREFERENCES/WzEsImFiYyJd.Xyz-_1",
        "/preferences%2FWzEsImFiYyJd.Xyz-_1",
        "/%63%6F%6E%66%69%72%6D/WzEsImFiYyJd.Xyz-_1",
        "%2funsubscribe%2fWzEsImFiYyJd.Xyz-_1",
    ],
)
def test_tokens_in_percent_encoded_paths_are_redacted(path):
    # The server decodes these before routing: each one reaches a token page.
    redacted = redact(f"GET {path} HTTP/1.1")
    assert "WzEsImFiYyJd" not in redacted and "[token]" in redacted


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} process in the Procfile")


def fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own server
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
def test_the_procfile_web_process_logs_requests_without_tokens(environment, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        **environment,
        "MAILER_WEB_BIND": f"127.0.0.1:{port}",
        "MAILER_WEB_WORKERS": "1",
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
    }
    # The line as written: gunicorn's config reads MAILER_WEB_BIND like any other setting.
    args = shlex.split(procfile_command("web"))
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: _answers(base), timeout=20, message="gunicorn did not start")
            token = "WzEsImFiYyJd.secret-part-of-the-link"
            assert fetch(f"{base}/unsubscribe/{token}") == 400
            assert fetch(f"{base}/confirm/{token}") == 400
            wait_until(
                lambda: log.read_text().count("[token]") >= 2,
                timeout=10,
                message="the requests were not logged",
            )
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
    text = log.read_text()
    assert "secret-part-of-the-link" not in text
    assert "GET /unsubscribe/[token]" in text


def _answers(base: str) -> bool:
    try:
        return fetch(f"{base}/healthz") in {200, 503}
    except OSError:
        return False
