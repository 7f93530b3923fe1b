"""Bad input gets a clear 4xx and changes nothing."""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy import select

from mailer.mail.tokens import Purpose, make_confirm_token, make_unsubscribe_token
from mailer.models import Subscriber, SubscriberStatus
from mailer.platform.db import db
from tests.conftest import SECRET
from tests.helpers import csrf_token, hidden_fields, reader_link, signup


def snapshot(app) -> list[tuple]:
    """Every subscriber row, every column: compared before and after bad input."""
    with app.app_context():
        rows = db.session.scalars(select(Subscriber).order_by(Subscriber.id)).all()
        columns = Subscriber.__table__.columns.keys()
        return [tuple(getattr(row, c) for c in columns) for row in rows]


def add_subscriber(app, email: str, status: SubscriberStatus) -> int:
    with app.app_context():
        row = Subscriber(email=email, email_key=email.lower(), status=status)
        db.session.add(row)
        db.session.commit()
        return row.id


@pytest.fixture
def existing(app) -> dict[str, int]:
    return {
        "pending": add_subscriber(app, "pending@example.org", SubscriberStatus.PENDING),
        "active": add_subscriber(app, "active@example.org", SubscriberStatus.ACTIVE),
    }


MALFORMED = [
    "",
    "not-an-address",
    "two@@example.org",
    "nobody@localhost",
    "spaces in@example.org",
    "x" * 330 + "@example.org",
    "victim@example.org\r\nBcc: everyone@example.org",
    "victim@example.org\nBcc: everyone@example.org",
]


@pytest.mark.parametrize("address", MALFORMED)
def test_malformed_address_in_the_form_is_refused(app, client, existing, address):
    before = snapshot(app)
    response = signup(client, address)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'role="alert"' in page
    assert "email address" in page
    assert snapshot(app) == before


@pytest.mark.parametrize("address", MALFORMED[:4])
def test_malformed_address_in_json_is_refused(app, client, existing, address):
    before = snapshot(app)
    response = client.post(
        "/subscribe", json={"email": address}, headers={"X-CSRFToken": csrf_token(client)}
    )
    assert response.status_code == 400
    assert "email address" in response.get_json()["error"]
    assert snapshot(app) == before


@pytest.mark.parametrize("name", ["Ada\r\nBcc: evil@example.org", "Ada\nX-Injected: 1", "N" * 101])
def test_header_injection_and_overlong_names_are_refused(app, client, existing, name):
    before = snapshot(app)
    response = signup(client, "fresh@example.org", name=name)
    assert response.status_code == 400
    assert 'role="alert"' in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_a_one_megabyte_form_is_refused(app, client, existing):
    before = snapshot(app)
    fields = hidden_fields(client.get("/subscribe").get_data(as_text=True))
    response = client.post(
        "/subscribe", data={**fields, "email": "big@example.org", "name": "x" * 1_000_000}
    )
    assert response.status_code == 413
    assert "too much data" in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_a_one_megabyte_json_body_is_refused(app, client, existing):
    before = snapshot(app)
    response = client.post(
        "/subscribe",
        json={"email": "big@example.org", "name": "x" * 1_000_000},
        headers={"X-CSRFToken": csrf_token(client)},
    )
    assert response.status_code == 413
    assert "too much data" in response.get_json()["error"]
    assert snapshot(app) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "image/png"])
def test_wrong_content_types_are_refused(app, client, existing, content_type):
    before = snapshot(app)
    response = client.post(
        "/subscribe", data="email=someone@example.org", content_type=content_type
    )
    assert response.status_code == 415
    assert "Content-Type" in response.get_data(as_text=True)
    assert snapshot(app) == before


@pytest.mark.parametrize("body", ["[1, 2]", '"someone@example.org"', "{not json"])
def test_json_that_is_not_an_object_is_refused(app, client, existing, body):
    before = snapshot(app)
    response = client.post(
        "/subscribe",
        data=body,
        content_type="application/json",
        headers={"X-CSRFToken": csrf_token(client)},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]
    assert snapshot(app) == before


def test_a_wrong_csrf_token_is_refused(app, client, existing):
    before = snapshot(app)
    fields = hidden_fields(client.get("/subscribe").get_data(as_text=True))
    response = client.post(
        "/subscribe", data={**fields, "csrf_token": "forged", "email": "csrf@example.org"}
    )
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    response = client.post("/subscribe", data={"email": "csrf@example.org"})
    assert response.status_code == 400
    assert snapshot(app) == before


