"""The development mail catcher: an SMTP server that keeps every message as an .eml file."""

from __future__ import annotations

import threading
import time
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope


class SaveToDirectory:
    """aiosmtpd handler: one file per message, named so they sort by arrival."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.directory / (name + ".part")
        partial.write_bytes(envelope.original_content or b"")
        partial.rename(self.directory / name)  # readers never see half a file
        return "250 Message accepted for delivery"


def run_catcher(directory: Path, host: str, port: int) -> None:
    controller = Controller(SaveToDirectory(directory), hostname=host, port=port)
    controller.start()
    print(f"Catching mail on smtp://{host}:{port}, saving to {directory}/", flush=True)
    try:
        threading.Event().wait()  # serve until interrupted
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


def list_messages(directory: Path, limit: int = 200) -> list[dict[str, str]]:
    files = sorted(directory.glob("*.eml"), reverse=True)[:limit]
    result = []
    for path in files:
        message = read_message(path)
        result.append(
            {
                "name": path.name,
                "to": str(message.get("To", "")),
                "subject": str(message.get("Subject", "")),
                "date": str(message.get("Date", "")),
            }
        )
    return result


def read_message(path: Path) -> EmailMessage:
    return message_from_bytes(path.read_bytes(), policy=policy.default)
