"""Settings: every MAILER_* variable is checked at start, and a wrong one is named."""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
import typing

import annotated_types
import pytest
from pydantic import ValidationError

from mailer.platform.settings import (
    GROUPS,
    VARIABLES,
    ConfigError,
    Settings,
    load_settings,
    variable_of,
)
from tests.conftest import ROOT, free_port
from tests.helpers import wait_until

SECRET = "a-long-enough-secret-key"


def _bounds(name: str) -> tuple[float | None, float | None, int | None]:
    low = high = length = None
    for item in Settings.model_fields[name].metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Gt):
            low = item.gt
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.MaxLen):
            length = item.max_length
    return low, high, length  # type: ignore[return-value]


def bad_values(name: str) -> list[str]:
    """Texts this variable must refuse, found from its field: the wrong type, and each side
    of its bounds. A field with no bound or rule gives none, and fails the test below."""
    field = Settings.model_fields[name]
    kind = field.annotation
    low, high, length = _bounds(name)
    values = []
    if kind in (int, float):
        values.append("twelve")
        values += [str(low - 1)] if low is not None else []
        values += [str(high + 1)] if high is not None else []
        if kind is float:
            values.append("nan")
    elif kind is bool:
        values += ["maybe", "2"]
    elif typing.get_origin(kind) is typing.Literal:
        values.append("no-such-" + str(typing.get_args(kind)[0]))
    elif kind is str:
        values.append("one line\nand another")  # a header injection, for most of them
        if length is not None:
            values.append("x" * (length + 1))
    elif typing.get_origin(kind) is tuple and length is not None:
        values.append(",".join(f"s{n}" for n in range(length + 1)))
    return values


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_integer_setting_has_both_bounds(name):
    if Settings.model_fields[name].annotation in (int, float):
        low, high, _length = _bounds(name)
        assert low is not None and high is not None, variable_of(name)


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_a_wrong_value_of_any_setting_stops_the_start_naming_it(name):
    variable = variable_of(name)
    values = bad_values(name)
    assert values, f"{variable} refuses nothing: give it a type, bounds or a rule"
    for value in values:
        with pytest.raises(ConfigError) as error:
            load_settings(environ={"MAILER_SECRET_KEY": SECRET, variable: value})
        message = str(error.value)
        assert message.startswith(variable), (value, message)
        assert "\n" not in message  # the CLI and the entrypoints print it as one line


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAILER_BASE_URL", "news.example.com"),
        ("MAILER_REDIS_URL", "127.0.0.1:6379"),
        ("MAILER_FROM", "nobody"),
        ("MAILER_FEEDS", "ftp://example.com/feed"),
        ("MAILER_EMBED_ORIGINS", "https://news.example.com/page"),
        ("MAILER_SIGNUP_RATE_LIMIT_IP", "10 per fortnight"),
        ("MAILER_TIMEZONE", "Mars/Olympus"),
        ("MAILER_WEB_BIND", "8000"),
        ("MAILER_DKIM_DOMAIN", "not a domain"),
        ("MAILER_BOUNCE_LOCALPART", "bounces+x"),
        ("MAILER_FEEDBACK_SENDER_ID", "abc"),
        ("MAILER_UNSUBSCRIBE_MAILTO", "nobody"),
        ("MAILER_DATABASE_URL", "not a url"),
    ],
)
def test_values_of_the_right_type_but_the_wrong_form_are_refused(variable, value):
    with pytest.raises(ConfigError, match=f"^{variable}"):
        load_settings(environ={"MAILER_SECRET_KEY": SECRET, variable: value})


def test_a_secret_is_never_repeated_in_the_error():
    for variable, value in (
        ("MAILER_SECRET_KEY", "short-secret"),
        ("MAILER_SMTP_PASSWORD", "p" * 501),
        ("MAILER_DATABASE_URL", "postgresql://u:hunter2@/" + "x" * 2000),
    ):
        with pytest.raises(ConfigError, match=variable) as error:
            load_settings(environ={"MAILER_SECRET_KEY": SECRET, variable: value})
        assert value not in str(error.value) and "hunter2" not in str(error.value)


def test_several_wrong_settings_are_all_named_on_the_one_line():
    with pytest.raises(ConfigError) as error:
        load_settings(
            environ={"MAILER_SECRET_KEY": SECRET, "MAILER_SMTP_PORT": "0", "MAILER_ARCHIVE": "?"}
        )
    assert "MAILER_SMTP_PORT" in str(error.value) and "MAILER_ARCHIVE" in str(error.value)


def test_the_defaults_hold_and_every_variable_is_a_field():
    settings = load_settings(environ={"MAILER_SECRET_KEY": SECRET})
    assert settings.smtp_port == 8025 and settings.web_bind == "127.0.0.1:8000"
    assert settings.database_url.endswith("/instance/mailer.db")
    assert len(VARIABLES) == len(Settings.model_fields)
    assert all(variable.startswith("MAILER_") for variable in VARIABLES)
    assert all(field.description for field in Settings.model_fields.values())


