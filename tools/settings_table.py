"""The README's settings tables, made from the fields of mailer/platform/settings.py.

    python -m tools.settings_table          # rewrite them in README.md
    python -m tools.settings_table --check  # exit 1 when README.md and the fields differ

Each table sits between `<!-- settings-table GROUP ...: ... -->` and `<!-- /settings-table -->`
and lists the fields of those groups; every group is in exactly one such block.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from mailer.platform.settings import GROUPS, Settings, variable_of

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(
    r"(<!-- settings-table (?P<groups>[a-z ]+):[^>]*-->\n)(?P<body>.*?)(<!-- /settings-table -->)",
    re.DOTALL,
)


def _extra(name: str) -> dict[str, Any]:
    extra = Settings.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


def shown_default(name: str) -> str:
    """The default as a reader of the README wants it."""
    extra = _extra(name)
    if "shown_default" in extra:
        return str(extra["shown_default"])
    value = Settings.model_fields[name].default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value in ("", ()):
        return "empty"
    return f"`{value}`"


def table(group: str) -> str:
    rows = [
        f"| `{variable_of(name)}` | {shown_default(name)} | "
        f"{(field.description or '').replace('|', '&#124;')} |"
        for name, field in Settings.model_fields.items()
        if _extra(name)["group"] == group
    ]
    return "\n".join(["| variable | default | meaning |", "| --- | --- | --- |", *rows]) + "\n"


def block(groups: list[str]) -> str:
    if len(groups) == 1:
        return table(groups[0])
    return "\n".join(f"**{GROUPS[group]}**\n\n{table(group)}" for group in groups)


def grouped_blocks(text: str) -> list[list[str]]:
    return [match["groups"].split() for match in BLOCK.finditer(text)]


def render(text: str) -> str:
    """The README with every settings table made afresh."""
    return BLOCK.sub(lambda m: m[1] + block(m["groups"].split()) + m[4], text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; fail on a diff")
    args = parser.parse_args()
    text = README.read_text()
    listed = [group for groups in grouped_blocks(text) for group in groups]
    if sorted(listed) != sorted(GROUPS):
        raise SystemExit(f"README.md: the settings blocks list {listed}, not {list(GROUPS)}")
    fresh = render(text)
    if args.check:
        if fresh != text:
            sys.exit("README.md's settings tables differ from the fields; run this without --check")
        return
    README.write_text(fresh)


if __name__ == "__main__":
    main()
