"""The reader's pages: sign up, confirm, unsubscribe."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from mailer import sections
from mailer.mail import addresses, tokens
from mailer.platform.errors import InvalidInput, UserError
from mailer.platform.settings import origin_of
from mailer.sections import Choice
from mailer.subscribers import subscriptions
from mailer.web import rate_limits
from mailer.web.errors import wants_json
from mailer.web.extensions import csrf
from mailer.web.rate_limits import Limit, rate_limit

bp = Blueprint("public", __name__)

HONEYPOT_FIELD = "website"
SOURCE_PATTERN = re.compile(r"[a-z0-9][a-z0-9._:-]{0,99}")
ONE_CLICK_BODY = "One-Click"
# In forms that show the section boxes: with it, no box ticked is a choice (and an error).
SECTIONS_SHOWN = "sections_shown"
TEST_PREFERENCES_LINK = "leads to their choice of sections and frequency"


def _settings():
    return current_app.config["MAILER"]


def _signup_input() -> dict[str, Any]:
    """The POSTed fields, from a form or a JSON object (the content type is checked earlier)."""
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise InvalidInput("The request body must be a JSON object.")
        return data
    fields: dict[str, Any] = request.form.to_dict()
    if "sections" in request.form or SECTIONS_SHOWN in request.form:
        # Checkboxes: one field per ticked box, none at all when every box is cleared.
        fields["sections"] = request.form.getlist("sections")
    return fields


def _hold_to_signup_limits(address: subscriptions.Address) -> None:
    """Per IP, per network and per target address, so nobody mail-bombs one inbox or
    mails strangers from a block of addresses. Held only after the cheap checks passed:
    a refused request leaves no counter behind."""
    settings = _settings()
    ip = rate_limits.remote_address()
    rate_limits.hold(
        "public.subscribe",
        [
            Limit(settings.signup_rate_limit_ip, "ip", ip),
            Limit(settings.signup_rate_limit_network, "network", rate_limits.network_of(ip)),
            Limit(settings.signup_rate_limit_address, "address", address.key),
        ],
    )


def _signup_fields(data: dict[str, Any]) -> tuple[subscriptions.Address, str | None, Choice]:
    """What the form asks for, checked without a look-up: DNS waits for the limits."""
    address = addresses.normalize_address(data.get("email"), check_deliverability=False)
    name = addresses.clean_name(data.get("name"))
    form = sections.form_of(data.get(SECTIONS_SHOWN))
    return address, name, sections.parse_choice(data.get("sections"), data.get("frequency"), form)


def _check_deliverable(address: subscriptions.Address) -> None:
    if _settings().check_deliverability:
        addresses.normalize_address(address.email, check_deliverability=True)


def _filled_the_honeypot(data: dict[str, object]) -> bool:
    return bool(data.get(HONEYPOT_FIELD))


def _sent_too_fast(data: dict[str, object]) -> bool:
    """Our own form sent sooner than a person types: a browser's autofill, or a bot."""
    if request.is_json:
        return False  # a script on our own page; CSRF and rate limits guard it
    age = tokens.form_age_seconds(str(data.get("form_token") or ""))
    return age is None or age < _settings().signup_min_seconds


def _kept_values(data: dict[str, object]) -> dict[str, object]:
    kept: dict[str, object] = {
        k: v for k, v in data.items() if k in {"email", "name", "frequency"} and isinstance(v, str)
    }
    chosen = data.get("sections")
    if isinstance(chosen, list):
        kept["sections"] = [s for s in chosen if isinstance(s, str)]
    return kept


def _signup_done(origin: str = "own") -> Response | str:
    # Identical for every address and every prior state: the form reveals nothing.
    if wants_json():
        response = jsonify(status="ok", message="Check your inbox: we sent you a link to confirm.")
        response.status_code = 202
        return response
    back = None
    if origin not in {EmbedOrigin.OWN, EmbedOrigin.REFUSED}:
        referer = request.headers.get("Referer", "")
        back = referer if origin_of(referer) == origin else origin + "/"
    return render_template("pages/signup_done.html", back=back)


class ForeignOrigin(UserError):
    status = 403
    title = "Not from this site"


@bp.after_request
def _cors_for_listed_sites(response: Response) -> Response:
    """A listed site's script may read the answer of its own signup form, nobody else's."""
    if request.endpoint == "public.subscribe":
        response.vary.add("Origin")
        origin = request.headers.get("Origin", "")
        if origin and origin_of(origin) in _settings().embed_origins:
            response.headers["Access-Control-Allow-Origin"] = origin_of(origin) or ""
    return response


