"""Benchmark Stripe webhook ingestion through gunicorn on PostgreSQL against a bare INSERT endpoint.

Usage: python bench/bench_webhooks.py [--requests 20000] [--concurrency 16] [--kinds sync,gthread]
                                     [--rounds 3] [--run-seconds 15]

One fresh PostgreSQL database `kokin_bench_<hex>` on 127.0.0.1:5432 (dropped at the end),
migrated and seeded; `--requests` x 0.895 slips issued by the service, and one open
card payment with a pending Stripe attempt per slip, inserted with Core (not measured).

Where Stripe is. `POST /webhooks/stripe` verifies the signature; a signed Stripe event's
outcome is trusted (Capability.SIGNED_WEBHOOK), so no poll is made, and the dedupe row and
the settlement are written in one transaction. The gateway still runs with the Stripe
adapter in live mode against ONE StripeSimulator in a child process behind a small HTTP
server on 127.0.0.1 (`api_base`, a test key, no retries), and the polls it serves are
counted: a poll in the request path would show there (it should be 0). The simulator
process also creates and pays the sessions during setup; the bench signs each
`checkout.session.completed` body with Stripe's algorithm (adapters/stripe/signature.py)
just before the load, so the 300 s tolerance holds.

Traffic: every paid session's `checkout.session.completed` once, ~10% redeliveries of
the same events (same id, fresh signature) and ~0.5% bodies signed with another secret,
shuffled. Measured, for each gunicorn worker kind (2*cores+1 workers):

  webhook        the gateway as it is (verify, dedupe, transition, audit);
  bare           a tiny Flask app under the same gunicorn settings: read the body, one
                 INSERT and a durable COMMIT with psycopg (a connection per thread).

The client is this script: processes of threads with keep-alive http.client connections,
`--concurrency` in all; its CPU per request is printed so it can be seen not to be the
bottleneck. Between runs the payments are reset to open and the deliveries removed
(events are append-only: each run counts the ones recorded after it started). A run
stops after `--requests` or `--run-seconds`, whichever comes first, so the whole bench
stays near 5 minutes; the checks then expect what was actually sent. After each webhook
run the database is checked (applied payments, paid slips, delivery rows, audit events,
no overpayment).

The machine's speed drifts from minute to minute (the bare endpoint alone has measured
975 and 1,417 req/s in consecutive runs), so each worker class runs `--rounds` rounds of
webhook and bare back to back, alternating which goes first; each round's ratio is taken
within the round, and the summary prints the medians. Figures and ratios only, never
assertions.
"""
from __future__ import annotations

import argparse
import datetime
import http.client
import itertools
import json
import multiprocessing
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_issue import fresh_database  # noqa: E402  (bench/ is on sys.path when run)
from sqlalchemy import create_engine, insert, select, text  # noqa: E402

MUNICIPALITY = "131075"
# Instalments not yet due, as most paid online are: a payment after its due date also raises
# its lateness for a person, a write the usual notification does not make.
FISCAL_YEAR = datetime.date.today().year + 1
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
STRIPE_KEY = "sk_test_kokin_sandbox"
WEBHOOK_SECRET = "whsec_kokin_sandbox"  # noqa: S105 - the sandbox placeholder
DUPLICATE_SHARE = 0.10
BAD_SHARE = 0.005
SETUP_CHUNK = 5_000
INSTALMENTS_PER_PAYER = 6


# -- the apps gunicorn loads (`bench_webhooks:gateway_app()`, `bench_webhooks:bare_app()`) --------

def gateway_app() -> Any:
    """The gateway on the bench database, Stripe in live mode against the loopback simulator."""
    from gateway import create_app

    adapters = {"stripe": {"sandbox": False, "secret_key": STRIPE_KEY, "webhook_secret": WEBHOOK_SECRET,
                           "api_base": os.environ["KOKIN_BENCH_STRIPE"], "max_network_retries": 0}}
    app = create_app({"DATABASE_URL": os.environ["KOKIN_BENCH_DB"], "ADAPTERS": adapters,
                      "CHANNEL_ADAPTERS": {"card": "stripe"}, "INSTANCE_PATH": os.environ["KOKIN_BENCH_INSTANCE"]})
    return app


