"""`mailer bounces ...`: answering "why was this reader marked bounced?"."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import AppGroup

bounces = AppGroup("bounces", help="Bounces and complaints.")


@bounces.command("explain")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option("--recipient", help="The address the messages came back to, if not in them.")
def explain(files: tuple[Path, ...], as_json: bool, recipient: str | None) -> None:
    """For each message, in the order given: its reason, status, reply, the receiving
    domain, what the policy would decide and for which reader. Changes nothing."""
    from mailer.bounces.processing import explain as explain_one

    for path in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise click.ClickException(f"{path}: {exc.strerror}") from None
        found = explain_one(raw, recipient)
        if as_json:
            click.echo(json.dumps({"file": str(path), **found.__dict__}))
        else:
            click.echo(
                f"{path}: {found.reason} {found.status or '-'} -> {found.decision} "
                f"({found.reader}; {found.domain or 'no domain'}): {found.reply[:200]}"
            )