@bp.after_request
def _token_pages_are_not_stored(response: Response) -> Response:
    """A page at a token's URL (confirm, unsubscribe, resubscribe, preferences) shows the
    reader's address and acts for them: no shared or browser cache may keep it."""
    if request.view_args and "token" in request.view_args:
        response.headers["Cache-Control"] = "no-store"
    return response


def _signup_form(
    *,
    error: str | None = None,
    notice: str | None = None,
    values: dict | None = None,
    status: int = 200,
):
    embed = request.args.get("embed") == "1"
    html = render_template(
        "pages/subscribe.html",
        error=error,
        notice=notice,
        values=values or {},
        form_token=tokens.make_form_token(),
        consent_text=_settings().consent_text,
        source="embed" if embed else "subscribe-page",
        sections=sections.offered(),
    )
    return html, status


@bp.get("/")
@bp.get("/subscribe")
def subscribe_form():
    return _signup_form()


class EmbedOrigin(StrEnum):
    OWN = "own"  # our own page, or a request that names no origin: CSRF as for any form
    REFUSED = "refused"  # a page on a site that is not in MAILER_EMBED_ORIGINS


def _embedding_origin() -> str:
    """Where the form was posted from: OWN, REFUSED, or a listed site's origin.

    A listed site's own pages may post the signup form with no session and no CSRF
    token (they have neither). That is safe because a signup only ever sends a
    confirmation mail: the reader still confirms from their inbox (double opt-in),
    and the honeypot and the per-IP and per-address rate limits still apply.
    """
    settings = _settings()
    header = request.headers.get("Origin")
    claimed = header if header is not None else request.headers.get("Referer", "")
    origin = origin_of(claimed) if claimed and claimed != "null" else None
    if origin is None and header is None:
        return EmbedOrigin.OWN
    if origin == origin_of(settings.base_url):
        return EmbedOrigin.OWN
    if origin is not None and origin in settings.embed_origins:
        return origin
    return EmbedOrigin.REFUSED if header is not None else EmbedOrigin.OWN


@bp.post("/subscribe")
def subscribe():
    origin = _embedding_origin()
    if origin == EmbedOrigin.REFUSED:
        raise ForeignOrigin(
            "This signup form may only be sent from the newsletter's own pages and the sites "
            "it lists. Nothing was changed."
        )
    if origin == EmbedOrigin.OWN:
        csrf.protect()  # our own form and our own page's scripts carry the token
    data = _signup_input()
    if _filled_the_honeypot(data):
        return _signup_done(origin)  # bots see the usual page and nothing happens
    if origin == EmbedOrigin.OWN and _sent_too_fast(data):
        # A person whose browser filled the form in a blink is never dropped: one more press.
        return _signup_form(
            notice="Almost there: please check your address and press Subscribe again.",
            values=_kept_values(data),
        )
    source = str(data.get("source") or "subscribe-page")
    if origin != EmbedOrigin.OWN:
        source = f"embed:{urlsplit(origin).hostname}"[:100]
    elif not SOURCE_PATTERN.fullmatch(source):
        source = "subscribe-page"
    try:
        address, name, choice = _signup_fields(data)
        _hold_to_signup_limits(address)
        _check_deliverable(address)
    except InvalidInput as error:
        if wants_json() or origin != EmbedOrigin.OWN:
            raise
        return _signup_form(error=error.message, values=_kept_values(data), status=400)
    subscriptions.request_subscription(address, name, source=source, choice=choice)
    return _signup_done(origin)


@bp.get("/confirm/<token>")
def confirm(token: str):
    # GET never changes anything: mail scanners fetch every link.
    subscriber = subscriptions.signup_of(tokens.read_confirm_token(token))
    return render_template(
        "pages/confirm.html",
        subscriber=subscriber,
        token=token,
        list_name=_settings().list_name,
        # Shown before confirming: the signup form is open to anyone, the reader decides.
        choice=sections.describe(subscriber.sections) if sections.offered() else "every issue",
    )


@bp.post("/confirm/<token>")
def confirm_post(token: str):
    reader = subscriptions.signup_of(tokens.read_confirm_token(token))
    outcome = subscriptions.confirm_subscription(reader.id)
    return render_template(
        "pages/confirmed.html", outcome=outcome.value, list_name=_settings().list_name
    )