def test_confirming_without_a_csrf_token_is_refused(app, client, existing):
    before = snapshot(app)
    with app.app_context():
        token = make_confirm_token(*reader_link(app, existing["pending"]))
    response = client.post(f"/confirm/{token}", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert snapshot(app) == before


def tamper(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


class EightDaysAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 8 * 86400


def expired_confirm_token(app, subscriber_id: int) -> str:
    return URLSafeTimedSerializer(SECRET, salt=Purpose.CONFIRM.value, signer=EightDaysAgo).dumps(
        list(reader_link(app, subscriber_id))
    )


def bad_tokens(app, existing) -> dict[str, tuple[str, int]]:
    """path -> expected status, for each way a link can be wrong."""
    with app.app_context():
        confirm = make_confirm_token(*reader_link(app, existing["pending"]))
        unsubscribe = make_unsubscribe_token(*reader_link(app, existing["active"]))
    other_key = URLSafeSerializer("another-secret-key-entirely", salt=Purpose.UNSUBSCRIBE.value)
    return {
        f"/confirm/{tamper(confirm)}": 400,
        f"/confirm/{expired_confirm_token(app, existing['pending'])}": 410,
        f"/confirm/{unsubscribe}": 400,  # an unsubscribe token used to confirm
        "/confirm/not-a-token": 400,
        f"/unsubscribe/{tamper(unsubscribe)}": 400,
        f"/unsubscribe/{confirm}": 400,  # a confirm token used to unsubscribe
        f"/unsubscribe/{other_key.dumps(existing['active'])}": 400,
        f"/unsubscribe/{URLSafeSerializer(SECRET, salt=Purpose.UNSUBSCRIBE.value).dumps('x')}": 400,
        f"/resubscribe/{tamper(unsubscribe)}": 400,
    }


def test_tampered_expired_and_cross_purpose_tokens_change_nothing(app, client, existing):
    before = snapshot(app)
    for path, status in bad_tokens(app, existing).items():
        token = csrf_token(client)
        for method in ("get", "post"):
            if method == "get" and path.startswith("/resubscribe/"):
                continue
            response = getattr(client, method)(path, data={"csrf_token": token})
            assert response.status_code == status, (method, path)
            page = response.get_data(as_text=True)
            assert "This link does not work" in page, (method, path)
            assert "Sign up" in page  # a friendly way back
        # The one-click form of the POST too.
        if path.startswith("/unsubscribe/"):
            response = app.test_client().post(path, data={"List-Unsubscribe": "One-Click"})
            assert response.status_code == status
    assert snapshot(app) == before


def test_expired_confirmation_page_offers_to_sign_up_again(app, client, existing):
    response = client.get(f"/confirm/{expired_confirm_token(app, existing['pending'])}")
    assert response.status_code == 410
    page = response.get_data(as_text=True)
    assert "expired" in page
    assert 'href="/subscribe"' in page


def test_a_valid_token_for_a_deleted_reader_is_a_friendly_404(app, client, existing):
    with app.app_context():
        token = make_unsubscribe_token(987654, "a-key-of-nobody")
    before = snapshot(app)
    for response in (client.get(f"/unsubscribe/{token}"), client.post(f"/unsubscribe/{token}")):
        assert response.status_code == 404
        assert "could not find this subscription" in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_unknown_fields_and_non_string_values_in_json_are_handled(app, client, existing):
    before = snapshot(app)
    response = client.post(
        "/subscribe",
        json={"email": ["a@example.org"], "name": 5},
        headers={"X-CSRFToken": csrf_token(client)},
    )
    assert response.status_code == 400
    assert snapshot(app) == before


def test_an_api_error_is_only_its_message(client):
    """No page-only fields (a reader's "sign up again") in an API's answer."""
    answer = client.get("/api/digests/1", headers={"Authorization": "Bearer not-a-token"})
    assert answer.status_code == 401 and set(answer.get_json()) == {"error"}
    from mailer.access.api_tokens import create_api_token

    with client.application.app_context():
        token = create_api_token("errors")
    missing = client.get("/api/digests/999", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404 and set(missing.get_json()) == {"error"}
