"""The processes of the Procfile, started as `make run` starts them, on ports of their own.

Used by `make fuzz` and `make chaos`: what they test is the stack as shipped (the
Procfile's own command lines), not a stand-in.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line and not line.startswith("#"))


def wait_for(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up within {timeout} s")
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own server
            return True
    except OSError:
        return False


class Stack:
    """web, worker, redis and mail from the Procfile, in a folder of their own."""

    def __init__(self, **settings: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="mailer-stack-"))
        self.redis_port = free_port()
        self.smtp_port = free_port()
        self.web_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.env = {
            **os.environ,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "MAILER_ENV": "development",
            "MAILER_SECRET_KEY": "stack-secret-key-0123456789",
            "MAILER_DATABASE_URL": f"sqlite:///{self.directory / 'mailer.db'}",
            "MAILER_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "MAILER_SMTP_HOST": "127.0.0.1",
            "MAILER_SMTP_PORT": str(self.smtp_port),
            "MAILER_BASE_URL": self.base_url,
            "MAILER_WEB_BIND": f"127.0.0.1:{self.web_port}",
            "MAILER_MAIL_DIRECTORY": str(self.directory / "mail"),
            **settings,
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def command(self, name: str) -> list[str]:
        line = procfile()[name].strip()
        # The development Redis gets this stack's own port and folder; the catcher, the web
        # and the bounce receiver take theirs from the settings in self.env.
        line = line.replace("--port 16379", f"--port {self.redis_port}")
        line = line.replace("--dir var/redis", f"--dir {self.directory}")
        line = line.replace("var/celerybeat-schedule", str(self.directory / "beat-schedule"))
        return shlex.split(line)

    def start(self, *names: str) -> None:
        for name in names:
            self.logs[name] = self.directory / f"{name}.log"
            with self.logs[name].open("ab") as log:
                self.processes[name] = subprocess.Popen(
                    self.command(name),
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if name == "redis":
                wait_for(lambda: _connects(self.redis_port), "redis")
                self.mailer("db", "upgrade")
            elif name == "mail":
                wait_for(lambda: _connects(self.smtp_port), "the mail catcher")
            elif name == "web":
                wait_for(lambda: answers(self.base_url + "/healthz"), "gunicorn")

    def mailer(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(BIN / "mailer"), *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    stack = Stack()
    try:
        stack.start("redis", "mail", "web", "worker")
        print(f"stack up at {stack.base_url}, files in {stack.directory}; Ctrl-C stops it")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.close()
        sys.exit(0)
