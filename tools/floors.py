"""The floors of pyproject.toml's dependencies as pins, for `make test-floors`.

Prints one `name[extras]==floor` a line for every dependency (and those of the extras
named with --extra), so a throwaway venv can install exactly the oldest releases the
project says it works with. A dependency without a `>=` floor is an error: every one
must say what it needs.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# name, optional [extras], then the specifiers (a comment was already dropped by TOML).
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def floor_pins(extras: list[str]) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    pins = []
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        floor = re.search(r">=\s*([^,;\s]+)", match.group(3)) if match else None
        if match is None or floor is None:
            raise SystemExit(f"pyproject.toml: {requirement!r} has no >= floor")
        pins.append(f"{match.group(1)}{match.group(2) or ''}=={floor.group(1)}")
    return pins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--extra", action="append", default=[], help="an optional extra too")
    args = parser.parse_args()
    sys.stdout.write("".join(pin + "\n" for pin in floor_pins(args.extra)))


if __name__ == "__main__":
    main()
