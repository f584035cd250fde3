"""What operators see: request ids, JSON logs without personal data, /healthz, /readyz and /metrics."""
from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from adapters.registry import known_sandbox_credentials
from gateway import create_app, migrate
from gateway.errors import LedgerFileRejected
from gateway.models import Event, Payment, ReconException
from gateway.observability.logs import configure_logging
from gateway.sandbox.ward import GIVEN, SURNAMES
from gateway.scheduler.guard import run_guarded
from gateway.services.ledger_import import import_ledger
from tests.card import CODE, issue_slips_to_pay, pay_by_card
from tests.conftest import BACKEND, TEST_DATA_KEY, TEST_PAYER_REF_KEY, one_ward_config

ROOT = Path(__file__).resolve().parents[2]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


# -- health ------------------------------------------------------------------------------------------------------


def test_healthz_answers_and_readyz_finds_the_database_at_the_migrations_head(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    head = migrate.HEAD_FILE.read_text().strip()
    assert ready.status_code == 200
    assert ready.json == {"status": "ready", "migration": head, "head": head}


def test_readyz_names_a_schema_behind_the_code_and_a_database_that_does_not_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOKIN_DATA_KEYS", TEST_DATA_KEY)
    monkeypatch.setenv("KOKIN_PAYER_REF_KEY", TEST_PAYER_REF_KEY)
    empty = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}", "TESTING": True,
                        "INSTANCE_PATH": str(tmp_path / "a")})
    answer = empty.test_client().get("/readyz")
    assert answer.status_code == 503 and answer.json["status"] == "not ready"
    assert answer.json["problems"] == [f"the database schema is at no revision, the code needs "
                                       f"{migrate.HEAD_FILE.read_text().strip()}: run `kokin db upgrade`"]
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gone = create_app({"DATABASE_URL": f"postgresql+psycopg://nobody@127.0.0.1:{port}/none", "TESTING": True,
                       "INSTANCE_PATH": str(tmp_path / "b")})
    answer = gone.test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.json["problems"] == ["the database does not answer (OperationalError)"]
    assert gone.test_client().get("/healthz").status_code == 200  # the process itself still answers


# -- request ids -------------------------------------------------------------------------------------------------


def test_every_answer_carries_a_request_id_and_keeps_the_edges_when_it_is_one(client) -> None:  # type: ignore[no-untyped-def]
    made = client.get("/healthz").headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert client.get("/healthz").headers["X-Request-Id"] != made
    assert client.get("/healthz", headers={"X-Request-Id": "lb-2026.12.03:0001"}).headers["X-Request-Id"] == \
        "lb-2026.12.03:0001"
    for unfit in ("short", "has spaces in it", "x" * 65, "<script>alert(1)</script>", "名前が入ったID123"):
        kept = client.get("/healthz", headers={"X-Request-Id": unfit}).headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", kept), unfit
    assert client.get("/no/such/page").headers["X-Request-Id"]  # errors too


def test_an_audit_event_names_the_request_that_recorded_it(client, session) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/staff/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    client.post("/staff/login", data={"username": "nobody", "password": "wrong-password",
                                      "csrf_token": token.group(1)}, headers={"X-Request-Id": "edge-req-00000042"})
    event = session.scalars(select(Event).where(Event.kind == "user.sign_in_failed")).one()
    assert event.request_id == "edge-req-00000042"


def test_a_commands_events_carry_its_own_operation_id(app, session) -> None:  # type: ignore[no-untyped-def]
    from gateway.cli import cli

    result = app.test_cli_runner().invoke(cli, ["apikeys", "create", "reports", "--municipality", CODE])
    assert result.exit_code == 0, result.output
    event = session.scalars(select(Event).where(Event.kind == "api_key.created")).one()
    assert event.request_id is not None and re.fullmatch(r"cli-\w+-[0-9a-f]{16}", event.request_id)


# -- logs --------------------------------------------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    yield stream
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_kokin_handler", False)]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def test_log_lines_are_json_objects_with_the_request_id(app, client, json_log) -> None:  # type: ignore[no-untyped-def]
    @app.get("/test-only/log")
    def _logs() -> str:
        logging.getLogger("gateway.test").warning("something to look at: %s", 42)
        return "ok"

    client.get("/test-only/log", headers={"X-Request-Id": "edge-log-0000001"})
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    ours = [line for line in lines if line["logger"] == "gateway.test"]
    assert len(ours) == 1
    assert ours[0]["event"] == "something to look at: 42" and ours[0]["level"] == "warning"
    assert ours[0]["request_id"] == "edge-log-0000001"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", ours[0]["timestamp"])


