"""The pure core: rules that need no Flask, no SQLAlchemy and no provider.

Check digits and identifiers, the slip barcode, the business calendar, the payment state
machines, the file-layout engine and the matching rules. `gateway`, `adapters` and
`reconciliation` import it; it imports none of them (an import-linter contract in
setup.cfg keeps it so).
"""