def _test_copy_page(link_does: str | None = None) -> str:
    # The link of an editor's test copy: it acts for nobody, and says so.
    return render_template(
        "pages/unsubscribe_test.html", list_name=_settings().list_name, link_does=link_does
    )


@bp.get("/unsubscribe/<token>")
def unsubscribe(token: str):
    if token == tokens.TEST_UNSUBSCRIBE_TOKEN:
        return _test_copy_page()
    subscriber = subscriptions.reader_of(tokens.read_unsubscribe_token(token))
    return render_template(
        "pages/unsubscribe.html",
        subscriber=subscriber,
        token=token,
        list_name=_settings().list_name,
        # "Fewer emails instead": their sections kept, weekly; or fewer sections.
        preferences_token=tokens.make_preferences_token(subscriber.id, subscriber.link_key),
        sections=sections.offered(),
    )


# RFC 8058: mailbox providers POST here with no cookies and no CSRF token; the
# signed token in the URL is the authentication. Answer 200, never redirect.
@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe_post(token: str):
    if token == tokens.TEST_UNSUBSCRIBE_TOKEN:
        return _test_copy_page()
    reader = subscriptions.reader_of(tokens.read_unsubscribe_token(token))
    subscriptions.unsubscribe(reader.id)
    if request.form.get("List-Unsubscribe") == ONE_CLICK_BODY:
        return Response("You have been unsubscribed.\n", mimetype="text/plain")
    return render_template("pages/unsubscribed.html", token=token, list_name=_settings().list_name)


def _preferences_page(
    reader,
    token: str,
    *,
    notice: str | None = None,
    error: str | None = None,
    values: dict | None = None,
    status: int = 200,
):
    chosen = {
        "sections": sections.chosen_slugs(reader.sections),
        "frequency": reader.frequency.value,
    }
    html = render_template(
        "pages/preferences.html",
        subscriber=reader,
        token=token,
        unsubscribe_token=tokens.make_unsubscribe_token(reader.id, reader.link_key),
        sections=sections.offered(),
        kept=sections.kept_names(reader.sections),
        values=values or chosen,
        notice=notice,
        error=error,
        list_name=_settings().list_name,
    )
    return html, status


@bp.get("/preferences/<token>")
def preferences(token: str):
    if token == tokens.TEST_UNSUBSCRIBE_TOKEN:
        return _test_copy_page(TEST_PREFERENCES_LINK)
    reader = subscriptions.reader_of(tokens.read_preferences_token(token))
    return _preferences_page(reader, token)


# Not exempt from CSRF: the page's form carries the token (only RFC 8058's POST is exempt).
# Open when Redis cannot count: the signed link names one reader, and refusing would keep
# mail coming to a reader who asked for less.
@bp.post("/preferences/<token>")
@rate_limit(lambda: _settings().signup_rate_limit_ip, fail_open=True)
def preferences_post(token: str):
    if token == tokens.TEST_UNSUBSCRIBE_TOKEN:
        return _test_copy_page(TEST_PREFERENCES_LINK)
    reader = subscriptions.reader_of(tokens.read_preferences_token(token))
    data = _signup_input()
    try:
        if data.get("keep_sections") == "1":  # "weekly instead", from the unsubscribe page
            choice = Choice(reader.sections, sections.parse_frequency(data.get("frequency")))
        else:
            form = sections.form_of(data.get(SECTIONS_SHOWN), reader.sections)
            choice = sections.parse_choice(data.get("sections"), data.get("frequency"), form)
    except InvalidInput as error:
        if wants_json():
            raise
        return _preferences_page(
            reader, token, error=error.message, values=_kept_values(data), status=400
        )
    if not subscriptions.change_choice(reader.id, choice):
        raise NotSubscribed("This address is not subscribed. Sign up again to choose.")
    # `reader` is read again on use: the change's transaction expired it.
    if wants_json():
        return jsonify(status="ok", sections=reader.sections, frequency=reader.frequency.value)
    return _preferences_page(reader, token, notice="Saved. The next issue you get follows it.")


class NotSubscribed(UserError):
    status = 409
    title = "Not subscribed"


@bp.post("/resubscribe/<token>")
@rate_limit(lambda: _settings().signup_rate_limit_ip)
def resubscribe(token: str):
    reader = subscriptions.reader_of(tokens.read_unsubscribe_token(token))
    subscriptions.resubscribe(reader.id, source="resubscribe")
    return _signup_done()
