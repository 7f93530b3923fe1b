"""Settings read once from MAILER_* environment variables, validated at start-up."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from mailer.platform.dkim_keys import KeyProblem, load_key
from mailer.platform.logs import LEVELS
from mailer.platform.schedules import ScheduleError, parse_schedule
from mailer.platform.setting_values import (
    ConfigError,
    boolean,
    feed_section_pairs,
    limit_list,
    number,
    section_pairs,
    text,
    whole_number,
    words,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"


def normalize_database_url(url: str) -> str:
    """Point plain postgresql:// URLs at psycopg 3, the driver we install."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


SMTP_REPLIES_PER_MESSAGE = 4


@dataclass(frozen=True)
class Settings:
    secret_keys: tuple[str, ...]
    env: str = "production"
    database_url: str = f"sqlite:///{INSTANCE_DIR / 'mailer.db'}"
    redis_url: str = "redis://127.0.0.1:16379/0"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_timeout: int = 30  # seconds for any one reply of the relay, or one write
    base_url: str = "http://127.0.0.1:8000"
    from_address: str = "The Newsletter <newsletter@example.com>"
    list_id: str = "newsletter.example.com"
    list_name: str = "The Newsletter"
    confirm_max_age_days: int = 7
    check_deliverability: bool = False
    signup_min_seconds: int = 2
    signup_rate_limit_ip: str = "10 per minute;100 per hour"
    signup_rate_limit_address: str = "5 per hour"
    signup_rate_limit_network: str = "20 per minute;200 per hour"
    rate_limit_max_keys: int = 10_000
    rate_limit_redis_url: str = ""  # empty: the one of MAILER_REDIS_URL
    consent_text: str = (
        "Send me the newsletter by email. I can unsubscribe at any time "
        "with one click from any issue."
    )
    max_request_bytes: int = 64 * 1024
    proxy_hops: int = 0
    unsubscribe_mailto: str = ""
    digest_max_articles: int = 50
    send_batch_size: int = 500
    send_max_attempts: int = 5
    send_retry_base_seconds: float = 30.0
    send_rate_per_second: int = 0
    worker_concurrency: int = 0  # 0: one pool process per CPU, Celery's own default
    claim_stale_seconds: int = 180
    digest_schedule: str = ""
    # The weekly digest's schedule ("mon 07:00"), for readers who chose weekly.
    weekly_schedule: str = ""
    feeds: tuple[str, ...] = ()
    feed_interval_minutes: int = 10
    feed_timeout: int = 10
    feed_max_bytes: int = 5_000_000
    timezone: str = "UTC"
    mail_directory: str = str(PROJECT_ROOT / "var" / "mail")
    log_level: str = "INFO"
    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_private_key_file: str = ""
    dkim_ed25519_key_file: str = ""
    dkim_ed25519_selector: str = ""
    bounce_localpart: str = "bounces"
    bounce_domain: str = ""
    soft_bounce_limit: int = 3
    feedback_sender_id: str = ""
    postal_address: str = ""
    site_url: str = ""
    site_name: str = ""
    archive: bool = True
    welcome_mail: bool = True
    embed_origins: tuple[str, ...] = ()
    # (slug, name) pairs; none: every article is front page, as before sections.
    sections: tuple[tuple[str, str], ...] = ()
    # (section slug, feed URL): every article of that feed is filed under the section.
    feed_sections: tuple[tuple[str, str], ...] = ()
    # --- strangers (issue 18, items 4 and 5): kept together for the pydantic move ---
    # Confirmation mails per hour across the whole service; 0: no budget.
    confirmations_per_hour: int = 500
    # Pending readers are deleted this long after their last signup.
    pending_expire_days: int = 14
    # A reader bounced this recently gets no confirmation mail on a new signup.
    bounce_quarantine_days: int = 30
    # --- The bounce receiver's caps (`mailer receive-bounces`, `mailer process-bounce`) ---
    # What one client can make the receiver hold or read; a real bounce is far below each.
    bounce_max_bytes: int = 2 * 1024 * 1024
    bounce_max_recipients: int = 20
    bounce_max_parts: int = 500
    bounce_max_depth: int = 20
    bounce_sessions_per_address: int = 20
    bounce_session_timeout: int = 60  # seconds between commands, and for a whole DATA

    @property
    def smtp_transaction_seconds(self) -> int:
        """The longest one message's exchange with the relay may take: its four replies
        (MAIL, RCPT, DATA, the final dot), each within MAILER_SMTP_TIMEOUT, and cut
        off there (emails/smtp.py)."""
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


