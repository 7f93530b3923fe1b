"""Settings read once from MAILER_* environment variables (then .env), validated at start-up.

One pydantic-settings model: every variable is a field with its type, its bounds and the
description the README's tables are made from (`python -m tools.settings_table`); rules
between fields are model validators. A wrong value stops the process with one line naming
the variable: `load_settings` turns pydantic's errors into `ConfigError`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mailer.platform.dkim_keys import KeyProblem, load_key
from mailer.platform.schedules import ScheduleError, parse_schedule
from mailer.platform.setting_values import (
    Bind,
    DnsLabel,
    Domain,
    FeedSectionPairs,
    Flag,
    HttpUrl,
    Keys,
    Limits,
    RedisUrl,
    SectionPairs,
    Text,
    TimeZone,
    Urls,
    Word,
    Words,
)
from mailer.platform.setting_values import ConfigError as ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"
SMTP_REPLIES_PER_MESSAGE = 4

# The README's tables, in this order; each field names its group.
GROUPS = {
    "basics": "The basics",
    "smtp": "The relay (SMTP)",
    "list": "The list and its mails",
    "site": "The site and the archive",
    "signup": "Signup and its limits",
    "web": "The web process",
    "content": "Articles, feeds and sections",
    "digests": "Digests and their schedule",
    "delivery": "Sending",
    "dkim": "DKIM",
    "bounces": "Bounces and complaints",
}


def normalize_database_url(url: str) -> str:
    """Point plain postgresql:// URLs at psycopg 3, the driver we install."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _database_url(value: str) -> str:
    url = normalize_database_url(value)
    try:
        make_url(url)
    except ArgumentError:
        raise ValueError("must be a database URL such as postgresql://user@host/mailer") from None
    return url


