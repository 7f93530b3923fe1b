"""Signup throughput: POST /subscribe (JSON) through gunicorn, driven by wrk on loopback.

Baseline: a Flask view that does the same durable work (one INSERT and COMMIT on the
same database) behind the Procfile's own gunicorn command line. The confirmation mail
is only queued (the worker is stopped for this run), as in a real request.
"""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.services import ROOT, _connects, free_port
from bench.shipped import ShippedStack
from tools.stack import wait_for

WRK_SCRIPT = r"""
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
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


def _web_command(shipped: ShippedStack, app_path: str, port: int) -> list[str]:
    """The Procfile's web line (workers, logging, everything), on its own port and app."""
    assert shipped.stack is not None
    command = shipped.stack.command("web")
    # gunicorn's own --bind wins over the one its config takes from MAILER_WEB_BIND.
    return [*command[:-1], "--bind", f"127.0.0.1:{port}", app_path]


def signup_benchmark(shipped: ShippedStack, seconds: int = 10) -> dict:
    """mailer's signup and a view doing the same durable work, under the same load."""
    shipped.start(
        {
            "MAILER_SIGNUP_RATE_LIMIT_IP": "10000000 per minute",
            "MAILER_SIGNUP_RATE_LIMIT_ADDRESS": "10000000 per minute",
            "MAILER_SIGNUP_RATE_LIMIT_NETWORK": "10000000 per minute",
        }
    )
    assert shipped.stack is not None
    # The request path alone: no worker takes the queued confirmations meanwhile.
    shipped.stack.stop("worker")
    shipped.sql("DROP TABLE IF EXISTS bench_signups")  # the baseline starts empty too
    shipped.sql("CREATE TABLE bench_signups (email VARCHAR(320) PRIMARY KEY)")
    results = {}
    try:
        for name, app_path in (
            ("mailer", "mailer.entrypoints:web_app()"),
            ("durable_insert", "bench.trivial:app"),
        ):
            port = free_port()
            log = (shipped.directory / f"{name}.log").open("ab")
            process = subprocess.Popen(
                _web_command(shipped, app_path, port),
                cwd=ROOT,
                env=shipped.stack.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_for(lambda p=port: _connects(p), "gunicorn", timeout=30)
                base = f"http://127.0.0.1:{port}"
                result = run_wrk(base + "/subscribe", _session_headers(base), seconds)
                if result.non_2xx:
                    raise SystemExit(f"signup bench: {result.non_2xx} failed requests to {name}")
                results[name] = result.__dict__
            finally:
                process.terminate()
                process.wait(timeout=30)
                log.close()
    finally:
        shipped.stop()
    results["ratio"] = round(
        results["mailer"]["requests_per_second"] / results["durable_insert"]["requests_per_second"],
        3,
    )
    return results
