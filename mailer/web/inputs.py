"""The edge of every request: what a body, a URL or a query string may hold before a view runs.

Everything here turns input that would break a parser or a database into a
clear 4xx: JSON nested too deeply or holding lone surrogates, multipart parts
without a name, integers too large for a database column.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, Map

from mailer.platform.errors import InvalidInput

MAX_JSON_DEPTH = 32
# Ids in URLs fit PostgreSQL's INTEGER and SQLite's; larger ones exist nowhere.
MAX_ID = 2**31 - 1
MAX_PAGE = 100_000


class StrictJSONProvider(DefaultJSONProvider):
    """json.loads, refusing what no mailer field can hold: deep nesting, lone surrogates."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = json.loads(s, **kwargs)
        except RecursionError:
            raise InvalidInput("The JSON is nested too deeply.") from None
        _check_json_value(value)
        return value


def _check_json_value(value: object) -> None:
    """Iteratively, so a deep document cannot exhaust the stack here either."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidInput(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("The JSON holds text that is not valid Unicode.") from None


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: 1 to 2**31 - 1, anything else is a 404."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def page_number(name: str = "page") -> int:
    """A page number from the query string, always between 1 and MAX_PAGE."""
    page = request.args.get(name, 1, type=int) or 1
    return min(max(page, 1), MAX_PAGE)


def refuse_nameless_form_fields() -> None:
    """A multipart part with no name has no field to go to; before CSRF reads the form."""
    multipart = request.method == "POST" and request.mimetype == "multipart/form-data"
    if multipart and (None in request.form or None in request.files):
        raise BadRequest("A form field without a name.")


def init_inputs(app: Flask) -> None:
    """Called in create_app before any blueprint adds its routes."""
    app.json = StrictJSONProvider(app)
    app.url_map.converters["int"] = IdConverter
