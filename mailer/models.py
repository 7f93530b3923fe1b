"""The database records: SQL is the source of truth for everything mailer owes."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

# The base and column types live in mailer.platform.columns; utcnow is used everywhere from here.
from mailer.platform.columns import NAMING, Base, IdsNeverReused, UTCDateTime, enum_column, utcnow

__all__ = ["NAMING", "Base", "UTCDateTime", "utcnow"]


def new_link_key() -> str:
    return secrets.token_urlsafe(12)


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # the address does not take mail: never mailed again


class Frequency(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"

    @property
    def sending_slot(self) -> int:
        # A daily and a weekly run may send at once; two runs of one frequency never.
        return 1 if self is Frequency.DAILY else 2


class Subscriber(IdsNeverReused, Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # As email-validator normalized it (domain lowercased, local part kept).
    email: Mapped[str] = mapped_column(String(320))
    # Lowercased: Alice@x.org and alice@x.org are one reader.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[SubscriberStatus] = mapped_column(
        enum_column(SubscriberStatus, "subscriber_status"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Consent record: the form it came from and the wording the reader was shown.
    consent_source: Mapped[str | None] = mapped_column(String(100))
    consent_text: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A confirmation mail is owed while requested_at is later than sent_at.
    # Indexed: the confirmation drain reads the last minutes' requests after every rush.
    confirmation_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set while a task sends the confirmation; a stale one means its worker died.
    confirmation_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The welcome mail after confirming, claimed and sent like the confirmation.
    welcome_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    welcome_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    complained_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # marked as spam
    # In every link mailed to this reader, checked against the row: a link reaches its
    # own reader only, even if an id were ever given to someone else.
    link_key: Mapped[str] = mapped_column(String(32), default=new_link_key)
    # Links mailed before they carried a key still work for the readers they were mailed to.
    legacy_links: Mapped[bool] = mapped_column(Boolean, default=False)
    # The reader's sections (mailer.sections): None, every section, those added later too;
    # otherwise their slugs, sorted and comma-joined. Front-page articles go to everyone.
    sections: Mapped[str | None] = mapped_column(String(1000))
    frequency: Mapped[Frequency] = mapped_column(
        enum_column(Frequency, "frequency"), default=Frequency.DAILY, server_default="daily"
    )

    def __repr__(self) -> str:
        return f"<Subscriber {self.id} {self.status}>"


class Section(Base):
    """A section readers can choose; seeded from MAILER_SECTIONS, then an editor's to change.

    The slug never changes (the API, feeds and readers' choices name it); the name does.
    A retired section is offered to nobody and takes no new article, but readers who
    chose it keep it in their choice.
    """

    __tablename__ = "sections"

    slug: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    position: Mapped[int] = mapped_column(Integer)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(IdsNeverReused, Base):
    """A bearer token for the site's API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Article(IdsNeverReused, Base):
    """An article waiting for (digest_id is NULL) or sent in exactly one digest."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    guid: Mapped[str | None] = mapped_column(String(500), unique=True)
    summary: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)  # sanitized with nh3
    author: Mapped[str | None] = mapped_column(String(200))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by the intake worker once the article came through the Redis queue;
    # only ready articles go into a digest.
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("digests.id"), index=True)
    # Where an editor put it in the next digest (lower first); None: newest first, after.
    position: Mapped[int | None] = mapped_column(Integer)
    # A slug of MAILER_SECTIONS; None: the front page, for every reader.
    section: Mapped[str | None] = mapped_column(String(40))
    # Every article goes out once daily (digest_id) and once weekly (this).
    weekly_digest_id: Mapped[int | None] = mapped_column(ForeignKey("digests.id"), index=True)


class DigestStatus(enum.StrEnum):
    """The one state column; its transitions are in mailer/digests/states.py."""

    SENDING = "sending"
    PAUSED = "paused"
    CANCELLING = "cancelling"  # unsent rows skipped; batches under way finishing
    SENT = "sent"
    SENT_WITH_FAILURES = "sent_with_failures"
    CANCELLED = "cancelled"


class Digest(IdsNeverReused, Base):
    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[DigestStatus] = mapped_column(
        enum_column(DigestStatus, "digest_status"), index=True
    )
    # Which readers it is for: those who chose this frequency.
    frequency: Mapped[Frequency] = mapped_column(
        enum_column(Frequency, "frequency"), default=Frequency.DAILY, server_default="daily"
    )
    # The frequency's slot while the digest is sending, NULL after: the unique constraint
    # lets only one digest of each frequency send at a time, whoever triggers it.
    sending_slot: Mapped[int | None] = mapped_column(Integer, unique=True)
    # A schedule period ("2026-11-25"): beat firing twice still makes one digest.
    period: Mapped[str | None] = mapped_column(String(40), unique=True)
    trigger: Mapped[str] = mapped_column(Text)  # "api:<token name>", "editor:<address>"...
    article_watermark: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(Text)
    # An editor's (or the API's) subject, the same for every segment; else each segment's
    # subject is made from the template with its own articles' titles.
    subject_given: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    intro: Mapped[str | None] = mapped_column(Text)  # the editor's words above the articles
    # What every segment is rendered from besides its articles, fixed when the digest is
    # made (JSON of digests.compose.DigestInputs): date, subject template, list and footer.
    inputs: Mapped[str | None] = mapped_column(Text)
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    # Where the bodies hold each reader's links: the marker of their render (mailer/slots.py).
    slot_marker: Mapped[str | None] = mapped_column(String(32))
    total: Mapped[int] = mapped_column(Integer, default=0)
    # Delivery rows are made by a worker, in ranges of subscriber ids, after the trigger
    # has answered: rows exist for readers up to this id; done once materialized_at is set.
    materialized_up_to: Mapped[int] = mapped_column(Integer, default=0)
    materialized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An editor's pause stops new claims; a cancel skips every row not yet sent.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hidden_from_archive: Mapped[bool] = mapped_column(Boolean, default=False)
    # Readers of this frequency whose sections had nothing new: no mail, no delivery row.
    nothing_new: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Its rows' final tallies, written when it finishes (NULL while it sends): History and
    # the dashboard read these, and cost the same at a hundred readers and at a million.
    sent_count: Mapped[int | None] = mapped_column(Integer)
    failed_count: Mapped[int | None] = mapped_column(Integer)
    unknown_count: Mapped[int | None] = mapped_column(Integer)
    skipped_count: Mapped[int | None] = mapped_column(Integer)


# The sections key of readers who take every section (Subscriber.sections is None).
ALL_SECTIONS_KEY = "*"


class DigestSegment(Base):
    """One digest as the readers of one set of sections get it: rendered once for all of them.

    Made by the materializer the first time it meets a reader with this set. A set with
    no new article has a segment with `articles` 0 and no body: its readers get no mail.
    """

    __tablename__ = "digest_segments"
    __table_args__ = (UniqueConstraint("digest_id", "sections_key"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id"))
    # Subscriber.sections, with ALL_SECTIONS_KEY for every section.
    sections_key: Mapped[str] = mapped_column(String(1000))
    articles: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(Text)
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    slot_marker: Mapped[str | None] = mapped_column(String(32))  # as Digest.slot_marker
    render_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"  # taken by a batch task, not yet known to be sent
    SENT = "sent"
    RETRYING = "retrying"  # 4xx or a lost connection: tried again after next_attempt_at
    FAILED = "failed"  # 5xx, or too many attempts: smtp_reply says why
    UNKNOWN = "unknown"  # on the wire when its worker died: reported, never resent
    SKIPPED = "skipped"  # the reader unsubscribed after the digest was made


class Delivery(Base):
    """One digest to one reader: the ledger that makes every send exactly-once-or-reported."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("digest_id", "subscriber_id"),
        Index("ix_deliveries_digest_status", "digest_id", "status"),
        # Claims take the lowest pending ids from here: only rows still pending are in
        # it, so a claim never walks past the rows already sent.
        Index(
            "ix_deliveries_pending",
            "digest_id",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        {"sqlite_autoincrement": True},  # ids never come back
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus, "delivery_status"))
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("send_claims.id"), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    # Failed only because temporary refusals used up every attempt: worth a retry later.
    gave_up: Mapped[bool] = mapped_column(Boolean, default=False)
    # The mail this reader gets (None: rows made before segments, sent the digest's body).
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("digest_segments.id"))