def origin_of(url: str) -> str | None:
    """scheme://host[:port] of a URL, lowercased; None for what is not http(s)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    suffix = f":{port}" if port and port != default else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{suffix}"


def _origins(value: tuple[str, ...]) -> tuple[str, ...]:
    for origin in value:
        if origin_of(origin) != origin.rstrip("/").lower():
            raise ValueError(
                f"{origin!r} is not an origin like https://news.example.com (scheme and host, "
                "no path)"
            )
    return value


def _address(value: str) -> str:
    if "@" not in parseaddr(value)[1]:
        raise ValueError("must be an address such as 'News <news@example.com>'")
    return value


def _mailbox(value: str) -> str:
    if value and not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        raise ValueError(f"{value!r} is not an address such as unsubscribe@example.com")
    return value


def _local_part(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9._-]{1,20}", value, re.IGNORECASE):
        raise ValueError("must be 1 to 20 letters, digits, '.', '_' or '-'")
    return value


def _sender_id(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z0-9]{5,15}", value):
        raise ValueError("must be 5 to 15 letters or digits")
    return value


def setting(
    variable: str,
    group: str,
    description: str,
    default: Any,
    *,
    shown: str | None = None,
    secret: bool = False,
    **constraints: Any,
) -> Any:
    """A field read from `variable`. `shown` is the default as the README gives it (Markdown),
    where the value itself would mislead (a path on this machine, a rule, a long text)."""
    assert group in GROUPS, group
    extra: dict[str, Any] = {"group": group}
    if shown is not None:
        extra["shown_default"] = shown
    if secret:
        extra["secret"] = True  # its value is never repeated in an error
    return Field(
        default,
        validation_alias=variable,
        description=description,
        json_schema_extra=extra,
        **constraints,
    )


# Never taken from .env: a production process started in a folder where `make run`
# once ran must not become a development one (it would serve every caught mail).
PROCESS_ONLY = {"MAILER_ENV"}


class _DotenvWithoutProcessOnly(PydanticBaseSettingsSource):
    """pydantic-settings' .env source (python-dotenv; the environment wins) less PROCESS_ONLY."""

    def __init__(self, settings_cls: type[BaseSettings], dotenv: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.dotenv = dotenv

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ below reads the whole file through self.dotenv

    def __call__(self) -> dict[str, Any]:
        process_only = {
            name
            for name, field in self.settings_cls.model_fields.items()
            if field.validation_alias in PROCESS_ONLY
        }
        return {
            key: value
            for key, value in self.dotenv().items()
            if key not in PROCESS_ONLY and key not in process_only
        }


class Settings(BaseSettings):
    """Every MAILER_* variable. Attributes keep the names the code has always used."""

    model_config = SettingsConfigDict(
        frozen=True,  # read once, shared by every request and task
        case_sensitive=True,
        extra="ignore",  # the environment holds much besides; .env may hold other tools' too
        env_file=PROJECT_ROOT / ".env",
        validate_by_name=True,  # tests and load_settings(**overrides) give attribute names
        validate_by_alias=True,
        validate_default=True,
    )

    # --- the basics
    secret_keys: Keys = setting(
        "MAILER_SECRET_KEY",
        "basics",
        "signs links and sessions; several keys comma-separated, newest first, to rotate: "
        "links signed with an older key keep working. Each at least 16 characters",
        (),
        shown="(required)",
        secret=True,
        max_length=20,
    )
    env: Literal["development", "production", "testing"] = setting(
        "MAILER_ENV",
        "basics",
        "`development` turns on the `/dev/mail/` pages (served to this machine only, under a "
        "loopback Host name: `localhost`, `127.0.0.1`, `[::1]`). Read from the process "
        "environment only, never from `.env`: `make run` sets it for the processes it starts",
        "production",
    )
    database_url: Annotated[Text, AfterValidator(_database_url)] = setting(
        "MAILER_DATABASE_URL",
        "basics",
        "any SQLAlchemy URL; `postgresql://...` uses psycopg 3",
        f"sqlite:///{INSTANCE_DIR / 'mailer.db'}",
        shown="`sqlite:///instance/mailer.db`",
        secret=True,  # it may carry the database's password
        min_length=1,
        max_length=2000,
    )
    redis_url: RedisUrl = setting(
        "MAILER_REDIS_URL",
        "basics",
        "the Celery broker, rate limits and locks",
        "redis://127.0.0.1:16379/0",
        min_length=1,
        max_length=2000,
    )
    base_url: HttpUrl = setting(
        "MAILER_BASE_URL",
        "basics",
        "the public URL that links in mails use",
        "http://127.0.0.1:8000",
        min_length=1,
        max_length=500,
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = setting(
        "MAILER_LOG_LEVEL",
        "basics",
        "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`; one format on standard error for "
        "web, worker, beat and the `mailer` command",
        "INFO",
    )

    # --- the relay
    smtp_host: Text = setting(
        "MAILER_SMTP_HOST",
        "smtp",
        "the relay that delivers mail (the development catcher by default)",
        "127.0.0.1",
        min_length=1,
        max_length=255,
    )
    smtp_port: int = setting(
        "MAILER_SMTP_PORT",
        "smtp",
        "the relay's port; `mailer catch-mail` listens on it too",
        8025,
        ge=1,
        le=65535,
    )
    smtp_username: Text = setting(
        "MAILER_SMTP_USERNAME", "smtp", "relay login, if it needs one", "", max_length=500
    )
    smtp_password: Text = setting(
        "MAILER_SMTP_PASSWORD", "smtp", "its password", "", secret=True, max_length=500
    )
    smtp_starttls: Flag = setting(
        "MAILER_SMTP_STARTTLS", "smtp", "upgrade the relay connection with STARTTLS", False
    )
    smtp_timeout: int = setting(
        "MAILER_SMTP_TIMEOUT",
        "smtp",
        "seconds the relay has for any one reply (the whole reply, however slowly it trickles "
        "in) or one write; one message's exchange is cut off after four times this",
        30,
        ge=1,
        le=600,
    )

    # --- the list
    from_address: Annotated[Text, AfterValidator(_address)] = setting(
        "MAILER_FROM",
        "list",
        "the From of mails; its domain is used for Message-IDs",
        "The Newsletter <newsletter@example.com>",
        max_length=300,
    )
    list_id: Word = setting(
        "MAILER_LIST_ID",
        "list",
        "the List-Id of the newsletter",
        "newsletter.example.com",
        min_length=1,
        max_length=255,
    )
    list_name: Text = setting(
        "MAILER_LIST_NAME",
        "list",
        "the newsletter's name on pages and in mails",
        "The Newsletter",
        min_length=1,
        max_length=200,
    )
    unsubscribe_mailto: Annotated[Word, AfterValidator(_mailbox)] = setting(
        "MAILER_UNSUBSCRIBE_MAILTO",
        "list",
        "the `mailto:` fallback in `List-Unsubscribe` (mailer does not read that mailbox; "
        "route it to a person or a filter)",
        "",
        shown="`unsubscribe@<domain of MAILER_FROM>`",
        max_length=300,
    )
    confirm_max_age_days: int = setting(
        "MAILER_CONFIRM_MAX_AGE_DAYS",
        "list",
        "how long a confirmation link works",
        7,
        ge=1,
        le=365,
    )
    welcome_mail: Flag = setting(
        "MAILER_WELCOME_MAIL", "list", "a welcome mail after a reader confirms", True
    )

    # --- the site
    site_url: HttpUrl = setting(
        "MAILER_SITE_URL",
        "site",
        "the site the newsletter belongs to: linked from every footer and from the "
        '"you\'re subscribed" page',
        "",
        max_length=500,
    )
    site_name: Text = setting(
        "MAILER_SITE_NAME",
        "site",
        "the site's name in those links",
        "",
        shown="the host of `MAILER_SITE_URL`",
        max_length=200,
    )
    postal_address: Text = setting(
        "MAILER_POSTAL_ADDRESS",
        "site",
        "the postal address in every footer (a production start without it logs a warning)",
        "",
        max_length=500,
    )
    archive: Flag = setting("MAILER_ARCHIVE", "site", "the public archive at `/archive`", True)
    embed_origins: Annotated[Words, AfterValidator(_origins)] = setting(
        "MAILER_EMBED_ORIGINS",
        "site",
        "origins whose own pages may post the signup form, e.g. `https://news.example.com`, "
        "separated by spaces or commas",
        (),
        max_length=100,
    )

    # --- signup
    consent_text: Text = setting(
        "MAILER_CONSENT_TEXT",
        "signup",
        "the consent wording shown on the form and recorded with each signup",
        "Send me the newsletter by email. I can unsubscribe at any time "
        "with one click from any issue.",
        shown='"Send me the newsletter…"',
        min_length=1,
        max_length=1000,
    )
    check_deliverability: Flag = setting(
        "MAILER_CHECK_DELIVERABILITY",
        "signup",
        "look up the domain's MX/A records at signup",
        False,
    )
    signup_min_seconds: int = setting(
        "MAILER_SIGNUP_MIN_SECONDS",
        "signup",
        "a form sent faster than this is treated as a bot",
        2,
        ge=0,
        le=3600,
    )
    signup_rate_limit_ip: Limits = setting(
        "MAILER_SIGNUP_RATE_LIMIT_IP",
        "signup",
        "signups per IP address",
        "10 per minute;100 per hour",
        max_length=500,
    )
    signup_rate_limit_address: Limits = setting(
        "MAILER_SIGNUP_RATE_LIMIT_ADDRESS",
        "signup",
        "signups per target address",
        "5 per hour",
        max_length=500,
    )
    signup_rate_limit_network: Limits = setting(
        "MAILER_SIGNUP_RATE_LIMIT_NETWORK",
        "signup",
        "signups per network (IPv4 /24, IPv6 /56)",
        "20 per minute;200 per hour",
        max_length=500,
    )
    rate_limit_max_keys: int = setting(
        "MAILER_RATE_LIMIT_MAX_KEYS",
        "signup",
        "counters each limit keeps per window; beyond it, new IPs, networks or addresses "
        "share one counter of that limit",
        10_000,
        ge=1,
        le=10_000_000,
    )
    rate_limit_redis_url: RedisUrl = setting(
        "MAILER_RATE_LIMIT_REDIS_URL",
        "signup",
        "a Redis of its own for rate limits, which may have a `maxmemory` and evict "
        "(`allkeys-lru`) without touching the queues",
        "",
        shown="`MAILER_REDIS_URL`",
        max_length=2000,
    )

    # --- the web process
    web_bind: Bind = setting(
        "MAILER_WEB_BIND",
        "web",
        "where the Procfile's `web` (gunicorn) listens: `HOST:PORT` or `unix:PATH`",
        "127.0.0.1:8000",
    )
    web_workers: int = setting(
        "MAILER_WEB_WORKERS",
        "web",
        "gunicorn worker processes of the Procfile's `web`",
        2,
        ge=1,
        le=64,
    )
    max_request_bytes: int = setting(
        "MAILER_MAX_REQUEST_BYTES",
        "web",
        "larger request bodies get a 413",
        64 * 1024,
        ge=1024,
        le=1024**3,
    )
    proxy_hops: int = setting(
        "MAILER_PROXY_HOPS",
        "web",
        "set to the number of reverse proxies in front of mailer so rate limits see the "
        "reader's IP",
        0,
        ge=0,
        le=10,
    )
    mail_directory: Text = setting(
        "MAILER_MAIL_DIRECTORY",
        "web",
        "where the development catcher (`mailer catch-mail`) keeps mails and `/dev/mail/` "
        "reads them",
        str(PROJECT_ROOT / "var" / "mail"),
        shown="`var/mail`",
        min_length=1,
        max_length=1000,
    )

    # --- content
    feeds: Urls = setting(
        "MAILER_FEEDS",
        "content",
        "RSS/Atom feed URLs to poll, separated by spaces or commas",
        (),
        max_length=200,
    )
    feed_interval_minutes: int = setting(
        "MAILER_FEED_INTERVAL_MINUTES",
        "content",
        "how often beat polls the feeds",
        10,
        ge=1,
        le=7 * 24 * 60,
    )
    feed_timeout: int = setting(
        "MAILER_FEED_TIMEOUT",
        "content",
        "seconds a feed may take to arrive",
        10,
        ge=1,
        le=600,
    )
    feed_max_bytes: int = setting(
        "MAILER_FEED_MAX_BYTES",
        "content",
        "larger feeds are refused",
        5_000_000,
        ge=1024,
        le=500_000_000,
    )
    sections: SectionPairs = setting(
        "MAILER_SECTIONS",
        "content",
        "the site's sections as `slug:Name`, comma-separated, e.g. "
        "`politics:Politics,world:World news,sport:Sport`. They seed the console's Sections "
        "page (a slug added here later is added there; renames and retirements are made "
        'there). See "Sections, frequency and the preference center"',
        (),
        max_length=200,
    )
    feed_sections: FeedSectionPairs = setting(
        "MAILER_FEED_SECTIONS",
        "content",
        "a section per feed, for sites with a feed per section: "
        "`politics=https://news.example.com/politics.rss`, space- or comma-separated; each "
        "slug must be in `MAILER_SECTIONS` and each URL in `MAILER_FEEDS`. Other feeds' "
        "articles are front page",
        (),
        max_length=200,
    )

    # --- digests
    digest_max_articles: int = setting(
        "MAILER_DIGEST_MAX_ARTICLES",
        "digests",
        "articles per digest; more wait for the next",
        50,
        ge=1,
        le=1000,
    )
    digest_schedule: Text = setting(
        "MAILER_DIGEST_SCHEDULE",
        "digests",
        "e.g. `daily 07:00`, `weekdays 06:30`, `mon,thu 07:00`",
        "",
        shown="empty (off)",
        max_length=200,
    )
    weekly_schedule: Text = setting(
        "MAILER_WEEKLY_SCHEDULE",
        "digests",
        "the weekly digest's, for readers who chose weekly, e.g. `mon 07:00` (same form, "
        "same `MAILER_TIMEZONE`)",
        "",
        shown="empty (off)",
        max_length=200,
    )
    timezone: TimeZone = setting(
        "MAILER_TIMEZONE",
        "digests",
        "the time zone of the schedules, e.g. `Europe/Berlin`",
        "UTC",
    )

    # --- sending
    send_batch_size: int = setting(
        "MAILER_SEND_BATCH_SIZE", "delivery", "readers per batch task", 500, ge=1, le=100_000
    )
    send_max_attempts: int = setting(
        "MAILER_SEND_MAX_ATTEMPTS",
        "delivery",
        "tries per reader for temporary (4xx) failures",
        5,
        ge=1,
        le=100,
    )
    send_retry_base_seconds: float = setting(
        "MAILER_SEND_RETRY_BASE_SECONDS",
        "delivery",
        "first retry delay; doubles each time, at most 10 minutes",
        30.0,
        shown="`30`",
        gt=0,
        le=600,
        allow_inf_nan=False,
    )
    send_rate_per_second: int = setting(
        "MAILER_SEND_RATE_PER_SECOND",
        "delivery",
        "messages per second across all workers, for relays that throttle",
        0,
        shown="`0` (no limit)",
        ge=0,
        le=100_000,
    )
    worker_concurrency: int = setting(
        "MAILER_WORKER_CONCURRENCY",
        "delivery",
        "sending processes per `worker`; `0` is one per CPU",
        0,
        ge=0,
        le=256,
    )
    claim_stale_seconds: int = setting(
        "MAILER_CLAIM_STALE_SECONDS",
        "delivery",
        "a batch whose heartbeat has not reached the database for this long is taken over by "
        "the reconciler. It must be above four times `MAILER_SMTP_TIMEOUT` (the longest one "
        "message's exchange may take), or start-up stops",
        180,
        ge=1,
        le=86400,
    )

    # --- DKIM
    dkim_selector: DnsLabel = setting(
        "MAILER_DKIM_SELECTOR", "dkim", "the selector, e.g. `mail2026`", ""
    )
    dkim_private_key_file: Text = setting(
        "MAILER_DKIM_PRIVATE_KEY_FILE",
        "dkim",
        "the RSA key file (2048 bits or more); goes with `MAILER_DKIM_SELECTOR`",
        "",
        max_length=1000,
    )
    dkim_domain: Domain = setting(
        "MAILER_DKIM_DOMAIN",
        "dkim",
        "`d=` of the signature",
        "",
        shown="the domain of `MAILER_FROM`, which is what DMARC needs",
        max_length=253,
    )
    dkim_ed25519_key_file: Text = setting(
        "MAILER_DKIM_ED25519_KEY_FILE",
        "dkim",
        "an Ed25519 key: a second signature beside the RSA one",
        "",
        max_length=1000,
    )
    dkim_ed25519_selector: DnsLabel = setting(
        "MAILER_DKIM_ED25519_SELECTOR",
        "dkim",
        "its selector",
        "",
        shown="`<MAILER_DKIM_SELECTOR>-ed25519`",
    )

    # --- bounces
    bounce_localpart: Annotated[Text, AfterValidator(_local_part)] = setting(
        "MAILER_BOUNCE_LOCALPART",
        "bounces",
        "the local part of the envelope sender: letters, digits, `.`, `_` or `-`",
        "bounces",
    )
    bounce_domain: Domain = setting(
        "MAILER_BOUNCE_DOMAIN",
        "bounces",
        "where bounces come back to: point its MX at your MTA",
        "",
        shown="the domain of `MAILER_FROM`",
        max_length=253,
    )
    soft_bounce_limit: int = setting(
        "MAILER_SOFT_BOUNCE_LIMIT",
        "bounces",
        "digests in a row with a soft bounce before a reader is bounced",
        3,
        ge=1,
        le=100,
    )
    bounce_port: int = setting(
        "MAILER_BOUNCE_PORT",
        "bounces",
        "the port of the Procfile's `bounces` process (`mailer receive-bounces`)",
        2526,
        ge=1,
        le=65535,
    )
    feedback_sender_id: Annotated[Text, AfterValidator(_sender_id)] = setting(
        "MAILER_FEEDBACK_SENDER_ID",
        "bounces",
        "the last field of `Feedback-ID`: 5 to 15 letters or digits",
        "",
        shown="12 characters from `MAILER_LIST_ID`",
    )

    # --- strangers (issue 18): what a stranger's signup can cost
    confirmations_per_hour: int = setting(
        "MAILER_CONFIRMATIONS_PER_HOUR",
        "signup",
        "confirmation mails sent per hour across the service; over it they wait, still "
        "owed. `0`: no budget",
        500,
        ge=0,
        le=1_000_000,
    )
    pending_expire_days: int = setting(
        "MAILER_PENDING_EXPIRE_DAYS",
        "signup",
        "an unconfirmed signup is deleted this many days after its last request; at least "
        "`MAILER_CONFIRM_MAX_AGE_DAYS`",
        14,
        ge=1,
        le=3650,
    )
    bounce_quarantine_days: int = setting(
        "MAILER_BOUNCE_QUARANTINE_DAYS",
        "signup",
        "a reader bounced this recently gets no confirmation mail on a new signup",
        30,
        ge=0,
        le=3650,
    )

    refusal_alert_share: float = setting(
        "MAILER_REFUSAL_ALERT_SHARE",
        "bounces",
        "the console warns when one receiving domain refuses the sender (blocklist, spam "
        "verdict, SPF/DKIM/DMARC, policy) for this share of a digest's mails to it",
        0.1,
        ge=0.0,
        le=1.0,
    )

    # --- the bounce receiver's caps: what one client can make it hold or read
    bounce_max_bytes: int = setting(
        "MAILER_BOUNCE_MAX_BYTES",
        "bounces",
        "the largest bounce read, in bytes",
        2 * 1024 * 1024,
        ge=1024,
        le=100 * 1024 * 1024,
    )
    bounce_max_recipients: int = setting(
        "MAILER_BOUNCE_MAX_RECIPIENTS",
        "bounces",
        "recipients of one message the receiver takes (the rest: 452, send later)",
        20,
        ge=1,
        le=1000,
    )
    bounce_max_parts: int = setting(
        "MAILER_BOUNCE_MAX_PARTS",
        "bounces",
        "MIME parts of one bounce; more is refused before it is parsed",
        500,
        ge=1,
        le=100_000,
    )
    bounce_max_depth: int = setting(
        "MAILER_BOUNCE_MAX_DEPTH",
        "bounces",
        "MIME nesting of one bounce (Python's parser recurses once per level)",
        20,
        ge=1,
        le=200,
    )
    bounce_sessions_per_address: int = setting(
        "MAILER_BOUNCE_SESSIONS_PER_ADDRESS",
        "bounces",
        "sessions one client address may hold at once with the receiver",
        20,
        ge=1,
        le=10_000,
    )
    bounce_session_timeout: int = setting(
        "MAILER_BOUNCE_SESSION_TIMEOUT",
        "bounces",
        "seconds the receiver waits between commands, and for a whole DATA",
        60,
        ge=1,
        le=3600,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Overrides, then the process environment, then .env for what it leaves unset.
        return init_settings, env_settings, _DotenvWithoutProcessOnly(settings_cls, dotenv_settings)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("secret_keys")
    @classmethod
    def _secret_keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        if not keys:
            raise ValueError(
                "is not set. Set it to a long random string (several keys, comma-separated "
                "and newest first, to rotate)."
            )
        if any(len(key) < 16 for key in keys):
            raise ValueError("every key must be at least 16 characters long.")
        return keys

    @model_validator(mode="after")
    def _pending_outlives_its_link(self) -> Settings:
        if self.pending_expire_days < self.confirm_max_age_days:
            # Otherwise a link still within its days would find its reader gone.
            raise ValueError(
                f"MAILER_PENDING_EXPIRE_DAYS ({self.pending_expire_days}) must be at least "
                f"MAILER_CONFIRM_MAX_AGE_DAYS ({self.confirm_max_age_days})."
            )
        return self

    @model_validator(mode="after")
    def _claims_outlast_the_relay(self) -> Settings:
        bound = self.smtp_transaction_seconds
        if self.claim_stale_seconds <= bound:
            # Recovery would take the claims of workers still waiting on the relay.
            raise ValueError(
                f"MAILER_CLAIM_STALE_SECONDS ({self.claim_stale_seconds}) must be above the "
                f"longest one message's exchange with the relay may take: "
                f"{SMTP_REPLIES_PER_MESSAGE} x MAILER_SMTP_TIMEOUT = {bound} seconds."
            )
        return self

    @model_validator(mode="after")
    def _feed_sections_are_known(self) -> Settings:
        slugs = {slug for slug, _name in self.sections}
        for slug, url in self.feed_sections:
            if slug not in slugs:
                raise ValueError(f"MAILER_FEED_SECTIONS: {slug!r} is not one of MAILER_SECTIONS.")
            if url not in self.feeds:
                raise ValueError(f"MAILER_FEED_SECTIONS: {url!r} is not one of MAILER_FEEDS.")
        return self

    @model_validator(mode="after")
    def _schedules_parse(self) -> Settings:
        try:
            parse_schedule(self.digest_schedule, self.timezone)
        except ScheduleError as exc:
            raise ValueError(f"MAILER_DIGEST_SCHEDULE / MAILER_TIMEZONE: {exc}") from None
        try:
            parse_schedule(self.weekly_schedule, self.timezone)
        except ScheduleError as exc:
            raise ValueError(f"MAILER_WEEKLY_SCHEDULE: {exc}") from None
        return self

    @model_validator(mode="after")
    def _dkim_keys_sign(self) -> Settings:
        if self.dkim_selector or self.dkim_private_key_file:
            if not (self.dkim_selector and self.dkim_private_key_file):
                raise ValueError(
                    "MAILER_DKIM_SELECTOR and MAILER_DKIM_PRIVATE_KEY_FILE go together: set both."
                )
            # Read now: a key that cannot sign stops the start, not the first send.
            try:
                load_key(self.dkim_private_key_file, "MAILER_DKIM_PRIVATE_KEY_FILE")
                if self.dkim_ed25519_key_file:
                    load_key(
                        self.dkim_ed25519_key_file, "MAILER_DKIM_ED25519_KEY_FILE", ed25519_key=True
                    )
            except KeyProblem as problem:
                raise ValueError(str(problem)) from None
        elif self.dkim_ed25519_key_file or self.dkim_ed25519_selector:
            raise ValueError(
                "MAILER_DKIM_ED25519_KEY_FILE and MAILER_DKIM_ED25519_SELECTOR need "
                "MAILER_DKIM_SELECTOR and an RSA key."
            )
        return self

    @property
    def smtp_transaction_seconds(self) -> int:
        """The longest one message's exchange with the relay may take: its four replies
        (MAIL, RCPT, DATA, the final dot), each within MAILER_SMTP_TIMEOUT, and cut
        off there (mail/smtp.py)."""
        return SMTP_REPLIES_PER_MESSAGE * self.smtp_timeout

    @property
    def development(self) -> bool:
        return self.env == "development"

    @cached_property
    def unsubscribe_mailbox(self) -> str:
        """The mailto: fallback of List-Unsubscribe."""
        return self.unsubscribe_mailto or f"unsubscribe@{self.sending_domain}"

    @cached_property
    def sending_domain(self) -> str:
        """The domain of MAILER_FROM, used for Message-IDs."""
        return parseaddr(self.from_address)[1].rpartition("@")[2] or "localhost"

    @property
    def dkim_signing_domain(self) -> str:
        """d= of the signatures: the From domain unless told otherwise (DMARC alignment)."""
        return self.dkim_domain or self.sending_domain

    @property
    def site_label(self) -> str:
        """The site's name for footers: MAILER_SITE_NAME, else the host of MAILER_SITE_URL."""
        return self.site_name or urlsplit(self.site_url).hostname or ""

    @property
    def bounce_mail_domain(self) -> str:
        return self.bounce_domain or self.sending_domain

    @cached_property
    def feedback_id_sender(self) -> str:
        """Feedback-ID's sender id: stable, 5 to 15 characters, the same for every reader."""
        return self.feedback_sender_id or hashlib.sha256(self.list_id.encode()).hexdigest()[:12]

    def replace(self, **changes: Any) -> Settings:
        """A copy with some attributes changed, checked again as a whole."""
        return load_settings(environ={}, **{**self.model_dump(), **changes})


def variable_of(name: str) -> str:
    """The MAILER_* variable of an attribute."""
    alias = Settings.model_fields[name].validation_alias
    assert isinstance(alias, str)
    return alias


VARIABLES = {variable_of(name): name for name in Settings.model_fields}


def load_settings(
    environ: Mapping[str, str] | None = None, *, env_file: Path | None = None, **overrides: Any
) -> Settings:
    """The settings of this process: `overrides` (attribute names), then the environment,
    then the .env file (`env_file`, by default the project folder's) for what it leaves
    unset. With `environ`, that mapping is the whole environment and no file is read, as
    tests and tools that start a stack of their own want."""
    # Everything goes in under the variable's name, the key the environment's values have
    # too, so an override always wins over them (pydantic-settings before 2.8 let a value
    # by alias beat one given by attribute name).
    values = {variable_of(name): value for name, value in overrides.items()}
    try:
        if environ is None:
            if env_file is None:
                return Settings(**values)
            # _env_file is pydantic-settings' own argument, not a field mypy knows of.
            return Settings(_env_file=env_file, **values)  # type: ignore[call-arg]
        # Every variable is given, so neither the process's MAILER_* nor .env fills a gap.
        given = {
            variable: environ.get(variable, Settings.model_fields[name].default)
            for variable, name in VARIABLES.items()
        }
        return Settings(**{**given, **values})
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None


def describe(error: ValidationError) -> str:
    """One line: what is wrong with the first bad setting, and which others are wrong too."""
    problems = [_problem(problem) for problem in error.errors(include_url=False)]
    (first, text), rest = problems[0], problems[1:]
    others = sorted({variable for variable, _text in rest if variable and variable != first})
    more = f" (and {', '.join(others)})" if others else ""
    return " ".join((text + more).split())


def _problem(problem: Any) -> tuple[str, str]:
    """(the variable, or "" for a rule between several; the sentence that says what is wrong)."""
    value_error = problem["type"] == "value_error"
    # Our own checks' words are written to follow the variable's name; pydantic's start
    # with a capital and do not say what they were given.
    text = str(problem["ctx"]["error"]) if value_error else problem["msg"]
    if not problem["loc"]:
        return "", text  # a rule between settings: its text names them
    head = str(problem["loc"][0])
    variable = head if head in VARIABLES else variable_of(head)
    field = Settings.model_fields[VARIABLES[variable]]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if not value_error:
        text = text[:1].lower() + text[1:]
        given = problem.get("input")
        if isinstance(given, str) and not extra.get("secret"):
            text += f", not {given[:80]!r}"
    # "MAILER_X must be ..." reads as a sentence; anything else follows a colon.
    joint = " " if text.startswith(("must ", "is ")) else ": "
    return variable, f"{variable}{joint}{text}"
