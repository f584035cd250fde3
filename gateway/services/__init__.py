"""Use cases. The only code that commits, always through `gateway.db.transaction`."""
