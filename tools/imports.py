"""The import graph of mailer/ and workers/: cycles, layers, and module sizes.

python -m tools.imports      # prints cycles and layer breaches; exit 1 if any

Every import counts, at module level or inside a function: a cycle broken only
by a late import is still a cycle. Importing a package's module runs the
package's __init__ first, but that implicit edge is not counted.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mailer", "workers")
MAX_LINES = 400

# Imports run one way: edge (views, CLI, entry points) -> domain -> base (models, db).
BASE = {
    "mailer.platform.columns",
    "mailer.platform.settings",
    "mailer.platform.db",
    "mailer.platform.errors",
    "mailer.platform.jobs",
    "mailer.platform.dkim_keys",
    "mailer.platform.logs",
    "mailer.platform.migrate",
    "mailer.models",
    "mailer.platform.redis_client",
    "mailer.platform.schedules",
    "mailer.platform.setting_values",
}
EDGE_PREFIXES = ("mailer.web", "mailer.migrations")
EDGE = {
    "mailer",
    "mailer.web.access_log",
    "mailer.cli",
    "mailer.entrypoints",
    "mailer.web.extensions",
}


def module_files() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports, anywhere in it."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                # `from mailer import jobs` imports the module mailer.platform.jobs;
                # `from mailer import create_app` imports the package mailer.
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:
                    targets.add(submodule)
                elif node.module in modules:
                    targets.add(node.module)
    return targets


def graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> str:
    if module.startswith("workers") or module in EDGE or module.startswith(EDGE_PREFIXES):
        return "edge"
    return "base" if module in BASE else "domain"


def layer_breaches(edges: dict[str, set[str]]) -> list[str]:
    rank = {"base": 0, "domain": 1, "edge": 2}
    breaches = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            if source.startswith("mailer") and target.startswith("workers"):
                breaches.append(f"{source} imports {target}: mailer never imports workers")
            elif rank[layer(target)] > rank[layer(source)]:
                breaches.append(f"{source} ({layer(source)}) imports {target} ({layer(target)})")
    return breaches


def long_modules() -> list[str]:
    return [
        f"{name}: {lines} lines"
        for name, path in module_files().items()
        if not name.startswith("mailer.migrations")
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    ]


def main() -> int:
    edges = graph()
    problems = [
        *(f"import cycle: {' <-> '.join(c)}" for c in cycles(edges)),
        *layer_breaches(edges),
        *(f"over {MAX_LINES} lines: {m}" for m in long_modules()),
    ]
    for problem in problems:
        print(problem)
    if not problems:
        print(
            f"{len(edges)} modules: no import cycle, imports run edge -> domain -> base, "
            f"none over {MAX_LINES} lines"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