# Environment variable -> (field, parser). The variable names are the outside contract.
_VARIABLES: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "MAILER_ENV": ("env", text),
    "MAILER_DATABASE_URL": ("database_url", lambda _name, raw: normalize_database_url(raw)),
    "MAILER_REDIS_URL": ("redis_url", text),
    "MAILER_SMTP_HOST": ("smtp_host", text),
    "MAILER_SMTP_PORT": ("smtp_port", whole_number),
    "MAILER_SMTP_USERNAME": ("smtp_username", text),
    "MAILER_SMTP_PASSWORD": ("smtp_password", text),
    "MAILER_SMTP_STARTTLS": ("smtp_starttls", boolean),
    "MAILER_SMTP_TIMEOUT": ("smtp_timeout", whole_number),
    "MAILER_BASE_URL": ("base_url", text),
    "MAILER_FROM": ("from_address", text),
    "MAILER_LIST_ID": ("list_id", text),
    "MAILER_LIST_NAME": ("list_name", text),
    "MAILER_CONFIRM_MAX_AGE_DAYS": ("confirm_max_age_days", whole_number),
    "MAILER_CHECK_DELIVERABILITY": ("check_deliverability", boolean),
    "MAILER_SIGNUP_MIN_SECONDS": ("signup_min_seconds", whole_number),
    "MAILER_SIGNUP_RATE_LIMIT_IP": ("signup_rate_limit_ip", limit_list),
    "MAILER_SIGNUP_RATE_LIMIT_ADDRESS": ("signup_rate_limit_address", limit_list),
    "MAILER_SIGNUP_RATE_LIMIT_NETWORK": ("signup_rate_limit_network", limit_list),
    "MAILER_RATE_LIMIT_MAX_KEYS": ("rate_limit_max_keys", whole_number),
    "MAILER_RATE_LIMIT_REDIS_URL": ("rate_limit_redis_url", text),
    "MAILER_CONSENT_TEXT": ("consent_text", text),
    "MAILER_MAIL_DIRECTORY": ("mail_directory", text),
    "MAILER_PROXY_HOPS": ("proxy_hops", whole_number),
    "MAILER_MAX_REQUEST_BYTES": ("max_request_bytes", whole_number),
    "MAILER_UNSUBSCRIBE_MAILTO": ("unsubscribe_mailto", text),
    "MAILER_DIGEST_MAX_ARTICLES": ("digest_max_articles", whole_number),
    "MAILER_SEND_BATCH_SIZE": ("send_batch_size", whole_number),
    "MAILER_SEND_MAX_ATTEMPTS": ("send_max_attempts", whole_number),
    "MAILER_SEND_RETRY_BASE_SECONDS": ("send_retry_base_seconds", number),
    "MAILER_SEND_RATE_PER_SECOND": ("send_rate_per_second", whole_number),
    "MAILER_WORKER_CONCURRENCY": ("worker_concurrency", whole_number),
    "MAILER_CLAIM_STALE_SECONDS": ("claim_stale_seconds", whole_number),
    "MAILER_DIGEST_SCHEDULE": ("digest_schedule", text),
    "MAILER_WEEKLY_SCHEDULE": ("weekly_schedule", text),
    "MAILER_FEEDS": ("feeds", words),
    "MAILER_FEED_INTERVAL_MINUTES": ("feed_interval_minutes", whole_number),
    "MAILER_FEED_TIMEOUT": ("feed_timeout", whole_number),
    "MAILER_FEED_MAX_BYTES": ("feed_max_bytes", whole_number),
    "MAILER_TIMEZONE": ("timezone", text),
    "MAILER_LOG_LEVEL": ("log_level", lambda _name, raw: raw.strip().upper()),
    "MAILER_DKIM_SELECTOR": ("dkim_selector", text),
    "MAILER_DKIM_DOMAIN": ("dkim_domain", text),
    "MAILER_DKIM_PRIVATE_KEY_FILE": ("dkim_private_key_file", text),
    "MAILER_DKIM_ED25519_KEY_FILE": ("dkim_ed25519_key_file", text),
    "MAILER_DKIM_ED25519_SELECTOR": ("dkim_ed25519_selector", text),
    "MAILER_BOUNCE_LOCALPART": ("bounce_localpart", text),
    "MAILER_BOUNCE_DOMAIN": ("bounce_domain", text),
    "MAILER_SOFT_BOUNCE_LIMIT": ("soft_bounce_limit", whole_number),
    "MAILER_FEEDBACK_SENDER_ID": ("feedback_sender_id", text),
    "MAILER_POSTAL_ADDRESS": ("postal_address", text),
    "MAILER_SITE_URL": ("site_url", text),
    "MAILER_SITE_NAME": ("site_name", text),
    "MAILER_ARCHIVE": ("archive", boolean),
    "MAILER_WELCOME_MAIL": ("welcome_mail", boolean),
    "MAILER_EMBED_ORIGINS": ("embed_origins", words),
    "MAILER_SECTIONS": ("sections", section_pairs),
    "MAILER_FEED_SECTIONS": ("feed_sections", feed_section_pairs),
    # strangers (issue 18)
    "MAILER_CONFIRMATIONS_PER_HOUR": ("confirmations_per_hour", whole_number),
    "MAILER_PENDING_EXPIRE_DAYS": ("pending_expire_days", whole_number),
    "MAILER_BOUNCE_QUARANTINE_DAYS": ("bounce_quarantine_days", whole_number),
    # The bounce receiver's caps.
    "MAILER_BOUNCE_MAX_BYTES": ("bounce_max_bytes", whole_number),
    "MAILER_BOUNCE_MAX_RECIPIENTS": ("bounce_max_recipients", whole_number),
    "MAILER_BOUNCE_MAX_PARTS": ("bounce_max_parts", whole_number),
    "MAILER_BOUNCE_MAX_DEPTH": ("bounce_max_depth", whole_number),
    "MAILER_BOUNCE_SESSIONS_PER_ADDRESS": ("bounce_sessions_per_address", whole_number),
    "MAILER_BOUNCE_SESSION_TIMEOUT": ("bounce_session_timeout", whole_number),
}


