"""Nightly reconciliation: runs (over domain.matching), reports and exports."""