def test_sqlalchemy_statements_and_their_parameters_are_never_logged(session, cipher, json_log) -> None:  # type: ignore[no-untyped-def]
    issue_slips_to_pay(session, cipher, 2)  # names go through INSERT parameters (encrypted, but still)
    assert "INSERT" not in json_log.getvalue() and "SELECT" not in json_log.getvalue()


@pytest.mark.skipif(BACKEND != "sqlite", reason="the demo runs on the embedded default, once per suite")
def test_a_whole_demo_logs_json_lines_without_names_payer_references_or_secrets(tmp_path: Path) -> None:
    config = tmp_path / "kokin.toml"
    config.write_text(f'instance_path = "{tmp_path / "instance"}"\n', encoding="utf-8")  # the defaults: two wards
    env = {key: value for key, value in os.environ.items() if not key.startswith("KOKIN_")}
    env.update(KOKIN_CONFIG=str(config), KOKIN_LOG_FORMAT="json", PYTHONPATH=str(ROOT))
    payers = 60
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "demo", "--payers", str(payers), "--no-serve"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ward 131091 (品川区), served by the same deployment" in done.stdout  # the defaults serve two wards
    lines = done.stderr.splitlines()
    assert len(lines) > 20  # migrations, imports, jobs: the demo does log
    for line in lines:
        entry = json.loads(line)
        assert {"event", "level", "logger", "timestamp", "request_id"} <= entry.keys(), line
    log = done.stderr
    for name in SURNAMES + GIVEN:
        assert name not in log, f"a payer's name ({name}) is in the logs"
    refs = set(re.findall(r"(?<![\d-])\d{10}(?![\d-])", log))
    assert not refs & {f"{n:010d}" for n in range(1, payers + 1)}, "a payer reference is in the logs"
    password = re.search(r"password \(sandbox, shown once\): (\S+)", done.stdout)
    assert password, done.stdout[-2000:]
    secrets = [password.group(1), *known_sandbox_credentials()]
    secrets += [path.read_text().strip() for path in (tmp_path / "instance").glob("*.key")]
    for secret in secrets:
        assert len(secret) >= 8 and secret not in log, "a secret is in the logs"


# -- metrics -----------------------------------------------------------------------------------------------------


def test_metrics_are_served_to_the_loopback_side_or_with_the_token_only(
        client, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 404
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=outside).status_code == 404
    monkeypatch.setenv("KOKIN_METRICS_TOKEN", "scrape-token-0123456789")
    assert client.get("/metrics", environ_base=outside,
                      headers={"Authorization": "Bearer scrape-token-0123456789"}).status_code == 200
    assert client.get("/metrics", environ_base=outside,
                      headers={"Authorization": "Bearer scrape-token-wrong"}).status_code == 404


def test_requests_are_counted_by_route_never_by_path(client) -> None:  # type: ignore[no-untyped-def]
    route = "/api/v1/slips/<string:number>"
    before = _sample("kokin_http_requests_total", method="GET", route=route, status="401")
    client.get("/api/v1/slips/2600000000003702")
    client.get("/api/v1/slips/2600000000003719")
    assert _sample("kokin_http_requests_total", method="GET", route=route, status="401") == before + 2
    assert _sample("kokin_http_request_duration_seconds_count", method="GET", route=route) >= 2
    scraped = client.get("/metrics").get_data(as_text=True)
    assert "2600000000003702" not in scraped


def test_webhooks_imports_and_jobs_are_counted_by_outcome(app, client, session, cipher) -> None:  # type: ignore[no-untyped-def]
    before = _sample("kokin_webhook_deliveries_total", adapter="stripe", outcome="invalid_signature")
    client.post("/webhooks/stripe", data=b'{"id": "evt_1"}', headers={"Stripe-Signature": "t=1,v1=00"},
                content_type="application/json")
    assert _sample("kokin_webhook_deliveries_total", adapter="stripe", outcome="invalid_signature") == before + 1

    rejected = _sample("kokin_file_imports_total", kind="ledger", outcome="rejected")
    with pytest.raises(LedgerFileRejected, match="nothing was applied"):
        import_ledger(session, cipher, "not,a,ledger\n".encode("cp932"), filename="broken.csv")
    session.rollback()
    assert _sample("kokin_file_imports_total", kind="ledger", outcome="rejected") == rejected + 1
    applied = _sample("kokin_file_imports_total", kind="ledger", outcome="applied")
    records = _sample("kokin_file_import_records_total", kind="ledger")
    issue_slips_to_pay(session, cipher, 3)
    assert _sample("kokin_file_imports_total", kind="ledger", outcome="applied") == applied + 1
    assert _sample("kokin_file_import_records_total", kind="ledger") == records + 3

    ran = _sample("kokin_job_runs_total", job="observed", outcome="succeeded")
    assert run_guarded(app, "observed", date(2026, 7, 1), lambda _app, _day: {"done": 1}) == "succeeded"
    assert _sample("kokin_job_runs_total", job="observed", outcome="succeeded") == ran + 1


