"""The benchmark's code path (the Procfile's processes) on 1,000 readers, so it cannot rot:
the headline table and the segments table. No target is asserted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_the_send_benchmark_runs_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--readers", "1000", "--smoke"],
        cwd=ROOT,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "MAILER_BENCH_DATABASE_URL": f"sqlite:///{tmp_path / 'bench.db'}",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    headline = _table(lines, ["readers", "import", "s", "raw", "msg/s"])
    readers, imported, raw, _source, mailer, ratio = headline[0].split()[:6]
    assert readers == "1000" and float(imported) > 0 and float(raw) > 0
    assert float(mailer) > 0 and float(ratio) > 0
    # The segments table: the single-segment run, then 16 sets; the bench checks that
    # only the 1,000 daily readers were mailed and fails otherwise.
    segments = _table(lines, ["segments", "daily", "weekly", "msg/s"])
    cells = [row.split() for row in segments]
    assert [c[:3] for c in cells] == [["1", "1000", "250"], ["16", "1000", "250"]]
    assert [c[6] for c in cells] == ["1", "16"]  # segments made
    for _count, _daily, _weekly, sent, versus, render, *_rest in cells:
        assert float(sent) > 0 and float(versus) > 0 and float(render) >= 0


def _table(lines: list[str], header: list[str]) -> list[str]:
    """The rows under the header line that starts with `header`, up to the blank line."""
    start = next(i for i, line in enumerate(lines) if line.split()[: len(header)] == header)
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(line)
    return rows
