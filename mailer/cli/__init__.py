"""The `mailer` command's subcommands (the command itself starts in entrypoints.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app

from mailer.platform.words import plural


def register_commands(app: Flask) -> None:
    from mailer.cli.bounces import bounces

    app.cli.add_command(bounces)  # the pattern new command groups follow: a module each

    @app.cli.group("db")
    def db_group() -> None:
        """Database migrations."""

    @db_group.command("upgrade")
    @click.argument("revision", default="head")
    def db_upgrade(revision: str) -> None:
        """Apply migrations up to REVISION (default: the newest)."""
        from mailer.platform.migrate import upgrade
        from mailer.sections import store_configured

        upgrade(current_app.config["MAILER"].database_url, revision)
        if revision == "head":
            store_configured()  # MAILER_SECTIONS seeds the console's Sections page
        click.echo("Database is up to date.")

    @db_group.command("revision")
    @click.option("-m", "--message", required=True, help="What the migration changes.")
    @click.option(
        "--autogenerate/--empty",
        default=True,
        show_default=True,
        help="Compare mailer/models.py with the database (which must be up to date).",
    )
    def db_revision(message: str, autogenerate: bool) -> None:
        """Start a new migration in mailer/migrations/versions/."""
        from mailer.platform.migrate import revision

        path = revision(
            current_app.config["MAILER"].database_url, message, autogenerate=autogenerate
        )
        click.echo(f"Wrote {path}")
        click.echo("Read it, add what autogenerate cannot see (data changes), then run:")
        click.echo("  mailer db upgrade")

    @app.cli.command("create-editor")
    @click.argument("email")
    @click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
    def create_editor(email: str, password_stdin: bool) -> None:
        """Create an editor who can log in to the console at /editor/."""
        from mailer.access.editors import create_editor
        from mailer.platform.errors import UserError

        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            create_editor(email, password)
        except UserError as error:
            raise click.ClickException(error.message) from None
        click.echo(f"Editor {email} created. Log in at /editor/.")

    @app.cli.command("create-api-token")
    @click.argument("name")
    @click.option("--rotate", is_flag=True, help="Replace the live token of this name.")
    def create_api_token(name: str, rotate: bool) -> None:
        """Create an API token for the site; it is printed once, on the last line."""
        from mailer.access.api_tokens import create_api_token
        from mailer.platform.errors import UserError

        try:
            token = create_api_token(name, rotate=rotate)
        except UserError as error:
            raise click.ClickException(error.message) from None
        done = "replaced: the old one no longer works" if rotate else "created"
        click.echo(f"API token {name!r} {done}. Keep it secret; it is not shown again:")
        click.echo(token)

    @app.cli.command("revoke-api-token")
    @click.argument("name")
    def revoke_api_token(name: str) -> None:
        """Revoke the API token called NAME."""
        from mailer.access.api_tokens import revoke_api_token

        if not revoke_api_token(name):
            raise click.ClickException(f"No live API token is called {name!r}.")
        click.echo(f"API token {name!r} revoked.")

    @app.cli.command("send-digest")
    @click.option("--weekly", is_flag=True, help="The weekly digest, for readers who chose it.")
    def send_digest(weekly: bool) -> None:
        """Make a digest of the waiting articles and start sending it."""
        from mailer.delivery import digest_progress as progress
        from mailer.digests.runs import active_readers, create_digest
        from mailer.models import Frequency
        from mailer.platform.errors import UserError
        from mailer.platform.stack_settings import differences

        differ = differences(current_app.config["MAILER"])
        if differ:
            raise click.ClickException(
                "Not sent: this shell's settings differ from the running stack's, and the mail "
                "would mix both.\n  "
                + "\n  ".join(differ)
                + "\nExport the same values here, or put them in .env for every process."
            )
        frequency = Frequency.WEEKLY if weekly else Frequency.DAILY
        try:
            digest_id = create_digest(trigger="cli", frequency=frequency)
        except UserError as error:
            raise click.ClickException(error.message) from None
        info = progress(digest_id)
        readers = active_readers(frequency)
        articles = info["articles"]
        assert isinstance(articles, int)  # a progress's counts are ints
        click.echo(
            f"Digest {digest_id} is sending to {plural(readers, f'{frequency} reader')} "
            f"({plural(articles, 'article')}): {info['subject']}"
        )

    @app.cli.command("import-subscribers")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    def import_subscribers(path: str) -> None:
        """Import readers from a CSV file (columns email,name,status,consented_at)."""
        from mailer.models import ImportStatus
        from mailer.platform.errors import UserError
        from mailer.subscribers import csv_files as subscriber_csv

        try:
            import_id = subscriber_csv.store(
                Path(path).name, Path(path).read_bytes(), "cli", ImportStatus.RUNNING
            )
        except UserError as error:
            raise click.ClickException(error.message) from None
        summary = subscriber_csv.apply(import_id)
        for outcome, count in sorted(summary["counts"].items()):
            click.echo(f"{outcome.replace('_', ' ')}: {count}")
        click.echo(
            f"invalid rows: {summary['invalid']}, duplicates merged: {summary['duplicates']}"
        )
        for line, message in summary["errors"]:
            click.echo(f"  line {line}: {message}", err=True)

    @app.cli.command("export-subscribers")
    def export_subscribers() -> None:
        """Write every reader as CSV to standard output."""
        import csv

        from mailer.subscribers.records import export_rows

        writer = csv.writer(sys.stdout)
        for row in export_rows():
            writer.writerow(row)

    @app.cli.command("dkim-keygen")
    @click.option("--selector", required=True, help="The DKIM selector, e.g. mail2026.")
    @click.option("--domain", help="The signing domain (default: the domain of MAILER_FROM).")
    @click.option("--ed25519", "use_ed25519", is_flag=True, help="An Ed25519 key, not RSA-2048.")
    @click.option("--out", type=click.Path(dir_okay=False), help="Where to write the key.")
    def dkim_keygen(selector: str, domain: str | None, use_ed25519: bool, out: str | None) -> None:
        """Make a DKIM key; the DNS TXT record to publish is printed on the last line."""
        from mailer.platform.dkim_keys import dns_record, generate, write_key
        from mailer.platform.settings import INSTANCE_DIR

        settings = current_app.config["MAILER"]
        path = Path(out) if out else INSTANCE_DIR / f"dkim-{selector}.pem"
        if path.exists():
            raise click.ClickException(f"{path} exists already; choose another --out.")
        key = generate(use_ed25519=use_ed25519)
        write_key(key, path)
        variable = "MAILER_DKIM_ED25519_KEY_FILE" if use_ed25519 else "MAILER_DKIM_PRIVATE_KEY_FILE"
        click.echo(f"Wrote {path} (readable by you only). Set {variable}={path.resolve()}")
        click.echo(f"and MAILER_DKIM_SELECTOR={selector}, then publish this record in DNS:")
        click.echo(dns_record(selector, domain or settings.dkim_signing_domain, key))

    @app.cli.command("receive-bounces")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", type=click.IntRange(1, 65535), help="Default: MAILER_BOUNCE_PORT.")
    def receive_bounces(host: str, port: int | None) -> None:
        """Run the SMTP server that takes bounces and complaints (route them here)."""
        from mailer.bounces.receiver import run_receiver

        port = port or current_app.config["MAILER"].bounce_port
        run_receiver(current_app._get_current_object(), host, port)  # type: ignore[attr-defined]

    @app.cli.command("process-bounce")
    @click.option(
        "--recipient", help="The address it was sent to (Postfix: ${original_recipient})."
    )
    def process_bounce(recipient: str | None) -> None:
        """Record one bounce read from standard input (for a Postfix pipe or a mail filter).

        Exits 0 when the message was handled, ignored or dropped as unreadable, 75
        (EX_TEMPFAIL) when it could not be recorded now, so the MTA keeps it and tries again.
        """
        import logging

        from mailer.bounces.processing import Unreadable, process

        log = logging.getLogger("mailer.bounces")
        limit = current_app.config["MAILER"].bounce_max_bytes
        raw = sys.stdin.buffer.read(limit + 1)
        try:
            [outcome] = process(raw, [recipient])
        except Unreadable as refused:
            # Exit 0, not EX_DATAERR: any status but 0 and 75 makes Postfix mail a notice to
            # the envelope sender, for junk a forged one (backscatter to a stranger), for a
            # real bounce the postmaster (a double bounce). Dropped: nothing retried or mailed.
            log.warning("bounce dropped: %s", refused)
            click.echo(f"dropped: {refused}", err=True)
            return
        except Exception:
            # A failure of ours (the database, a bug) must not lose the bounce: EX_TEMPFAIL
            # keeps it in the MTA's queue. Its details go to the log, not to the MTA.
            log.exception("bounce not recorded, the MTA will retry")
            click.echo("temporary failure, try again", err=True)
            sys.exit(75)
        click.echo(outcome)

    @app.cli.command("catch-mail")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option(
        "--port",
        type=click.IntRange(1, 65535),
        help="Default: MAILER_SMTP_PORT, where mailer sends.",
    )
    @click.option(
        "--directory",
        type=click.Path(file_okay=False),
        help="Default: MAILER_MAIL_DIRECTORY, where /dev/mail/ reads.",
    )
    def catch_mail(host: str, port: int | None, directory: str | None) -> None:
        """Run the development SMTP catcher (every mail kept as an .eml file)."""
        from mailer.mail.catcher import run_catcher

        # The same settings the senders and /dev/mail/ use, so the three always meet.
        settings = current_app.config["MAILER"]
        folder = Path(directory or settings.mail_directory).resolve()
        run_catcher(folder, host, port or settings.smtp_port)