def test_the_database_figures_match_the_database(app, client, session, cipher) -> None:  # type: ignore[no-untyped-def]
    slips = issue_slips_to_pay(session, cipher, 3)
    for slip in slips[:2]:
        pay_by_card(app, session, slip)
    municipality_id = slips[0].municipality_id
    session.add(ReconException(municipality_id=municipality_id, kind="unknown_slip", subject_key="test:1",
                               business_date=date(2026, 7, 1), details={}))
    session.add(ReconException(municipality_id=municipality_id, kind="unknown_slip", subject_key="test:2",
                               business_date=date(2026, 7, 1), details={}, status="resolved"))
    session.commit()
    run_guarded(app, "observed", date(2026, 7, 1), lambda _app, _day: {})
    scraped = _scraped(client.get("/metrics").get_data(as_text=True))
    held = session.execute(select(Payment.channel, Payment.status, func.count())
                           .group_by(Payment.channel, Payment.status)).all()
    assert held  # two card payments at least
    for channel, status, count in held:
        key = ("kokin_payments", (("channel", channel), ("municipality", CODE), ("status", status)))
        assert scraped[key] == count
    assert scraped[("kokin_open_exceptions", (("kind", "unknown_slip"), ("municipality", CODE)))] == 1
    finished = scraped[("kokin_job_last_success_timestamp_seconds", (("job", "observed"),))]
    assert abs(finished - time.time()) < 120
    assert ("kokin_scheduler_lag_seconds", ()) in scraped


# -- several processes -------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own local server
        return int(response.status), response.read().decode()


def test_under_gunicorn_metrics_sum_every_workers_counts_a_killed_ones_included(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    config = tmp_path / "kokin.toml"
    one_ward_config(config, tmp_path / "instance")
    port = _free_port()
    env = {**os.environ, "KOKIN_DATABASE_URL": db_url, "KOKIN_CONFIG": str(config), "KOKIN_DATA_KEYS": TEST_DATA_KEY,
           "KOKIN_PAYER_REF_KEY": TEST_PAYER_REF_KEY, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(folder),
           "KOKIN_BIND": f"127.0.0.1:{port}", "KOKIN_WORKERS": "2"}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                               "gateway:create_app()"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    served = 0

    def answered(attempts: int) -> None:
        """Ask /healthz until `attempts` answers came (waiting out a restarting worker)."""
        nonlocal served
        deadline, wanted = time.monotonic() + 60, served + attempts
        while served < wanted:
            try:
                served += _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "gunicorn does not answer"
                time.sleep(0.2)

    def workers_with_counts() -> set[int]:
        return {int(path.stem.split("_")[-1]) for path in folder.glob("counter_*.db")}

    try:
        answered(10)
        first = workers_with_counts()
        assert first
        for pid in first:  # the workers that answered so far die; the master starts new ones
            os.kill(pid, signal.SIGKILL)
        answered(20)
        assert workers_with_counts() - first, "a new worker answered after the kill"
        for _ in range(3):  # whichever worker answers the scrape reports every worker's counts, dead ones too
            status, text = _get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            scraped = _scraped(text)
            assert scraped[("kokin_http_requests_total",
                            (("method", "GET"), ("route", "/healthz"), ("status", "200")))] == served == 30
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_request_refused_at_the_boundary_has_its_id_and_is_counted(client) -> None:  # type: ignore[no-untyped-def]
    before = _sample("kokin_http_requests_total", method="GET", route="/healthz", status="400")
    answer = client.get("/healthz?x=%00", headers={"X-Request-Id": "edge-nul-000001"})
    assert answer.status_code == 400 and answer.headers["X-Request-Id"] == "edge-nul-000001"
    assert _sample("kokin_http_requests_total", method="GET", route="/healthz", status="400") == before + 1
