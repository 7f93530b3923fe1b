"""Seeded random requests over every route of the app: the cases of the fuzz test and `make fuzz`.

Each case is a method, a path with its parameters filled in (ids, tokens, names,
valid or hostile), a content type and a body (form, multipart, JSON, garbage),
sent logged out or logged in, with or without a valid CSRF token or API token.
The same seed gives the same cases.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

# Every form or JSON field any view reads, and a few it does not.
FIELDS = [
    "email", "name", "website", "form_token", "source", "password", "next", "title", "url",
    "summary", "body_html", "author", "published_at", "guid", "readers", "q", "page", "status",
    "schedule", "timezone", "off", "file", "List-Unsubscribe", "csrf_token", "subject", "intro",
    "sections", "frequency", "unknown",
]  # fmt: skip

HOSTILE_TEXT = [
    "", " ", "a", "reader@example.org", "Reader@Example.ORG", "x" * 5000, "\x00", "\r\nBcc: x@y",
    "\ud800", "😀" * 50, "<script>alert(1)</script>", "' OR 1=1 --", "../../etc/passwd",
    "=HYPERLINK(\"x\")", "http://[::1", "javascript:alert(1)", "https://news.example.org/a",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-11-26T07:00:00Z",
    "daily 07:00", "mon,thu 25:99", "Europe/Berlin", "Mars/Olympus", "-1", "0", "1",
    "99999999999999999999999999", "1e309", "NaN", "null", "true", "[]", "{}", "%00", "%",
    "One-Click", "reader@faß.de", "a@localhost", "\u202e", "\t", "/editor/", "//evil.example",
]  # fmt: skip

HOSTILE_IDS = ["0", "1", "2", "-1", "2147483647", "2147483648", "9223372036854775808",
               "99999999999999999999999999", "abc", "1.5", "%20", "1e3"]  # fmt: skip

CONTENT_TYPES = [
    "application/x-www-form-urlencoded", "multipart/form-data", "application/json",
    "text/plain", "application/xml", "", "application/json; charset=latin-1",
]  # fmt: skip


# Stands for the CSRF token of whichever client sends the case; the runner fills it in.
CSRF = "__MAILER_FUZZ_CSRF__"


@dataclass
class Context:
    """What the runner knows of the app under test: real tokens and ids to mix in."""

    tokens: list[str] = field(
        default_factory=list
    )  # valid confirm, unsubscribe and preferences tokens
    ids: list[str] = field(default_factory=lambda: ["1"])  # ids that exist
    csrf_token: str = ""
    api_token: str = ""


@dataclass
class Case:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    logged_in: bool

    def describe(self) -> str:
        return (
            f"{self.method} {self.path} {self.headers.get('Content-Type', '')} {self.body[:80]!r}"
        )


def routes(app) -> list[tuple[str, list[str], list[tuple[str, str]]]]:
    """(rule, methods, [(argument, converter)]) for every route of the app."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        converters = [(name, type(conv).__name__) for name, conv in rule._converters.items()]
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        found.append((rule.rule, methods, converters))
    return sorted(found)


def _token(rng: random.Random, context: Context) -> str:
    choice = rng.random()
    real = rng.choice(context.tokens) if context.tokens else "abc.def"
    if choice < 0.3:
        return real
    if choice < 0.5:  # tampered
        middle = len(real) // 2
        return (
            real[:middle] + ("A" if real[middle : middle + 1] != "A" else "B") + real[middle + 1 :]
        )
    if choice < 0.6:
        return "test"
    if choice < 0.7:
        return "WzEsImFiYyJd.forged-signature-part"  # a foreign token's shape
    return rng.choice(HOSTILE_TEXT).replace("/", "_").replace("?", "_") or "x"


