"""Sandbox generators: a synthetic ward's ledger and residents paying at stores and in apps.

Used by `kokin demo`, the tests and the benchmarks, never with a real ward or agency. They
drive the services like a ward would (import files, pay, deposit); they are not use cases.
"""
