"""gunicorn settings for kokin-gateway: `gunicorn -c deploy/gunicorn.conf.py 'gateway:create_app()'`.

Every setting can be overridden on the command line or by GUNICORN_CMD_ARGS. Metrics: each
worker writes its counters into PROMETHEUS_MULTIPROC_DIR (set by the unit file, emptied before
the server starts) and `/metrics`, answered by any worker, sums them; a worker that exits is
marked dead so that its live gauges (connections in use) leave the sum.
"""
from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("KOKIN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("KOKIN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("KOKIN_THREADS", 4))
timeout = 60  # an agency file posted to the API is validated and applied within the request
graceful_timeout = 30
keepalive = 5
max_requests = 5000  # recycle workers now and then; jitter keeps them from recycling together
max_requests_jitter = 500
forwarded_allow_ips = os.environ.get("KOKIN_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
# The request id is in the response header the app sets; PayPay's ?token= is redacted by the app
# before this line is written (gateway.hardening).
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'


def child_exit(_server: object, worker: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
