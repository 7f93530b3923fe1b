"""The benchmark's code path (the Procfile's processes) on 1,000 readers, so it cannot rot.
No target is asserted."""

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
    table = result.stdout.strip().splitlines()
    assert table[-2].split()[:5] == ["readers", "import", "s", "raw", "msg/s"]
    readers, imported, raw, _source, mailer, ratio = table[-1].split()[:6]
    assert readers == "1000" and float(imported) > 0 and float(raw) > 0
    assert float(mailer) > 0 and float(ratio) > 0
