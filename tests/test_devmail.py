"""Development mail pages: what a newcomer reads after `make run`."""

from __future__ import annotations

import smtplib

from aiosmtpd.controller import Controller

from mailer import create_app
from mailer.mail.catcher import SaveToDirectory
from tests.conftest import free_port


def test_caught_mail_is_listed_and_its_links_can_be_followed(app, tmp_path):
    settings = app.config["MAILER"].replace(env="development", mail_directory=str(tmp_path))
    dev = create_app(settings)
    message = (
        b"From: n@example.org\r\nTo: reader@example.org\r\nSubject: Confirm it\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Open https://news.example.org/confirm/abc.def to confirm.\r\n"
    )
    (tmp_path / "1700000000000000000-0123abcd.eml").write_bytes(message)
    client = dev.test_client()
    inbox = client.get("/dev/mail/").get_data(as_text=True)
    assert "reader@example.org" in inbox and "Confirm it" in inbox
    page = client.get("/dev/mail/1700000000000000000-0123abcd.eml").get_data(as_text=True)
    assert '<a href="https://news.example.org/confirm/abc.def"' in page
    assert client.get("/dev/mail/../../etc/passwd").status_code == 404


def test_the_mail_pages_answer_only_a_loopback_host_name(app, tmp_path):
    # DNS rebinding: evil.example resolved to 127.0.0.1 reaches the port with its own Host.
    settings = app.config["MAILER"].replace(env="development", mail_directory=str(tmp_path))
    client = create_app(settings).test_client()
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"):
        assert client.get("/dev/mail/", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil"):
        assert client.get("/dev/mail/", headers={"Host": host}).status_code == 404, host


def test_the_catcher_keeps_every_mail_as_a_file(tmp_path):
    controller = Controller(SaveToDirectory(tmp_path), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port) as smtp:
            smtp.sendmail("a@example.org", ["b@example.org"], b"Subject: hi\r\n\r\nhello\r\n")
    finally:
        controller.stop()
    [saved] = list(tmp_path.glob("*.eml"))
    assert b"hello" in saved.read_bytes()
    assert not list(tmp_path.glob("*.part"))


def test_the_mail_pages_do_not_exist_outside_development(client):
    assert client.get("/dev/mail/").status_code == 404


def test_a_production_process_never_takes_development_mode_from_dotenv(tmp_path, monkeypatch):
    """`make run` once in this folder must not turn a later production process into a dev one."""
    from mailer.platform.settings import load_settings

    dotenv = tmp_path / ".env"
    dotenv.write_text("MAILER_ENV=development\nMAILER_SECRET_KEY=from-the-dotenv-file-0123\n")
    monkeypatch.delenv("MAILER_ENV", raising=False)
    monkeypatch.delenv("MAILER_SECRET_KEY", raising=False)
    settings = load_settings(env_file=dotenv)
    assert settings.env == "production"
    assert settings.secret_keys == ("from-the-dotenv-file-0123",)  # the rest is read
    app = create_app(settings)
    assert app.test_client().get("/dev/mail/").status_code == 404
    monkeypatch.setenv("MAILER_ENV", "development")  # as make run sets it for its processes
    assert load_settings(env_file=dotenv).development


def test_caught_mail_is_never_served_beyond_this_machine(app, tmp_path):
    settings = app.config["MAILER"].replace(env="development", mail_directory=str(tmp_path))
    client = create_app(settings).test_client()
    assert client.get("/dev/mail/").status_code == 200
    client.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    assert client.get("/dev/mail/").status_code == 404


def test_the_caught_mails_links_open_in_the_tab_not_in_its_frame(app, tmp_path):
    """Every page a mail links to forbids framing: followed inside the frame, it would break."""
    settings = app.config["MAILER"].replace(env="development", mail_directory=str(tmp_path))
    message = (
        b"From: n@example.org\r\nTo: reader@example.org\r\nSubject: Confirm it\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b'<html><head><title>x</title></head><body><a href="https://news.example.org/confirm/a">'
        b"Confirm</a></body></html>\r\n"
    )
    (tmp_path / "1700000000000000000-0123abcd.eml").write_bytes(message)
    framed = (
        create_app(settings).test_client().get("/dev/mail/1700000000000000000-0123abcd.eml/html")
    )
    assert '<head><base target="_top">' in framed.get_data(as_text=True)
