"""Nightly reconciliation: matching (pure functions), runs, reports and exports."""