class BounceKind(enum.StrEnum):
    """What a bounce did to its reader (mailer/bounces/policy.py decides it from the reason)."""

    HARD = "hard"  # the address is dead: the reader is bounced
    SOFT = "soft"  # the mailbox is in trouble: counted, bounced after so many in a row
    COMPLAINT = "complaint"  # the reader marked a mail as spam (an ARF report)
    # The receiving side refused the sender (a blocklist, a spam verdict, SPF/DKIM/DMARC,
    # a policy): the reader is left as they are, the refusal is shown per domain.
    REFUSED = "refused"


class Bounce(IdsNeverReused, Base):
    """A bounce or a complaint that came back for one mail to one reader."""

    __tablename__ = "bounces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    # The newsletter it answered (None: a confirmation, or a complaint without one).
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("digests.id"), index=True)
    kind: Mapped[BounceKind] = mapped_column(enum_column(BounceKind, "bounce_kind"))
    status: Mapped[str | None] = mapped_column(String(20))  # the enhanced code, e.g. 5.1.1
    text: Mapped[str | None] = mapped_column(Text)  # what the receiving server said
    # Why (mailer.bounces.reasons.Reason) and at which receiving domain: kept on every row.
    reason: Mapped[str | None] = mapped_column(String(20))
    domain: Mapped[str | None] = mapped_column(String(253), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SendClaim(IdsNeverReused, Base):
    """A batch of deliveries one task took; its heartbeat says whether the task lives."""

    __tablename__ = "send_claims"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id"), index=True)
    worker: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class Feed(IdsNeverReused, Base):
    """An RSS/Atom feed mailer polls, with what it needs for conditional GETs."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class Editor(IdsNeverReused, Base):
    """A person who logs in to the console; the password is stored as an Argon2id hash."""

    __tablename__ = "editors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lowercased
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # In the session cookie; a logout moves it on, and every older cookie stops working.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)


class Suppression(IdsNeverReused, Base):
    """An erased reader's address, hashed: imports can never bring them back."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImportStatus(enum.StrEnum):
    CHECKING = "checking"  # a worker is validating the file for the preview
    PREVIEWED = "previewed"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class SubscriberImport(IdsNeverReused, Base):
    """An uploaded subscriber CSV, kept in SQL so any worker can run it."""

    __tablename__ = "subscriber_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[ImportStatus] = mapped_column(enum_column(ImportStatus, "import_status"))
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[str | None] = mapped_column(Text)  # JSON: counts by outcome, errors
    requested_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConsoleSetting(Base):
    """A setting an editor changed in the console; it overrides the environment's."""

    __tablename__ = "console_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(320))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