def bare_app() -> Any:
    """Flask doing what any webhook endpoint must: read the body, one INSERT, a durable COMMIT."""
    import psycopg
    from flask import Flask, jsonify, request

    app = Flask("bare")
    dsn = os.environ["KOKIN_BENCH_DB"].replace("postgresql+psycopg://", "postgresql://")
    local = threading.local()

    @app.post("/bare")
    def bare() -> Any:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(dsn)
        body = request.get_data(cache=False)
        conn.execute("INSERT INTO bench_bare (size, received_at) VALUES (%s, now())", (len(body),))
        conn.commit()
        return jsonify({"received": "applied"}), 200

    return app


# -- Stripe on loopback: one simulator in a child process ------------------------------------------

def stripe_process(pipe: Any, port: int) -> None:
    """Serve one StripeSimulator over HTTP on 127.0.0.1:port; create and pay sessions on request."""
    from adapters.stripe.simulator import StripeSimulator
    from adapters.stripe.simulator_wire import decode_form

    simulator = StripeSimulator(WEBHOOK_SECRET)
    served = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = self.rfile.read(length).decode() if length else ""
            status, headers, body = simulator.handle(self.command, parts.path,
                                                     {**decode_form(parts.query), **decode_form(form)},
                                                     dict(self.headers.items()))
            payload = body.encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            served[0] += 1

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    auth = {"Authorization": f"Bearer {STRIPE_KEY}"}
    while True:
        command, payload = pipe.recv()
        if command == "create":  # [(reference, amount)] -> [(session id, completed event body)]
            out = []
            for reference, amount in payload:
                params = {"mode": "payment", "payment_method_types": ["card"], "client_reference_id": reference,
                          "line_items": [{"quantity": "1", "price_data": {
                              "currency": "jpy", "unit_amount": str(amount), "product_data": {"name": "bench"}}}],
                          "metadata": {"reference": reference},
                          "payment_intent_data": {"metadata": {"reference": reference}},
                          "success_url": "https://ward.test/done", "cancel_url": "https://ward.test/cancel"}
                status, _, body = simulator.handle("POST", "/v1/checkout/sessions", params, auth)
                session_id = json.loads(body)["id"]
                simulator.simulate_payment(session_id, "paid")
                completed = [b for _, b in simulator.events_for(session_id, 0)
                             if json.loads(b)["type"] == "checkout.session.completed"]
                out.append((session_id, completed[0]))
            pipe.send(out)
        elif command == "served":
            pipe.send(served[0])
        else:
            server.shutdown()
            pipe.send("bye")
            return


# -- database -------------------------------------------------------------------------------------

