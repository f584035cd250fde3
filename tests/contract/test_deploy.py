"""deploy/: the alert rules hold (promtool), and every file names metrics, commands and files that exist."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
METRIC = re.compile(r"\bkokin_[a-z_]+")


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: scripts/system-packages.sh installs Debian's prometheus"
    return found


def test_the_alert_rules_are_valid_and_fire_when_and_only_when_they_should() -> None:
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run([_promtool(), *command], cwd=DEPLOY / "prometheus", capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def _exposed(client) -> set[str]:  # type: ignore[no-untyped-def]
    """The metric names /metrics serves, without the samples' suffixes."""
    client.get("/healthz")
    text = client.get("/metrics").get_data(as_text=True)
    names = set(re.findall(r"^# TYPE (kokin_\w+) (\w+)", text, re.MULTILINE))
    exposed = {name for name, _ in names}
    exposed |= {f"{name}_total" for name, kind in names if kind == "counter"}
    exposed |= {f"{name}_{part}" for name, kind in names if kind == "histogram" for part in ("bucket", "count", "sum")}
    return exposed


def test_the_dashboard_and_the_alerts_use_only_metrics_the_gateway_serves(client) -> None:  # type: ignore[no-untyped-def]
    exposed = _exposed(client)
    dashboard = json.loads((DEPLOY / "grafana" / "kokin-gateway.json").read_text(encoding="utf-8"))
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(expressions) >= 10 and all(panel["targets"] for panel in dashboard["panels"])
    used = {name for expression in expressions for name in METRIC.findall(expression)}
    used |= set(METRIC.findall((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8")))
    assert used and used <= exposed, f"not served: {sorted(used - exposed)}"


@pytest.mark.parametrize("unit", ["kokin-gateway.service", "kokin-scheduler.service", "kokin-migrate.service"])
def test_the_units_run_commands_that_exist(app, unit: str) -> None:  # type: ignore[no-untyped-def]
    text = (DEPLOY / "systemd" / unit).read_text(encoding="utf-8")
    runner = app.test_cli_runner()
    for command in re.findall(r"/opt/kokin/venv/bin/kokin ([a-z-]+(?: [a-z-]+)?)", text):
        result = runner.invoke(cli, [*command.split(), "--help"])
        assert result.exit_code == 0, f"{unit}: kokin {command}: {result.output}"
    for path in re.findall(r"/opt/kokin/(deploy/[\w./-]+)", text):
        assert (ROOT / path).is_file(), f"{unit} names {path}, which is not in the repository"
    assert "EnvironmentFile=/etc/kokin/kokin.env" in text
    example = (DEPLOY / "systemd" / "kokin.env.example").read_text(encoding="utf-8")
    for variable in re.findall(r"\$\{?([A-Z_]+)", text):
        assert variable in ("MAINPID",) or f"{variable}=" in example, f"{unit} uses {variable}, not in the example"
