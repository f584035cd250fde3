"""`kokin` as a process: it serves until stopped, its help shows its own commands, a closed pipe ends it quietly."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.conftest import one_ward_config

ROOT = Path(__file__).resolve().parents[2]


def _kokin_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "kokin.toml"
    one_ward_config(config, tmp_path / "instance")
    return {**os.environ, "KOKIN_DATABASE_URL": db_url, "KOKIN_CONFIG": str(config),
            "KOKIN_DATA_KEYS": Fernet.generate_key().decode(), "KOKIN_PAYER_REF_KEY": "k" * 32,
            "PYTHONPATH": str(ROOT)}


def _kokin(*args: str, env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=env, text=True,
                            **popen)  # type: ignore[call-overload]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(server: subprocess.Popen[str], url: str, deadline: float) -> tuple[int, str]:
    """GET `url` once the server listens; fail as soon as the server has exited instead."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own local server
                return response.status, response.read().decode()
        except OSError:
            assert server.poll() is None, f"kokin serve exited ({server.returncode}) without serving"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_kokin_serve_keeps_serving_pages_on_the_port_it_was_given(db_url: str, tmp_path: Path) -> None:
    port = _free_port()
    server = _kokin("serve", "--port", str(port), env=_kokin_env(db_url, tmp_path),
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        status, page = _get(server, f"http://127.0.0.1:{port}/", time.monotonic() + 60)
        assert status == 200
        assert 'href="/staff/login"' in page and 'href="/api/v1/docs"' in page
        docs_status, docs = _get(server, f"http://127.0.0.1:{port}/api/v1/docs", time.monotonic() + 10)
        assert docs_status == 200 and "/api/v1/payments" in docs
        assert server.poll() is None, "the server stopped after answering"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert f"serving on http://127.0.0.1:{port}/" in output
    assert "Ignoring a call to 'app.run()'" not in output


def test_help_lists_the_projects_commands_in_sections_without_flasks_options() -> None:
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "--help"], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    text = result.stdout
    for flask_option in ("--env-file", "--app", "-A,", "--debug", "openapi"):
        assert flask_option not in text
    sections = ["Start here:", "demo", "serve", "db", "The ward's money:", "ledger", "slips", "agency", "recon",
                "scheduler", "Accounts:", "users", "apikeys", "Security:", "keys", "audit"]
    lines = [line.split()[0] if line.startswith("  ") else line for line in text.splitlines() if line.strip()]
    assert [name for name in lines if name in sections] == sections  # each once, in this order
    unwrapped = re.sub(r"-\s+", "-", " ".join(text.split()))  # a long list of subcommands wraps, at hyphens too
    assert "Database schema. [grant-runtime, upgrade]" in unwrapped
    assert "[create, grant-ward, list, password, reset-mfa, revoke-ward, unlock]" in unwrapped
    env_file = subprocess.run([sys.executable, "-m", "gateway.cli", "-e", "x.env", "db", "upgrade"], cwd=ROOT,
                              capture_output=True, text=True)
    assert env_file.returncode == 2 and "No such option '-e'" in env_file.stderr


@pytest.mark.parametrize("args", [["agency", "remittances"], ["--help"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(db_url: str, tmp_path: Path, args: list[str]) -> None:
    command = _kokin(*args, env=_kokin_env(db_url, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    command.stdout.close()  # type: ignore[union-attr]  # like `| head -0`: gone before the first line
    _, errors = command.communicate(timeout=60)
    assert errors == ""
    assert command.returncode == 1
