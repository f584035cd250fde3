"""The backup and restore drill (`make restore-drill`), run as operators run it (PostgreSQL only)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="pg_dump and pg_restore are PostgreSQL's")
ROOT = Path(__file__).resolve().parents[2]


def _drill(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KOKIN_")}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "restore_drill.py"), "--payers", "40", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_a_restored_dump_verifies_and_gives_identical_receipts_and_reports() -> None:
    done = _drill()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "intact" in done.stdout
    compared = [line for line in done.stdout.splitlines() if line.strip().startswith(("identical", "DIFFERENT"))]
    assert compared and all(line.strip().startswith("identical") for line in compared)
    names = {line.split()[1] for line in compared}
    assert {"131075/receipts-000001", "131075/reports/remittances.csv"} <= names
    assert any(name.startswith("131075/reports/usage-") for name in names)
    assert any(name.startswith("131075/recon/") for name in names)


def test_the_drill_fails_when_the_restore_differs_from_its_original() -> None:
    done = _drill("--corrupt-restore")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "DIFFERENT" in done.stdout and "FAILED" in done.stdout
