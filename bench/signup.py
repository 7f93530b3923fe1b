"""Signup throughput: POST /subscribe (JSON) through gunicorn, driven by wrk on loopback.

Baseline: a trivial Flask view in the same gunicorn configuration. The confirmation
mail is only queued (no worker runs), as in a real request.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.services import ROOT, Services, _connects, _wait, free_port

WRK_SCRIPT = r"""
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  thread_id = id
end
request = function()
  counter = counter + 1
  local address = "w" .. thread_id .. "-" .. counter .. "-" .. math.random(1, 1e9)
  local body = '{"email": "' .. address .. '@example.org"}'
  return wrk.format("POST", "/subscribe", wrk.headers, body)
end
"""


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, headers: dict[str, str], seconds: int) -> WrkResult:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(WRK_SCRIPT)
    args = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    script.unlink()
    latency = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", output, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=_ms(latency["50"]),
        p99_ms=_ms(latency["99"]),
        non_2xx=int(errors.group(1)) if errors else 0,
    )


def _session_headers(base: str) -> dict[str, str]:
    """A browser's session cookie and CSRF token, as the site's own script would send."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/subscribe").read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    headers = {"Content-Type": "application/json", "X-CSRFToken": token}
    if cookie:
        headers["Cookie"] = cookie
    return headers


def gunicorn(app_path: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            app_path,
        ],
        cwd=ROOT,
        env={**os.environ, **env},
    )
    _wait(lambda: _connects(port), "gunicorn", timeout=30)
    return process, f"http://127.0.0.1:{port}"


def signup_benchmark(services: Services, seconds: int = 10) -> tuple[WrkResult, WrkResult]:
    """(mailer, baseline) under the same load."""
    services.reset_database()
    env = {
        **services.environ,
        "MAILER_SIGNUP_RATE_LIMIT_IP": "10000000 per minute",
        "MAILER_SIGNUP_RATE_LIMIT_ADDRESS": "10000000 per minute",
    }
    results = []
    for app_path in ("mailer:create_app()", "bench.trivial:app"):
        process, base = gunicorn(app_path, env)
        try:
            results.append(run_wrk(base + "/subscribe", _session_headers(base), seconds))
        finally:
            process.terminate()
            process.wait(timeout=30)
    return results[0], results[1]