def prepare(url: str, slips: int, stripe_pipe: Any) -> list[bytes]:
    """Migrate, seed, issue `slips` slips, open a paid-at-Stripe card payment for each (not measured).

    Returns the `checkout.session.completed` body of each session, unsigned.
    """
    from domain.identifiers import make_attempt_reference
    from gateway import migrate
    from gateway.config import load_settings
    from gateway.crypto import payer_ref_hmac
    from gateway.db import Database, utcnow
    from gateway.models import Assessment, FundType, Municipality, Payment, PaymentAttempt, Slip
    from gateway.sandbox.ward import ward_rows
    from gateway.services.reference import seed_reference_data
    from gateway.services.slips import issue_slips

    database = Database(url)
    migrate.upgrade(database.engine)
    seed_reference_data(database.session(), load_settings()["MUNICIPALITIES"])
    rows = itertools.islice(ward_rows(MUNICIPALITY, FISCAL_YEAR, slips // INSTALMENTS_PER_PAYER + 1), slips)
    now = utcnow()
    with database.engine.connect() as conn:
        muni_id = conn.execute(select(Municipality.id).where(Municipality.code == MUNICIPALITY)).scalar_one()
        funds = dict(conn.execute(select(FundType.code, FundType.id).where(FundType.municipality_id == muni_id)).all())
        conn.execute(insert(Assessment), [dict(
            municipality_id=muni_id, source_key=r["assessment_id"], fund_type_id=funds[r["fund_code"]],
            fiscal_year=r["fiscal_year"], installment=r["installment"], payer_name_enc=None,
            payer_ref_hmac=payer_ref_hmac(b"bench-payer-reference-key-of-32-bytes", MUNICIPALITY, r["payer_ref"]),
            amount=r["amount"], due_date=r["due_date"], revision=1, created_at=now, updated_at=now) for r in rows])
        conn.commit()
    with database.session() as session:
        issued = issue_slips(session, MUNICIPALITY).issued
    print(f"    issued {issued:,} slips", flush=True)
    with database.engine.connect() as conn:
        found = conn.execute(select(Slip.id, Slip.assessment_id, Slip.amount).order_by(Slip.id)).all()
        payments = [dict(municipality_id=muni_id, slip_id=s.id, assessment_id=s.assessment_id, channel="card",
                         status="open", amount=s.amount, fee_amount=0, refunded_amount=0, applied=False,
                         overpaid=False, created_at=now, updated_at=now) for s in found]
        conn.execute(insert(Payment), payments)
        ids = conn.execute(select(Payment.id, Payment.amount).order_by(Payment.id)).all()
        conn.commit()
        bodies: list[bytes] = []
        for start in range(0, len(ids), SETUP_CHUNK):
            chunk = ids[start:start + SETUP_CHUNK]
            references = [make_attempt_reference(MUNICIPALITY) for _ in chunk]  # naming the ward, as the gateway's
            stripe_pipe.send(("create", [(ref, p.amount) for ref, p in zip(references, chunk, strict=True)]))
            sessions = stripe_pipe.recv()
            conn.execute(insert(PaymentAttempt), [dict(
                payment_id=p.id, municipality_id=muni_id, adapter="stripe", reference=ref, provider_ref=sid,
                status="pending", amount=p.amount,
                redirect_url=f"https://checkout.stripe.test/c/pay/{sid}", created_at=now, updated_at=now)
                for p, ref, (sid, _) in zip(chunk, references, sessions, strict=True)])
            conn.commit()
            bodies += [body for _, body in sessions]
        conn.execute(text("CREATE TABLE bench_bare (id bigserial PRIMARY KEY, size integer NOT NULL, "
                          "received_at timestamptz NOT NULL)"))
        conn.commit()
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    database.dispose()
    print(f"    {len(bodies):,} card payments open, paid at the loopback Stripe", flush=True)
    return bodies


def reset(url: str) -> None:
    """Put every payment back to open and forget the deliveries, between runs (events are append-only)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for sql in ("UPDATE payments SET status = 'open', applied = false, overpaid = false, accepted_at = NULL "
                    "WHERE status <> 'open' OR applied OR overpaid",
                    "UPDATE payment_attempts SET status = 'pending', card_brand = NULL, card_last4 = NULL "
                    "WHERE status <> 'pending'",
                    "UPDATE slips SET status = 'issued' WHERE status = 'paid'",
                    "DELETE FROM refunds", "DELETE FROM recon_exceptions", "DELETE FROM webhook_deliveries",
                    "TRUNCATE bench_bare", "VACUUM ANALYZE"):
            conn.execute(text(sql))
    engine.dispose()


def events_mark(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        mark = int(conn.scalar(text("SELECT coalesce(max(id), 0) FROM events")) or 0)
    engine.dispose()
    return mark


def check(url: str, expected: int, mark: int) -> dict[str, int]:
    """Count what the run left; events only those recorded after `mark`."""
    engine = create_engine(url)
    queries = {
        "applied payments": "SELECT count(*) FROM payments WHERE applied AND status = 'succeeded'",
        "paid slips": "SELECT count(*) FROM slips WHERE status = 'paid'",
        "succeeded attempts": "SELECT count(*) FROM payment_attempts WHERE status = 'succeeded'",
        "delivery rows": "SELECT count(*) FROM webhook_deliveries",
        "payment.applied events": f"SELECT count(*) FROM events WHERE kind = 'payment.applied' AND id > {mark}",
        "attempt.succeed events": f"SELECT count(*) FROM events WHERE kind = 'attempt.succeed' AND id > {mark}",
        "slips with 2+ applied payments": "SELECT count(*) FROM (SELECT slip_id FROM payments WHERE applied "
                                          "GROUP BY slip_id HAVING count(*) > 1) AS twice",
        "overpaid payments": "SELECT count(*) FROM payments WHERE overpaid",
        "refunds": "SELECT count(*) FROM refunds",
    }
    with engine.connect() as conn:
        found = {label: int(conn.scalar(text(sql)) or 0) for label, sql in queries.items()}
    engine.dispose()
    for label, value in found.items():
        want = 0 if label in ("slips with 2+ applied payments", "overpaid payments", "refunds") else expected
        print(f"      {label:<32} {value:>8,} of {want:,} expected", flush=True)
    return found


# -- traffic --------------------------------------------------------------------------------------

def deliveries(bodies: list[bytes], total: int, seed: int = 7) -> tuple[list[tuple[bytes, bytes]], Counter[str]]:
    """Sign now: each body once, ~10% again (redeliveries), ~0.5% with another secret; shuffled.

    Returns [(Stripe-Signature value, body)] and the count per answer if all are sent.
    """
    from adapters.stripe.signature import signature_header

    rng = random.Random(seed)
    at = int(time.time())
    bad = max(int(total * BAD_SHARE), 1)
    dupes = max(total - len(bodies) - bad, 0)
    items = [(signature_header(b, WEBHOOK_SECRET, at).encode(), b) for b in bodies]
    items += [(signature_header(b, WEBHOOK_SECRET, at).encode(), b) for b in rng.choices(bodies, k=dupes)]
    items += [(signature_header(b, "whsec_not_ours", at).encode(), b) for b in rng.sample(bodies, k=bad)]
    rng.shuffle(items)
    return items, Counter(applied=len(bodies), duplicate=dupes, invalid_signature=bad)


def expected_answers(sent: list[tuple[bytes, bytes]]) -> Counter[str]:
    """What the gateway should answer to what was sent: first valid delivery of an event applies."""
    from adapters.stripe.signature import signature_header

    good, answers = set(), Counter[str]()
    for sig, body in sent:
        at = int(sig.split(b",")[0].removeprefix(b"t="))
        if sig.decode() != signature_header(body, WEBHOOK_SECRET, at):
            answers["invalid_signature"] += 1
        elif body in good:
            answers["duplicate"] += 1
        else:
            good.add(body)
            answers["applied"] += 1
    return answers


def client_process(port: int, path: str, shares: list[list[tuple[bytes, bytes]]], deadline: float,
                   out: Any) -> None:
    """Send each share on its own keep-alive connection (one thread each); report latencies."""
    results: list[list[tuple[float, str]]] = [[] for _ in shares]

    def run(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        record = results[index].append
        for sig, body in shares[index]:
            began = time.perf_counter()
            if began > deadline:
                break
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json; charset=utf-8",
                                                  "Stripe-Signature": sig.decode()})
                response = conn.getresponse()
                answer = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                record((time.perf_counter() - began, f"client error {type(exc).__name__}"))
                continue
            if status == 200:
                label = json.loads(answer).get("received", "?")
            else:
                try:
                    label = json.loads(answer)["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    label = f"http {status}"
            record((time.perf_counter() - began, label))
            if response.will_close:
                conn.close()
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(shares))]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.send((began, ended, usage.ru_utime + usage.ru_stime, [r for rs in results for r in rs],
              [len(rs) for rs in results]))
    out.close()


def drive(port: int, path: str, items: list[tuple[bytes, bytes]], concurrency: int,
          processes: int, seconds: float) -> dict[str, Any]:
    shares = [items[i::concurrency] for i in range(concurrency)]
    deadline = time.perf_counter() + seconds
    ctx = multiprocessing.get_context("fork")
    pipes, procs = [], []
    for p in range(processes):
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=client_process, args=(port, path, shares[p::processes], deadline, send))
        proc.start()
        pipes.append(receive)
        procs.append(proc)
    parts = [pipe.recv() for pipe in pipes]
    for proc in procs:
        proc.join()
    began, ended = min(p[0] for p in parts), max(p[1] for p in parts)
    results = [r for p in parts for r in p[3]]
    sent = [item for p, part in enumerate(parts)
            for share, count in zip(shares[p::processes], part[4], strict=True) for item in share[:count]]
    latencies = sorted(r[0] for r in results)
    seconds = ended - began
    return dict(requests=len(results), seconds=seconds, rate=len(results) / seconds,
                p50=statistics.quantiles(latencies, n=100)[49] * 1000,
                p99=statistics.quantiles(latencies, n=100)[98] * 1000,
                answers=Counter(r[1] for r in results),
                client_cpu_us=sum(p[2] for p in parts) / len(results) * 1e6, sent=sent)


# -- gunicorn -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(app: str, kind: str, workers: int, threads: int, env: dict[str, str]) -> Iterator[int]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--worker-class", kind, "--threads", str(threads), "--backlog", "2048",
               "--log-level", "warning", "--chdir", str(Path(__file__).parent), app]
    proc = subprocess.Popen(command, env={**os.environ, **env, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start ({app})") from None
                time.sleep(0.2)
        # warm every worker (imports, pool connections) before the clock starts
        for _ in range(workers * threads * 2):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def report(label: str, f: dict[str, Any]) -> None:
    answers = ", ".join(f"{k} {v:,}" for k, v in sorted(f["answers"].items()))
    print(f"    {label:<16} {f['requests']:>7,} req in {f['seconds']:6.2f} s = {f['rate']:7,.0f} req/s   "
          f"p50 {f['p50']:6.1f} ms   p99 {f['p99']:6.1f} ms   client {f['client_cpu_us']:4.0f} us CPU/req",
          flush=True)
    print(f"    {'':<16} answers: {answers}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per measured run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--kinds", default="sync,gthread", help="gunicorn worker classes to measure")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--run-seconds", type=float, default=15.0, help="stop a run after this long")
    parser.add_argument("--rounds", type=int, default=3,
                        help="webhook and bare runs per worker class, alternating which goes first")
    args = parser.parse_args()
    slips = args.requests - int(args.requests * DUPLICATE_SHARE) - max(int(args.requests * BAD_SHARE), 1)
    print(f"webhooks: {args.requests:,} requests per run ({slips:,} first deliveries), "
          f"concurrency {args.concurrency}, {args.workers} workers, {os.cpu_count()} cores", flush=True)
    from cryptography.fernet import Fernet

    stripe_port = free_port()
    parent, child = multiprocessing.get_context("fork").Pipe()
    stripe = multiprocessing.get_context("fork").Process(target=stripe_process, args=(child, stripe_port),
                                                          daemon=True)
    stripe.start()
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        with fresh_database("postgresql") as url, tempfile.TemporaryDirectory(prefix="kokin_bench_") as instance:
            began = time.perf_counter()
            bodies = prepare(url, slips, parent)
            print(f"    set up in {time.perf_counter() - began:.1f} s", flush=True)
            env = {"KOKIN_BENCH_DB": url, "KOKIN_BENCH_STRIPE": f"http://127.0.0.1:{stripe_port}",
                   "KOKIN_BENCH_INSTANCE": instance, "KOKIN_DATA_KEYS": Fernet.generate_key().decode()}
            runs = [("webhook", "gateway_app()", "/webhooks/stripe"), ("bare", "bare_app()", "/bare")]
            for kind in args.kinds.split(","):
                threads = args.threads if kind == "gthread" else 1
                for round_ in range(args.rounds):
                    print(f"  [{kind}, {args.workers} workers x {threads} threads, round {round_ + 1}]", flush=True)
                    for label, app, path in runs if round_ % 2 == 0 else runs[::-1]:  # alternate who goes first
                        reset(url)
                        mark = events_mark(url)
                        items, expected = deliveries(bodies, args.requests)
                        parent.send(("served", None))
                        polls_before = parent.recv()
                        with gunicorn(f"bench_webhooks:{app}", kind, args.workers, threads, env) as port:
                            figures = drive(port, path, items, args.concurrency, args.client_processes,
                                            args.run_seconds)
                        parent.send(("served", None))
                        figures["polls"] = parent.recv() - polls_before
                        results.setdefault((kind, label), []).append(figures)
                        report(label, figures)
                        if label != "bare":
                            expected = expected_answers(figures.pop("sent"))
                            print(f"    {'':<16} expected: " + ", ".join(f"{k} {v:,}" for k, v in expected.items())
                                  + f"; Stripe polls served {figures['polls']:,}", flush=True)
                            figures["checks"] = check(url, expected["applied"], mark)
    finally:
        parent.send(("stop", None))
        parent.recv()
        stripe.join(timeout=5)
    print("\nsummary (goal: a median ratio to bare of at least 0.5 with p99 at most 50 ms, at concurrency "
          f"{args.concurrency}; medians of {args.rounds} rounds, each round's ratio taken within the round)")
    for kind in args.kinds.split(","):
        hook, bare = results[(kind, "webhook")], results[(kind, "bare")]
        ratios = [h["rate"] / b["rate"] for h, b in zip(hook, bare, strict=True)]
        for label, runs_ in (("webhook", hook), ("bare", bare)):
            rates = ", ".join(f"{f['rate']:,.0f}" for f in runs_)
            print(f"  {kind:<8} {label:<8} {statistics.median(f['rate'] for f in runs_):7,.0f} req/s   "
                  f"p50 {statistics.median(f['p50'] for f in runs_):6.1f} ms   "
                  f"p99 {statistics.median(f['p99'] for f in runs_):6.1f} ms   (rounds: {rates})")
        print(f"  {kind:<8} ratio    {statistics.median(ratios):.2f}   (rounds: "
              + ", ".join(f"{r:.2f}" for r in ratios) + ")")


if __name__ == "__main__":
    main()