def _path(rng: random.Random, rule: str, converters: list[tuple[str, str]], ctx: Context) -> str:
    path = rule
    for name, kind in converters:
        if kind == "IdConverter" or kind == "IntegerConverter":
            value = rng.choice(ctx.ids) if rng.random() < 0.4 else rng.choice(HOSTILE_IDS)
        elif name == "token":
            value = _token(rng, ctx)
        elif name == "action":
            value = rng.choice(["pause", "resume", "cancel", "retry", "explode", ""]) or "x"
        else:
            value = rng.choice(HOSTILE_TEXT).replace("/", "_").replace("?", "_") or "x"
        path = re.sub(rf"<(?:\w+:)?{name}>", _quote(value).replace("\\", "%5C"), path, count=1)
    if rng.random() < 0.2:
        path += "?" + "&".join(
            f"{rng.choice(FIELDS)}={_quote(rng.choice(HOSTILE_TEXT + HOSTILE_IDS))}"
            for _ in range(rng.randint(1, 3))
        )
    return path


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _fields(rng: random.Random, ctx: Context) -> dict[str, str]:
    chosen = rng.sample(FIELDS, rng.randint(0, 6))
    fields = {name: rng.choice(HOSTILE_TEXT) for name in chosen}
    if rng.random() < 0.6 and ctx.csrf_token:
        fields["csrf_token"] = ctx.csrf_token
    return fields


def _json_body(rng: random.Random, fields: dict[str, str]) -> bytes:
    shape = rng.random()
    if shape < 0.5:
        value: object = {
            k: rng.choice([v, [v], {"x": v}, 7, None, True]) for k, v in fields.items()
        }
        return json.dumps(value, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    if shape < 0.65:
        depth = rng.choice([40, 2000, 30000])
        return ("[" * depth + "]" * depth).encode()
    if shape < 0.8:
        return b'{"email": "\\ud800x@example.org", "title": "\\udfff"}'
    if shape < 0.9:
        return rng.choice([b"[1,2", b'{"a":', b"\xff\xfe", b"null", b"123", b'"text"'])
    return json.dumps(
        {
            # U+FFFF once made the Atom feed not well-formed; <div/> nests like <div>.
            "title": rng.choice(["T", "T\uffff\x0b"]),
            "url": "https://news.example.org/" + str(rng.random()),
            "body_html": rng.choice(["<div>", "<div/>"]) * rng.choice([10, 5000]),
        }
    ).encode()


def _multipart(rng: random.Random, fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "fuzz" + str(rng.randint(0, 10**6))
    parts = []
    for name, value in fields.items():
        disposition = ("form-data" if rng.random() < 0.1 else f'form-data; name="{name}"') + (
            '; filename="f.csv"' if name == "file" else ""
        )
        parts.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
            + value.encode("utf-8", "surrogatepass")
            + b"\r\n"
        )
    if rng.random() < 0.1:
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data\r\n\r\nx\r\n".encode())
    body = b"".join(parts) + (f"--{boundary}--\r\n".encode() if rng.random() < 0.9 else b"")
    return body, f"multipart/form-data; boundary={boundary}"


def _body(rng: random.Random, ctx: Context) -> tuple[bytes, dict[str, str]]:
    content_type = rng.choice(CONTENT_TYPES)
    fields = _fields(rng, ctx)
    headers: dict[str, str] = {}
    if content_type.startswith("application/json"):
        body = _json_body(rng, fields)
        if ctx.csrf_token and rng.random() < 0.6:
            headers["X-CSRFToken"] = ctx.csrf_token
    elif content_type == "multipart/form-data":
        body, content_type = _multipart(rng, fields)
    elif content_type == "application/x-www-form-urlencoded":
        body = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in fields.items()).encode()
        if rng.random() < 0.05:
            body += b"&" + b"x=" + b"y" * 70_000  # over the form size limit
    else:
        body = rng.randbytes(rng.randint(0, 300))
    if content_type:
        headers["Content-Type"] = content_type
    return body, headers


def cases(app, context: Context, *, seed: int, count: int) -> Iterator[Case]:
    rng = random.Random(seed)
    table = routes(app)
    for _ in range(count):
        rule, methods, converters = rng.choice(table)
        method = rng.choice(methods + (["PUT", "DELETE"] if rng.random() < 0.03 else []))
        path = _path(rng, rule, converters, context)
        if rng.random() < 0.05 and len(path) > 1:
            # /%70references/<token>: the same page, spelled so a log filter may miss it.
            path = f"/%{ord(path[1]):02x}{path[2:]}"
        headers: dict[str, str] = {}
        body = b""
        if method != "GET":
            body, headers = _body(rng, context)
        if rule.startswith("/api") or rng.random() < 0.05:
            token = context.api_token if rng.random() < 0.7 else "mlr_" + "x" * 43
            headers["Authorization"] = rng.choice([f"Bearer {token}", token, "Basic eDp5", ""])
        if rng.random() < 0.1:
            headers["Accept"] = "application/json"
        yield Case(method, path, headers, body, logged_in=rng.random() < 0.6)