# Never taken from .env: a production process started in a folder where `make run`
# once ran must not become a development one (it would serve every caught mail).
PROCESS_ONLY = {"MAILER_ENV"}


def environment_with_dotenv(path: Path) -> dict[str, str]:
    """The process environment, and for what it leaves unset, the .env file's values."""
    from dotenv import dotenv_values

    environ = dict(os.environ)
    for name, value in dotenv_values(path).items():
        if name not in environ and name not in PROCESS_ONLY and value is not None:
            environ[name] = value
    return environ


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from the environment (and a .env file in development)."""
    if environ is None:
        environ = environment_with_dotenv(PROJECT_ROOT / ".env")

    values: dict[str, object] = {}
    for name, (attr, parser) in _VARIABLES.items():
        if name in environ:
            values[attr] = parser(name, environ[name])

    raw_keys = environ.get("MAILER_SECRET_KEY", "")
    values["secret_keys"] = tuple(k.strip() for k in raw_keys.split(",") if k.strip())
    values.update(overrides)
    if "database_url" in overrides:
        values["database_url"] = normalize_database_url(str(overrides["database_url"]))
    settings = Settings(**values)  # type: ignore[arg-type]
    validate(settings)
    return settings


def _validate_rate_limits(settings: Settings) -> None:
    if settings.rate_limit_max_keys < 1:
        raise ConfigError("MAILER_RATE_LIMIT_MAX_KEYS must be at least 1.")
    url = settings.rate_limit_redis_url
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("MAILER_RATE_LIMIT_REDIS_URL must be a redis:// URL.")


def validate(settings: Settings) -> None:
    if not settings.secret_keys:
        raise ConfigError(
            "MAILER_SECRET_KEY is not set. Set it to a long random string "
            "(several keys, comma-separated and newest first, to rotate)."
        )
    if any(len(k) < 16 for k in settings.secret_keys):
        raise ConfigError("MAILER_SECRET_KEY: every key must be at least 16 characters long.")
    if settings.env not in {"development", "production", "testing"}:
        raise ConfigError("MAILER_ENV must be development, production or testing.")
    if not settings.base_url.startswith(("http://", "https://")):
        raise ConfigError("MAILER_BASE_URL must start with http:// or https://.")
    if "@" not in parseaddr(settings.from_address)[1]:
        raise ConfigError("MAILER_FROM must be an address such as 'News <news@example.com>'.")
    if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("MAILER_REDIS_URL must be a redis:// URL.")
    _validate_rate_limits(settings)
    if not 0 <= settings.worker_concurrency <= 256:
        raise ConfigError("MAILER_WORKER_CONCURRENCY must be 0 (one per CPU) to 256.")
    if settings.send_batch_size < 1 or settings.send_max_attempts < 1:
        raise ConfigError("MAILER_SEND_BATCH_SIZE and MAILER_SEND_MAX_ATTEMPTS must be at least 1.")
    _validate_claims(settings)
    if not 0 < settings.send_retry_base_seconds <= 600:
        raise ConfigError("MAILER_SEND_RETRY_BASE_SECONDS must be between 0 and 600.")
    for url in settings.feeds:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"MAILER_FEEDS: {url!r} is not an http:// or https:// URL.")
    slugs = {slug for slug, _name in settings.sections}
    for slug, url in settings.feed_sections:
        if slug not in slugs:
            raise ConfigError(f"MAILER_FEED_SECTIONS: {slug!r} is not one of MAILER_SECTIONS.")
        if url not in settings.feeds:
            raise ConfigError(f"MAILER_FEED_SECTIONS: {url!r} is not one of MAILER_FEEDS.")
    if settings.feed_interval_minutes < 1 or settings.feed_timeout < 1:
        raise ConfigError(
            "MAILER_FEED_INTERVAL_MINUTES and MAILER_FEED_TIMEOUT must be at least 1."
        )
    try:
        parse_schedule(settings.digest_schedule, settings.timezone)
    except ScheduleError as exc:
        raise ConfigError(f"MAILER_DIGEST_SCHEDULE / MAILER_TIMEZONE: {exc}") from None
    try:
        parse_schedule(settings.weekly_schedule, settings.timezone)
    except ScheduleError as exc:
        raise ConfigError(f"MAILER_WEEKLY_SCHEDULE: {exc}") from None
    _validate_deliverability(settings)
    _validate_bounce_caps(settings)
    _validate_publisher(settings)
    if settings.log_level not in LEVELS:
        raise ConfigError(f"MAILER_LOG_LEVEL must be one of {', '.join(LEVELS)}.")
    if settings.confirm_max_age_days < 1:
        raise ConfigError("MAILER_CONFIRM_MAX_AGE_DAYS must be at least 1.")
    _validate_strangers(settings)


def _validate_strangers(settings: Settings) -> None:
    if settings.confirmations_per_hour < 0:
        raise ConfigError("MAILER_CONFIRMATIONS_PER_HOUR must be 0 (no budget) or more.")
    if settings.pending_expire_days < settings.confirm_max_age_days:
        # Otherwise a link still within its days would find its reader gone.
        raise ConfigError(
            "MAILER_PENDING_EXPIRE_DAYS must be at least MAILER_CONFIRM_MAX_AGE_DAYS "
            f"({settings.confirm_max_age_days})."
        )
    if settings.bounce_quarantine_days < 0:
        raise ConfigError("MAILER_BOUNCE_QUARANTINE_DAYS must be 0 or more.")


def _validate_claims(settings: Settings) -> None:
    if not 1 <= settings.smtp_timeout <= 600:
        raise ConfigError("MAILER_SMTP_TIMEOUT must be from 1 to 600 seconds.")
    bound = settings.smtp_transaction_seconds
    if settings.claim_stale_seconds <= bound:
        # Recovery would take the claims of workers still waiting on the relay.
        raise ConfigError(
            f"MAILER_CLAIM_STALE_SECONDS ({settings.claim_stale_seconds}) must be above the "
            f"longest one message's exchange with the relay may take: "
            f"{SMTP_REPLIES_PER_MESSAGE} x MAILER_SMTP_TIMEOUT = {bound} seconds."
        )
    if settings.claim_stale_seconds > 86400:
        raise ConfigError("MAILER_CLAIM_STALE_SECONDS must be at most 86400 (a day).")


LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)


def _validate_deliverability(settings: Settings) -> None:
    if settings.dkim_selector or settings.dkim_private_key_file:
        if not (settings.dkim_selector and settings.dkim_private_key_file):
            raise ConfigError(
                "MAILER_DKIM_SELECTOR and MAILER_DKIM_PRIVATE_KEY_FILE go together: set both."
            )
        if not LABEL.fullmatch(settings.dkim_selector):
            raise ConfigError("MAILER_DKIM_SELECTOR must be a DNS label such as 'mail2026'.")
        # Read now: a key that cannot sign stops the start, not the first send.
        try:
            load_key(settings.dkim_private_key_file, "MAILER_DKIM_PRIVATE_KEY_FILE")
            if settings.dkim_ed25519_key_file:
                load_key(
                    settings.dkim_ed25519_key_file, "MAILER_DKIM_ED25519_KEY_FILE", ed25519_key=True
                )
        except KeyProblem as problem:
            raise ConfigError(str(problem)) from None
    elif settings.dkim_ed25519_key_file:
        raise ConfigError("MAILER_DKIM_ED25519_KEY_FILE needs MAILER_DKIM_SELECTOR and an RSA key.")
    if not re.fullmatch(r"[a-z0-9._-]{1,20}", settings.bounce_localpart, re.IGNORECASE):
        raise ConfigError("MAILER_BOUNCE_LOCALPART must be letters, digits, '.', '_' or '-'.")
    if settings.soft_bounce_limit < 1:
        raise ConfigError("MAILER_SOFT_BOUNCE_LIMIT must be at least 1.")
    if settings.feedback_sender_id and not re.fullmatch(
        r"[A-Za-z0-9]{5,15}", settings.feedback_sender_id
    ):
        raise ConfigError("MAILER_FEEDBACK_SENDER_ID must be 5 to 15 letters or digits.")


def _validate_bounce_caps(settings: Settings) -> None:
    caps = {
        "MAILER_BOUNCE_MAX_BYTES": settings.bounce_max_bytes,
        "MAILER_BOUNCE_MAX_RECIPIENTS": settings.bounce_max_recipients,
        "MAILER_BOUNCE_MAX_PARTS": settings.bounce_max_parts,
        "MAILER_BOUNCE_MAX_DEPTH": settings.bounce_max_depth,
        "MAILER_BOUNCE_SESSIONS_PER_ADDRESS": settings.bounce_sessions_per_address,
        "MAILER_BOUNCE_SESSION_TIMEOUT": settings.bounce_session_timeout,
    }
    for name, value in caps.items():
        if value < 1:
            raise ConfigError(f"{name} must be at least 1.")
    # Python's email parser recurses once per level and stops near 1,000 levels.
    if settings.bounce_max_depth > 200:
        raise ConfigError("MAILER_BOUNCE_MAX_DEPTH must be at most 200.")


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


def _validate_publisher(settings: Settings) -> None:
    if settings.site_url and not settings.site_url.startswith(("http://", "https://")):
        raise ConfigError("MAILER_SITE_URL must start with http:// or https://.")
    for origin in settings.embed_origins:
        if origin_of(origin) != origin.rstrip("/").lower():
            raise ConfigError(
                f"MAILER_EMBED_ORIGINS: {origin!r} is not an origin like https://news.example.com"
                " (scheme and host, no path)."
            )
