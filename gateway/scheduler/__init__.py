"""The scheduler process (`kokin scheduler run`): nightly and housekeeping jobs, once per business date.

It sits at the top beside the CLI: it runs reconciliation and services, and nothing below
it imports it. `jobs` says what runs and when, `guard` makes each (job, business date) run
once across processes, `process` is the APScheduler process with its leader lock.
"""