def test_settings_are_frozen_and_hashable():
    settings = load_settings(environ={"MAILER_SECRET_KEY": SECRET})
    with pytest.raises(ValidationError):
        settings.smtp_port = 25  # type: ignore[misc]
    assert hash(settings) == hash(settings.replace())
    assert settings.replace(smtp_port=2525).smtp_port == 2525


def test_a_replaced_value_is_checked_like_one_from_the_environment():
    settings = load_settings(environ={"MAILER_SECRET_KEY": SECRET})
    with pytest.raises(ConfigError, match="MAILER_CLAIM_STALE_SECONDS"):
        settings.replace(smtp_timeout=100)
    with pytest.raises(ConfigError, match="MAILER_SMTP_PORT"):
        load_settings(environ={"MAILER_SECRET_KEY": SECRET}, smtp_port=70000)


def test_the_environment_comes_first_then_the_dotenv_file(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "MAILER_SECRET_KEY=from-the-dotenv-file-0123\nMAILER_SMTP_PORT=2525\n"
        "MAILER_FEEDS=https://a.example/feed https://b.example/feed\nOTHER_TOOL=1\n"
    )
    monkeypatch.delenv("MAILER_SECRET_KEY", raising=False)
    monkeypatch.delenv("MAILER_FEEDS", raising=False)
    monkeypatch.setenv("MAILER_SMTP_PORT", "2600")
    settings = load_settings(env_file=dotenv)
    assert settings.smtp_port == 2600
    assert settings.secret_keys == ("from-the-dotenv-file-0123",)
    assert settings.feeds == ("https://a.example/feed", "https://b.example/feed")


def test_a_dotenv_value_that_is_wrong_is_named_too(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"MAILER_SECRET_KEY={SECRET}\nMAILER_SEND_BATCH_SIZE=0\n")
    monkeypatch.delenv("MAILER_SEND_BATCH_SIZE", raising=False)
    with pytest.raises(ConfigError, match=r"^MAILER_SEND_BATCH_SIZE"):
        load_settings(env_file=dotenv)


def test_a_given_environment_is_the_whole_environment(monkeypatch):
    """Tests and tools hand in their own; the shell's MAILER_* must not leak into them."""
    monkeypatch.setenv("MAILER_SMTP_PORT", "2600")
    monkeypatch.setenv("MAILER_LIST_NAME", "From the shell")
    settings = load_settings(environ={"MAILER_SECRET_KEY": SECRET})
    assert settings.smtp_port == 8025 and settings.list_name == "The Newsletter"


# --- the Procfile's processes take their values from the same settings -----------------


def _run_python(code: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update({"MAILER_SECRET_KEY": SECRET, **variables})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_procfile_repeats_no_setting_of_its_own():
    procfile = (ROOT / "Procfile").read_text()
    assert "${" not in procfile
    assert "--port 2526" not in procfile and "--port 8025" not in procfile


def test_gunicorn_takes_its_bind_and_workers_from_the_settings():
    shown = "import mailer.gunicorn_config as c; print(c.bind, c.workers)"
    result = _run_python(shown, MAILER_WEB_BIND="127.0.0.1:8123", MAILER_WEB_WORKERS="3")
    assert result.stdout.strip() == "['127.0.0.1:8123'] 3", result.stderr
    refused = _run_python(shown, MAILER_WEB_BIND="127.0.0.1:99999")
    assert refused.returncode != 0
    assert refused.stderr.strip().startswith("mailer: MAILER_WEB_BIND")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_the_mail_catcher_listens_where_mailer_sends(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(
        MAILER_SECRET_KEY=SECRET,
        MAILER_SMTP_PORT=str(port),
        MAILER_MAIL_DIRECTORY=str(tmp_path),
        MAILER_DATABASE_URL=f"sqlite:///{tmp_path / 'unused.db'}",
    )
    catcher = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "mailer"), "catch-mail"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _connects(port), timeout=30, message="the catcher did not listen")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail("a@example.org", ["b@example.org"], b"Subject: hi\r\n\r\nhello\r\n")
        wait_until(lambda: list(tmp_path.glob("*.eml")), message="the mail was not kept")
    finally:
        catcher.terminate()
        catcher.wait(timeout=30)


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def test_the_readme_settings_tables_are_made_from_the_fields():
    from tools.settings_table import README, grouped_blocks, render

    text = README.read_text()
    listed = [group for groups in grouped_blocks(text) for group in groups]
    assert sorted(listed) == sorted(GROUPS), "each group in exactly one README block"
    assert render(text) == text, "README.md differs from the fields: python -m tools.settings_table"
    for variable in VARIABLES:
        assert f"| `{variable}` |" in text
